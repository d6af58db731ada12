"""The decode rule on the encodings real datasets have: B-frames (reordered streams, x264 preset medium), the mp4
edit list they bring, variable frame rate with B-frames, and HEVC; each checked frame by frame against an
independent direct decode with PyAV."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.shards import FrameShards
from tests.data.videos import make_video, read_index

MEDIUM = {"preset": "medium", "bframes": "3", "crf": "12"}


def reference(path: Path, fps: float) -> tuple[list[int], list[np.ndarray]]:
    """For each target frame k, the source frame (in presentation order) nearest k / fps after the stream's start
    time (the first frame's time when none is declared), ties to the earlier; and the source images."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = None if stream.start_time is None else Fraction(stream.start_time) * stream.time_base
        frames = sorted(container.decode(stream), key=lambda f: f.pts)
    times = [Fraction(f.pts) * f.time_base for f in frames]
    origin = times[0] if origin is None else origin
    times = [t - origin for t in times]
    end = times[-1] + Fraction(frames[-1].duration) * frames[-1].time_base
    fps = Fraction(fps)
    nearest = []
    for k in range(math.ceil(end * fps)):
        target = k / fps
        nearest.append(min(range(len(times)), key=lambda i: (abs(times[i] - target), i)))
    images = [f.to_ndarray(format="rgb24") for f in frames]
    return nearest, images


def _check(path: Path, tmp_path: Path, fps: float = 30.0) -> FrameShards:
    nearest, images = reference(path, fps)
    height, width = images[0].shape[:2]
    decode_videos({"v": path}, tmp_path / "out", DecodeConfig(fps=fps, short_side=min(height, width)),
                  progress=False)
    shards = FrameShards(tmp_path / "out")
    info = shards.info("v")
    assert info.num_frames == len(nearest)
    frames = shards.read("v", np.arange(info.num_frames))
    assert [read_index(f) for f in frames] == nearest, "each target frame is the nearest source frame"
    for k in range(0, info.num_frames, 7):
        diff = frames[k].astype(np.float64) - images[nearest[k]].astype(np.float64)
        assert 10 * math.log10(255**2 / max(np.mean(diff**2), 1e-9)) > 30
    return shards


def test_b_frames_reordered_by_x264_medium_decode_to_the_nearest_frames(tmp_path):
    path = make_video(tmp_path / "b.mkv", width=64, height=48, num_frames=50, rate=25, options=MEDIUM)
    with av.open(str(path)) as container:  # the stream really is reordered: decode order != presentation order
        dts_order = [p.pts for p in container.demux(video=0) if p.pts is not None]
    assert dts_order != sorted(dts_order)
    _check(path, tmp_path)


def test_an_mp4_with_b_frames_and_its_edit_list_decodes_to_the_nearest_frames(tmp_path):
    path = make_video(tmp_path / "e.mp4", width=64, height=48, num_frames=45, rate=Fraction(30000, 1001),
                      options=MEDIUM)
    assert b"elst" in path.read_bytes(), "the mov muxer wrote an edit list (it hides the B-frame delay)"
    _check(path, tmp_path)


def test_variable_frame_rate_with_b_frames_decodes_to_the_nearest_frames(tmp_path):
    rng = np.random.default_rng(0)
    steps = rng.choice([20, 33, 50, 67], size=60)  # ms between frames: 15-50 fps
    pts = np.concatenate([[0], np.cumsum(steps[:-1])]).tolist()
    path = make_video(tmp_path / "vfr.mkv", width=64, height=48, num_frames=60, pts=pts,
                      time_base=Fraction(1, 1000), options=MEDIUM)
    _check(path, tmp_path)


@pytest.mark.skipif("libx265" not in av.codecs_available, reason="PyAV built without an HEVC encoder")
def test_hevc_decodes_to_the_nearest_frames(tmp_path):
    path = make_video(tmp_path / "h.mp4", codec="libx265", width=64, height=48, num_frames=40, rate=24,
                      options={"preset": "fast", "crf": "10", "x265-params": "bframes=3:log-level=none"})
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    _check(path, tmp_path)
