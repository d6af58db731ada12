"""Which frames a clip takes (paper §3, §4 "Training"/"Inference"; Table 1's data layer).

The Fast pathway sees ``alpha * slow_frames`` frames taken every ``tau / alpha`` frames of the video at ``fps``
(30 in the paper); the Slow pathway's T frames, one every ``tau``, are picked from those by ``pack``. A clip thus
spans ``slow_frames * tau`` frames (64 for both 4×16 and 8×8).

* Training: the window starts at a uniformly random frame in ``[0, num_frames - span]``.
* Testing: ``test_clips`` windows whose starts are evenly spaced from the first frame to ``num_frames - span``
  (one clip: the centred window), so together they cover the whole video.
* AVA: the window centred on the keyframe (starting ``span // 2`` frames before it, as PySlowFast's
  ``get_sequence``).
* Short videos and windows that cross an end: indices are clamped to ``[0, num_frames - 1]`` (the first / last frame
  repeats), as PySlowFast's ``temporal_sampling`` does.

When a video was stored at another rate than ``fps``, the stride is converted to its frames (and rounded down).
Randomness is a pure function of (seed, epoch, index): :func:`generator_for`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
import numpy as np
import torch

from slowfast.config import require


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Clip geometry in the paper's words: T (``slow_frames``), α (``alpha``), τ (``tau``) at ``fps``."""

    slow_frames: int = 8
    alpha: int = 4
    tau: int = 8
    fps: float = 30.0
    test_clips: int = 10

    def __post_init__(self) -> None:
        require(self.slow_frames >= 1, "slow_frames", f"got {self.slow_frames}, allowed: >= 1")
        require(self.alpha >= 1, "alpha", f"got {self.alpha}, allowed: >= 1")
        require(self.tau >= 1 and self.tau % self.alpha == 0, "tau",
                f"got {self.tau}, allowed: a positive multiple of alpha ({self.alpha})")
        require(self.fps > 0, "fps", f"got {self.fps}, allowed: > 0")
        require(self.test_clips >= 1, "test_clips", f"got {self.test_clips}, allowed: >= 1")

    @property
    def fast_frames(self) -> int:
        """αT: frames of one clip (the Fast pathway's input)."""
        return self.alpha * self.slow_frames

    def stride(self, video_fps: float) -> float:
        """τ/α expressed in frames of a video stored at ``video_fps``."""
        return self.tau / self.alpha * video_fps / self.fps

    def span(self, video_fps: float) -> int:
        """Frames of the video covered by one clip (T·τ at the paper's rate)."""
        return max(1, round(self.slow_frames * self.tau * video_fps / self.fps))


def clip_indices(start: int, num_frames: int, config: SamplingConfig, video_fps: float) -> np.ndarray:
    """The αT frame indices of the clip starting at ``start``, clamped to the video."""
    offsets = np.floor(np.arange(config.fast_frames) * config.stride(video_fps) + 1e-9).astype(np.int64)
    return np.clip(start + offsets, 0, num_frames - 1)


def random_start(num_frames: int, config: SamplingConfig, video_fps: float, generator: torch.Generator) -> int:
    """A uniformly random start in ``[0, max(0, num_frames - span)]``."""
    high = max(0, num_frames - config.span(video_fps))
    return int(torch.randint(0, high + 1, (1,), generator=generator))


def uniform_starts(num_frames: int, config: SamplingConfig, video_fps: float) -> list[int]:
    """``test_clips`` starts evenly spaced over ``[0, num_frames - span]``."""
    high = max(0, num_frames - config.span(video_fps))
    n = config.test_clips
    if n == 1:
        return [high // 2]
    return [round(high * i / (n - 1)) for i in range(n)]


def centered_indices(center: int, num_frames: int, config: SamplingConfig, video_fps: float) -> np.ndarray:
    """The clip centred on frame ``center`` (AVA keyframes)."""
    return clip_indices(center - config.span(video_fps) // 2, num_frames, config, video_fps)


def keyframe_windows(keyframes: Mapping[str, Iterable[int]], config: SamplingConfig, *,
                     video_start_sec: int = 900) -> dict[str, list[tuple[float, float]]]:
    """Decode windows (seconds of the stored file) holding the clip centred on each keyframe, overlaps merged.

    ``keyframes`` maps a video id to its keyframe timestamps (movie seconds); pass the result as ``windows`` to
    :func:`slowfast.data.decode.decode_videos` to store only the frames AVA clips read (plus one frame each side).
    """
    half = config.slow_frames * config.tau / config.fps / 2 + 1 / config.fps
    windows: dict[str, list[tuple[float, float]]] = {}
    for vid, stamps in keyframes.items():
        merged: list[tuple[float, float]] = []
        for t in sorted({float(ts) - video_start_sec for ts in stamps}):
            start, end = max(0.0, t - half), t + half
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        windows[vid] = merged
    return windows


def stored_indices(indices: np.ndarray, keep_every: int, config: SamplingConfig, video_fps: float) -> np.ndarray:
    """Align a clip to shards that keep every ``keep_every``-th frame (``decode.frames.keep_every``).

    Each index is moved back to the stored frame at or before it. With a Fast stride (τ/α in the video's frames)
    that ``keep_every`` divides, this shifts the whole window to the previous stored start (at most
    ``keep_every - 1`` frames earlier) and leaves its spacing alone, so the pathways see frames of the same clip
    geometry: training windows start on multiples of ``keep_every`` only, test and AVA windows move back by less
    than one stored frame, and a window clamped at the video's end repeats the last stored frame.
    """
    if keep_every == 1:
        return indices
    stride = config.stride(video_fps)
    if abs(stride / keep_every - round(stride / keep_every)) > 1e-9:
        raise ValueError(f"decode.frames.keep_every {keep_every} does not divide the Fast pathway's stride "
                         f"{stride:g} frames: its frames were not stored; decode again with keep_every 1")
    return indices - indices % keep_every


def generator_for(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator determined by (seed, epoch, index) only, the same in any process or worker."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def frame_of_time(seconds: float, video_fps: float) -> int:
    """The frame at ``seconds`` on the resampled timeline (frame k is at k / fps)."""
    return int(round(seconds * video_fps))
