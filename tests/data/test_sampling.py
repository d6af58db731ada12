"""Which frames a clip takes: hand-computed indices for the paper's T, α, τ at the stored frame rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slowfast.config import ConfigError, from_mapping
from slowfast.data.sampling import (
    SamplingConfig,
    centered_indices,
    clip_indices,
    frame_of_time,
    generator_for,
    keyframe_windows,
    random_start,
    uniform_starts,
)

EIGHT_BY_EIGHT = SamplingConfig(slow_frames=8, alpha=4, tau=8)  # SlowFast 8×8: Fast 32 frames every 2
FOUR_BY_SIXTEEN = SamplingConfig(slow_frames=4, alpha=8, tau=16)  # SlowFast 4×16: Fast 32 frames every 2


def test_fast_pathway_takes_alpha_t_frames_every_tau_over_alpha_at_30_fps():
    for config in (EIGHT_BY_EIGHT, FOUR_BY_SIXTEEN):
        assert config.fast_frames == 32 and config.span(30.0) == 64
        np.testing.assert_array_equal(clip_indices(10, 300, config, 30.0), np.arange(10, 74, 2))


def test_stride_is_converted_to_the_stored_frame_rate():
    small = SamplingConfig(slow_frames=2, alpha=2, tau=4)  # 4 frames every 2 at 30 fps
    np.testing.assert_array_equal(clip_indices(0, 100, small, 15.0), [0, 1, 2, 3])
    np.testing.assert_array_equal(clip_indices(0, 100, small, 60.0), [0, 4, 8, 12])
    np.testing.assert_array_equal(clip_indices(0, 100, small, 25.0), [0, 1, 3, 5])  # floor(k * 2 * 25/30)
    assert small.span(15.0) == 4 and small.span(60.0) == 16


def test_short_videos_repeat_their_last_frame():
    np.testing.assert_array_equal(clip_indices(0, 20, EIGHT_BY_EIGHT, 30.0),
                                  [0, 2, 4, 6, 8, 10, 12, 14, 16, 18] + [19] * 22)
    gen = torch.Generator().manual_seed(0)
    assert random_start(20, EIGHT_BY_EIGHT, 30.0, gen) == 0


def test_random_start_stays_inside_the_video():
    gen = torch.Generator().manual_seed(0)
    starts = [random_start(100, EIGHT_BY_EIGHT, 30.0, gen) for _ in range(300)]
    assert min(starts) == 0 and max(starts) == 36  # 100 - 64: every start, both ends included


def test_test_clips_are_evenly_spaced_from_first_to_last_window():
    assert uniform_starts(100, EIGHT_BY_EIGHT, 30.0) == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]
    three = SamplingConfig(test_clips=3)
    assert uniform_starts(300, three, 30.0) == [0, 118, 236]
    assert uniform_starts(40, three, 30.0) == [0, 0, 0]
    assert uniform_starts(300, SamplingConfig(test_clips=1), 30.0) == [118]


def test_ava_clip_is_centred_on_the_keyframe_and_clamped_at_the_ends():
    np.testing.assert_array_equal(centered_indices(100, 900, EIGHT_BY_EIGHT, 30.0), np.arange(68, 132, 2))
    start = centered_indices(5, 900, EIGHT_BY_EIGHT, 30.0)
    assert start[:15].tolist() == [0] * 14 + [1] and start[-1] == 35  # 5-32 .. 5+30
    end = centered_indices(899, 900, EIGHT_BY_EIGHT, 30.0)
    assert end[0] == 867 and end[16:].tolist() == [899] * 16
    assert frame_of_time(902 - 900, 30.0) == 60


def test_keyframe_windows_cover_each_centred_clip_and_merge_overlaps():
    windows = keyframe_windows({"m": [902, 903, 910, 900]}, EIGHT_BY_EIGHT, video_start_sec=900)
    half = 64 / 30 / 2 + 1 / 30
    assert windows == {"m": [(0.0, 3 + half), (10 - half, 10 + half)]}
    for ts in (900, 902, 903, 910):
        frames = centered_indices(frame_of_time(ts - 900, 30.0), 900, EIGHT_BY_EIGHT, 30.0)
        assert any(a <= frames[0] / 30 and frames[-1] / 30 <= b for a, b in windows["m"])


def test_generator_depends_only_on_seed_epoch_and_index():
    def draw(seed, epoch, index):
        return torch.rand(4, generator=generator_for(seed, epoch, index)).tolist()

    assert draw(1, 2, 3) == draw(1, 2, 3)
    assert len({tuple(draw(*key)) for key in [(1, 2, 3), (1, 2, 4), (1, 3, 3), (2, 2, 3)]}) == 4


def test_invalid_sampling_parameters_name_the_key():
    with pytest.raises(ConfigError, match="tau"):
        SamplingConfig(alpha=4, tau=6)
    with pytest.raises(ConfigError, match="slow_frames"):
        from_mapping(SamplingConfig, {"slow_frames": 0})
    with pytest.raises(ConfigError, match="alpha"):
        from_mapping(SamplingConfig, {"alpha": "4"})
