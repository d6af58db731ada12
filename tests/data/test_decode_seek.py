"""AVA movies as downloaded: the decode stage seeks to the keyframe windows of a full movie, and stores exactly the
frames that decoding from the start stores."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from slowfast.data import decode
from slowfast.data.decode import DecodeConfig, decode_videos

WINDOWS = [(900.0, 903.0), (930.0, 931.5)]


def _stored(out: Path) -> dict[int, bytes]:
    frames: dict[int, bytes] = {}
    for path in sorted((out / "shards").glob("*.parquet")):
        table = pq.read_table(path)
        frames.update(zip(table.column("frame").to_pylist(), table.column("jpeg").to_pylist()))
    return frames


def _movie(path: Path, seconds: float, *, fps: int = 6, container_fmt: str | None = None) -> Path:
    """A long H.264 movie with B-frames and GOPs of 250 frames (x264 preset medium); every frame differs."""
    width, height = 48, 32
    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format=container_fmt) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "medium", "crf": "18", "bframes": "3", "g": "250"}
        for i in range(int(seconds * fps)):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (x * 5 + i * 3) % 256
            img[..., 1] = (y * 7 + i // 3) % 256
            img[..., 2] = (i * 11) % 256
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def long_movie(tmp_path_factory) -> Path:
    return _movie(tmp_path_factory.mktemp("movie") / "movie.mkv", 940)


def _decode_from_start(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(decode, "SEEK_MIN_START_SEC", math.inf)  # the rule without seeking: decode the whole stream
        return decode_videos(*args, **kwargs)


def test_decoding_a_long_movie_from_second_900_gives_the_frames_of_decoding_from_the_start(
        long_movie, tmp_path, monkeypatch):
    config = DecodeConfig(fps=30, short_side=32)
    windows = {"movie": WINDOWS}
    calls = []
    real_seek = decode.seek_to_windows
    monkeypatch.setattr(decode, "seek_to_windows", lambda *a: calls.append(1) or real_seek(*a))
    sought = decode_videos({"movie": long_movie}, tmp_path / "seek", config, windows=windows, progress=False)
    assert calls and sought.decoded == ["movie"]
    full = _decode_from_start(monkeypatch, {"movie": long_movie}, tmp_path / "full", config, windows=windows,
                              progress=False)
    assert full.decoded == ["movie"]
    a, b = _stored(tmp_path / "seek"), _stored(tmp_path / "full")
    # every target frame of both windows (30 fps from a 6 fps source: each source frame repeated 5 times)
    expected = [k for k in range(940 * 30) if any(s - 1e-6 <= k / 30 <= e + 1e-6 for s, e in WINDOWS)]
    assert sorted(a) == sorted(b) == expected
    assert a == b, "same frames, byte for byte"
    import json

    entry = json.loads((tmp_path / "seek" / "manifest.json").read_text())["videos"]["movie"]
    assert entry["num_frames"] == expected[-1] + 1, "the stored timeline ends with the last window"


def test_seeking_lands_before_the_window_on_a_keyframe(long_movie):
    container, stream = decode.open_video(long_movie, threads=1)
    with container:
        frames, first, last_end = decode.seek_to_windows(container, stream, WINDOWS, Fraction(30))
        first_frame = next(frames)
    t0 = first_frame.pts * first_frame.time_base - decode.stream_origin(stream)
    assert first_frame.key_frame
    assert 900 - 250 / 6 - decode.SEEK_MARGIN_SEC <= t0 <= 900  # within one GOP before the window
    assert first == math.ceil(t0 * 30) and last_end == Fraction(1863, 2)


def test_windows_near_the_start_decode_from_the_start(tmp_path):
    movie = _movie(tmp_path / "short.mp4", 10)
    container, stream = decode.open_video(movie)
    with container:
        assert decode.seek_to_windows(container, stream, [(2.0, 4.0)], Fraction(30)) is None


def test_the_decode_stage_reads_full_ava_movies_from_videos_and_stores_only_their_keyframe_windows(
        long_movie, tmp_path, monkeypatch):
    """The workflow as DVC runs it: `python -m stages.decode --dataset ava` on a movie as the CVDF mirror serves it
    (`ava/videos/<id>.mkv`, annotated from second 902) with `ava.video_start_sec: 0`."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[2]
    raw = tmp_path / "raw" / "ava"
    (raw / "videos").mkdir(parents=True)
    (raw / "annotations").mkdir()
    shutil.copy(long_movie, raw / "videos" / "movie.mkv")
    (raw / "annotations" / "ava_train_v2.2.csv").write_text("movie,0902,0.1,0.1,0.5,0.9,12,0\n")
    (raw / "annotations" / "ava_val_v2.2.csv").write_text("movie,0903,0.1,0.1,0.5,0.9,12,0\n")
    (raw / "annotations" / "ava_action_list_v2.2_for_activitynet_2019.pbtxt").write_text(
        'item {\n  name: "stand"\n  id: 12\n}\n')
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ava"]["video_start_sec"] = 0
    params["decode"]["frames"]["short_side"] = 32
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-m", "stages.decode", "--dataset", "ava", "--raw", str(raw), "--out",
                    str(tmp_path / "shards"), "--metrics", str(tmp_path / "m.json"), "--params",
                    str(tmp_path / "params.yaml")], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "m.json").read_text())["decoded"] == 1
    stored = _stored(tmp_path / "shards")
    assert 902 * 30 in stored and 903 * 30 in stored
    assert min(stored) > 899 * 30 and max(stored) < 906 * 30, "only the windows around the keyframes"
    windows = json.loads((tmp_path / "shards" / "manifest.json").read_text())["videos"]["movie"]
    config = DecodeConfig(fps=30, short_side=32)
    lo, hi = min(stored) / 30, max(stored) / 30
    reference = _decode_from_start(monkeypatch, {"movie": long_movie}, tmp_path / "ref", config,
                                   windows={"movie": [(lo - 1e-9, hi + 1e-9)]}, progress=False)
    assert reference.decoded == ["movie"] and windows["num_frames"] == max(stored) + 1
    assert _stored(tmp_path / "ref") == stored, "the frames decoding from the start stores"
