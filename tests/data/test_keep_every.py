"""decode.frames.keep_every: 2 stores the even frames only (all the Fast pathway's stride-2 sampling reads), and the
samplers align their windows to them."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from slowfast.config import ConfigError
from slowfast.data import decode
from slowfast.data.datasets import KineticsDataset
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.sampling import SamplingConfig, stored_indices
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import TransformConfig
from tests.data.videos import make_video

SAMPLING = SamplingConfig(slow_frames=2, alpha=4, tau=8, test_clips=3)  # Fast: 8 frames every 2, span 16
TRANSFORM = TransformConfig(train_scale=(48, 60), crop=40, test_size=48)


def _rows(out) -> dict[tuple[str, int], bytes]:
    """Every stored frame's JPEG by (video, frame): both videos have a frame 0, and shard names are hashes whose
    order says nothing about which video they hold."""
    rows: dict[tuple[str, int], bytes] = {}
    for path in sorted((out / "shards").glob("*.parquet")):
        table = pq.read_table(path)
        rows.update(zip(zip(table.column("video_id").to_pylist(), table.column("frame").to_pylist()),
                        table.column("jpeg").to_pylist()))
    return rows


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep")
    sources = {"a": make_video(root / "a.mp4", width=64, height=48, num_frames=75, rate=25,
                               options={"preset": "medium", "bframes": "3", "crf": "12"}),
               "b": make_video(root / "b.mp4", width=48, height=48, num_frames=61)}
    decode_videos(sources, root / "all", DecodeConfig(short_side=48), progress=False)
    decode_videos(sources, root / "even", DecodeConfig(short_side=48, keep_every=2), progress=False)
    return root


def test_even_frames_are_the_same_bytes_as_in_full_shards_and_half_of_them(decoded):
    full, even = _rows(decoded / "all"), _rows(decoded / "even")
    assert sorted(even) == [k for k in sorted(full) if k[1] % 2 == 0]
    assert all(even[k] == full[k] for k in even)
    manifest = json.loads((decoded / "even" / "manifest.json").read_text())["videos"]
    full_manifest = json.loads((decoded / "all" / "manifest.json").read_text())["videos"]
    for vid in ("a", "b"):
        assert manifest[vid]["keep_every"] == 2 and "keep_every" not in full_manifest[vid]
        assert manifest[vid]["num_frames"] == full_manifest[vid]["num_frames"]  # the same timeline
        assert manifest[vid]["stored_frames"] == (full_manifest[vid]["num_frames"] + 1) // 2
    assert FrameShards(decoded / "even").info("a").keep_every == 2


def test_the_default_keeps_the_params_key_of_shards_written_before_the_option():
    import hashlib

    old = {"version": decode.FORMAT_VERSION, "fps": 30.0, "short_side": 256, "jpeg_quality": 90, "windows": None}
    expected = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert decode._params_key(DecodeConfig(), None) == expected
    assert decode._params_key(DecodeConfig(keep_every=2), None) != expected


def test_training_and_test_clips_read_only_stored_frames_with_the_clip_geometry_kept(decoded):
    even, full = FrameShards(decoded / "even"), FrameShards(decoded / "all")
    records = [("a", 0), ("b", 1)]
    for train in (True, False):
        ds = KineticsDataset(even, records, sampling=SAMPLING, transform=TRANSFORM, pack=lambda c: [c[:, ::4], c],
                             train=train, seed=3)
        ref = KineticsDataset(full, records, sampling=SAMPLING, transform=TRANSFORM, pack=lambda c: [c[:, ::4], c],
                              train=train, seed=3)
        for epoch in range(3):
            ds.set_epoch(epoch)
            ref.set_epoch(epoch)
            for index in range(len(ds)):
                item, full_item = ds[index], ref[index]
                idx = item["frames"].reshape(-1, SAMPLING.fast_frames).numpy()
                full_idx = full_item["frames"].reshape(-1, SAMPLING.fast_frames).numpy()
                assert (idx % 2 == 0).all(), "only stored frames are read"
                n = full.info(records[index][0]).num_frames
                inside = idx[:, -1] < n - 2  # windows clamped at the end repeat the last stored frame
                assert (np.diff(idx[inside], axis=1) == 2).all(), "the Fast stride is kept"
                assert ((full_idx - idx >= 0) & (full_idx - idx <= 1)).all(), "moved back by < 1 stored frame"
                if (idx == full_idx).all():  # same window: the same pixels
                    for a, b in zip(item["inputs"], full_item["inputs"]):
                        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_stride_that_keep_every_does_not_divide_is_refused():
    odd = SamplingConfig(slow_frames=2, alpha=8, tau=8)  # Fast stride 1: needs every frame
    with pytest.raises(ValueError, match="keep_every"):
        stored_indices(np.arange(16), 2, odd, 30.0)
    assert (stored_indices(np.arange(5), 1, odd, 30.0) == np.arange(5)).all()
    with pytest.raises(ConfigError, match="keep_every"):
        DecodeConfig(keep_every=0)
