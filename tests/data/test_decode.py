"""Decode stage: real videos encoded with PyAV -> Parquet frame shards, failure records, idempotent re-runs."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from slowfast.cli import main as cli_main
from slowfast.config import ConfigError, from_mapping
from slowfast.data import decode
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.shards import FrameShards
from tests.data.videos import make_audio_only, make_video, read_index, truncate

NTSC = Fraction(30000, 1001)


def direct_decode(path: Path, fps: float, width: int, height: int) -> tuple[np.ndarray, list[int]]:
    """Independent reference: every frame decoded by PyAV, then for each k the source frame nearest to k / fps."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    times = np.array([float(f.pts * f.time_base) for f in frames])
    times -= times[0]
    end = times[-1] + float(frames[-1].duration * frames[-1].time_base)
    count = math.ceil(end * fps - 1e-9)
    nearest = [int(np.argmin(np.abs(times - k / fps))) for k in range(count)]
    images = np.stack([frames[i].to_ndarray(width=width, height=height, format="rgb24",
                                            interpolation="BILINEAR") for i in nearest])
    return images, nearest


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


CODECS = [("libx264", "mp4"), ("mpeg4", "avi"), ("libvpx-vp9", "webm"), ("mjpeg", "mkv"), ("libx264", "mkv")]


@pytest.mark.parametrize(("codec", "ext"), CODECS)
def test_shard_frames_match_direct_pyav_decode_at_same_fps_and_size(tmp_path, codec, ext):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV wheel has no {codec} encoder")
    # 29.97 fps source resampled to 30 fps; 66x50 scaled to the odd size 49x37
    src = make_video(tmp_path / f"v.{ext}", codec=codec, width=66, height=50, num_frames=24, rate=NTSC)
    report = decode_videos({"v": src}, tmp_path / "out", DecodeConfig(short_side=37), progress=False)
    assert report.decoded == ["v"] and not report.failures
    shards = FrameShards(tmp_path / "out")
    info = shards.info("v")
    assert (info.height, info.width) == (37, 49)
    expected, nearest = direct_decode(src, 30.0, info.width, info.height)
    assert info.num_frames == len(expected) >= 24  # 24 frames of 1001/30000 s last about 0.8 s
    got = shards.read("v", np.arange(info.num_frames))
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert min(psnr(g, e) for g, e in zip(got, expected)) >= 30.0
    assert [read_index(g) for g in got] == nearest


def test_variable_frame_rate_takes_the_nearest_source_frame(tmp_path):
    # source frames at 0, 30, 70, 100, 160, 200 ms (33 ms each); targets at k/30 s, hand-computed nearest frames:
    # 0->0, 33.3->30, 66.7->70, 100->100, 133.3->160 (mid 130), 166.7->160, 200->200; 233.3 >= 233 ends the video
    src = make_video(tmp_path / "vfr.mkv", pts=[0, 30, 70, 100, 160, 200], num_frames=6,
                     time_base=Fraction(1, 1000))
    decode_videos({"vfr": src}, tmp_path / "out", DecodeConfig(short_side=48), progress=False)
    shards = FrameShards(tmp_path / "out")
    frames = shards.read("vfr", range(shards.info("vfr").num_frames))
    assert [read_index(f) for f in frames] == [0, 1, 2, 3, 4, 4, 5]


def test_downsampling_60_fps_keeps_every_other_frame(tmp_path):
    src = make_video(tmp_path / "fast.mp4", num_frames=40, rate=60)
    decode_videos({"fast": src}, tmp_path / "out", DecodeConfig(short_side=48), progress=False)
    shards = FrameShards(tmp_path / "out")
    assert shards.info("fast").num_frames == 20
    assert [read_index(f) for f in shards.read("fast", range(20))] == list(range(0, 40, 2))


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotation_metadata_turns_stored_frames_upright(tmp_path, rotation):
    src = make_video(tmp_path / "rot.mp4", width=64, height=48, num_frames=3, rotation=rotation)
    decode_videos({"rot": src}, tmp_path / "out", DecodeConfig(short_side=48), progress=False)
    shards = FrameShards(tmp_path / "out")
    info = shards.info("rot")
    assert (info.height, info.width) == (64, 48)  # portrait after rotation
    coded, _ = direct_decode(src, 30.0, 64, 48)
    upright = np.rot90(coded[0], k=rotation // 90)  # PyAV: rotation is counter-clockwise degrees
    assert psnr(shards.read("rot", [0])[0], upright) >= 30.0


def test_every_failure_kind_becomes_a_record_and_the_other_videos_finish(tmp_path):
    good = make_video(tmp_path / "good.mp4", num_frames=10)
    good2 = make_video(tmp_path / "good2.webm", codec="libvpx-vp9", num_frames=10)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n" * 50)
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    sources = {
        "good": good, "good2": good2, "empty": empty, "text": text, "noise": noise,
        "audio": make_audio_only(tmp_path / "audio.m4a"),
        "cut_mp4": truncate(make_video(tmp_path / "cut.mp4", num_frames=60)),
        "cut_mkv": truncate(make_video(tmp_path / "cut.mkv", num_frames=60)),
        "missing": tmp_path / "missing.mp4",
    }
    report = decode_videos(sources, tmp_path / "out", DecodeConfig(short_side=32), progress=False)
    assert report.decoded == ["good", "good2"]
    reasons = {f["video_id"]: f["reason"] for f in report.failures}
    assert set(reasons) == set(sources) - {"good", "good2"}
    assert "0 bytes" in reasons["empty"]
    assert "no video stream" in reasons["audio"]
    assert "truncated" in reasons["cut_mkv"]
    assert "missing" in reasons["missing"]
    for vid in ("text", "noise", "cut_mp4"):
        assert "cannot open" in reasons[vid]
    on_disk = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert {f["video_id"] for f in on_disk} == set(reasons)
    assert all(f["path"] == str(sources[f["video_id"]]) for f in on_disk)
    assert FrameShards(tmp_path / "out").videos() == ["good", "good2"]


def test_rerun_skips_intact_videos_and_repairs_a_truncated_shard(tmp_path):
    sources = {f"v{i}": make_video(tmp_path / f"v{i}.mp4", num_frames=12 + i) for i in range(3)}
    config = DecodeConfig(short_side=32, videos_per_task=1)  # one shard per video
    out = tmp_path / "out"
    first = decode_videos(sources, out, config, progress=False)
    assert first.decoded == ["v0", "v1", "v2"]
    shard_files = sorted((out / "shards").iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in shard_files}

    again = decode_videos(sources, out, config, progress=False)
    assert again.decoded == [] and sorted(again.skipped) == ["v0", "v1", "v2"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == mtimes

    v1_shard = json.loads((out / "manifest.json").read_text())["videos"]["v1"]["runs"][0][0]
    truncate(out / "shards" / v1_shard, 0.6)
    repaired = decode_videos(sources, out, config, progress=False)
    assert repaired.decoded == ["v1"] and sorted(repaired.skipped) == ["v0", "v2"]
    shards = FrameShards(out)
    assert [read_index(f) for f in shards.read("v1", range(13))] == list(range(13))

    # a replaced source file (new content, same id) is decoded again; other parameters re-decode everything
    make_video(sources["v2"], num_frames=20)
    changed = decode_videos(sources, out, config, progress=False)
    assert changed.decoded == ["v2"] and FrameShards(out).info("v2").num_frames == 20
    resized = decode_videos(sources, out, DecodeConfig(short_side=24, videos_per_task=1), progress=False)
    assert resized.decoded == ["v0", "v1", "v2"] and FrameShards(out).info("v0").height == 24
    referenced = {run[0] for v in json.loads((out / "manifest.json").read_text())["videos"].values()
                  for run in v["runs"]}
    assert {p.name for p in (out / "shards").iterdir()} == referenced  # stale shards removed


def test_windows_keep_only_their_frames_under_full_timeline_indices(tmp_path):
    src = make_video(tmp_path / "movie.mp4", num_frames=60)
    decode_videos({"movie": src}, tmp_path / "out", DecodeConfig(short_side=32),
                  windows={"movie": [(0.5, 0.7), (1.5, 1.6)]}, progress=False)
    shards = FrameShards(tmp_path / "out")
    info = shards.info("movie")
    assert info.num_frames == 60 and info.stored_frames == 7 + 4  # frames 15..21 and 45..48
    assert [read_index(f) for f in shards.read("movie", [15, 21, 45, 48])] == [15, 21, 45, 48]
    with pytest.raises(IndexError, match="not stored"):
        shards.read("movie", [22])


def test_shards_respect_the_size_bound_and_videos_span_shards(tmp_path):
    src = make_video(tmp_path / "long.mp4", width=160, height=128, num_frames=90)
    config = DecodeConfig(short_side=128, shard_max_bytes=2**16, row_group_frames=8, jpeg_quality=95)
    decode_videos({"long": src}, tmp_path / "out", config, progress=False)
    files = sorted((tmp_path / "out" / "shards").iterdir())
    assert len(files) >= 2
    for path in files:
        meta = pq.ParquetFile(path).metadata
        assert all(meta.row_group(i).num_rows <= 8 for i in range(meta.num_row_groups))
        jpeg_bytes = sum(len(b) for b in pq.read_table(path, columns=["jpeg"]).column("jpeg").to_pylist())
        biggest = max(len(b) for b in pq.read_table(path, columns=["jpeg"]).column("jpeg").to_pylist())
        assert jpeg_bytes < config.shard_max_bytes + biggest
    shards = FrameShards(tmp_path / "out")
    assert [read_index(f) for f in shards.read("long", range(90))] == list(range(90))


def test_two_worker_processes_store_the_same_frames_as_one(tmp_path):
    sources = {f"v{i}": make_video(tmp_path / f"v{i}.mp4", num_frames=10 + i) for i in range(4)}
    decode_videos(sources, tmp_path / "one", DecodeConfig(short_side=32), workers=1, progress=False)
    report = decode_videos(sources, tmp_path / "two", DecodeConfig(short_side=32), workers=2, progress=False)
    assert report.decoded == sorted(sources)
    one, two = FrameShards(tmp_path / "one"), FrameShards(tmp_path / "two")
    for vid in sources:
        n = one.info(vid).num_frames
        assert two.info(vid).num_frames == n
        np.testing.assert_array_equal(one.read(vid, range(n)), two.read(vid, range(n)))


def test_invalid_parameters_fail_before_any_work_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="fps"):
        from_mapping(DecodeConfig, {"fps": 0})
    with pytest.raises(ConfigError, match="short_side"):
        DecodeConfig(short_side=2)
    with pytest.raises(ValueError, match="windows"):
        decode_videos({"a": tmp_path / "a.mp4"}, tmp_path / "out", windows={"a": [(3.0, 1.0)]}, progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_decodes_a_folder_with_file_stems_as_ids(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    make_video(tmp_path / "src" / "clip_a.mp4", num_frames=5)
    make_video(tmp_path / "src" / "clip_b.avi", codec="mpeg4", num_frames=5)
    assert cli_main(["decode", str(tmp_path / "src"), str(tmp_path / "out"), "--short-side", "32",
                     "--fps", "15"]) == 0
    shards = FrameShards(tmp_path / "out")
    assert shards.videos() == ["clip_a", "clip_b"]
    assert shards.info("clip_a").fps == 15.0 and shards.info("clip_a").num_frames == 3
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["decoded"] == 2


def test_any_chunk_mapper_writes_the_process_pools_bytes_and_a_rerun_plans_no_chunk(tmp_path, monkeypatch):
    sources = {f"v{i}": make_video(tmp_path / f"v{i}.mp4", num_frames=8 + i) for i in range(5)}
    sources["broken"] = tmp_path / "broken.mp4"
    sources["broken"].write_bytes(b"not a video")
    config = DecodeConfig(short_side=32)
    decode_videos(sources, tmp_path / "pool", config, workers=2, progress=False)

    seen = []

    def elsewhere(fn, chunks):  # a worker in another directory, chunks in another order: as on a cluster
        seen.extend(chunks)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=os.chdir,
                                 initargs=(str(tmp_path / "pool"),)) as pool:
            return list(pool.map(fn, reversed(chunks)))

    relative = {vid: path.relative_to(tmp_path) for vid, path in sources.items()}
    monkeypatch.chdir(tmp_path)
    report = decode_videos(relative, "mapped", config, workers=2, map_chunks=elsewhere, progress=False)
    assert len(seen) > 1 and sorted(v["video_id"] for c in seen for v in c.videos) == sorted(sources)
    assert report.decoded == [f"v{i}" for i in range(5)] and [f["video_id"] for f in report.failures] == ["broken"]

    pool, mapped = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("pool", "mapped"))
    assert {v: e["path"] for v, e in mapped["videos"].items()} == {v: str(p) for v, p in relative.items()
                                                                     if v != "broken"}
    for entry in [*pool["videos"].values(), *mapped["videos"].values()]:
        entry.pop("path")
    assert mapped == pool  # same chunks, same shard names, same runs
    for name in pool["shards"]:
        assert (tmp_path / "mapped/shards" / name).read_bytes() == (tmp_path / "pool/shards" / name).read_bytes()

    plan = decode.plan_decode(relative, "mapped", config, workers=2)
    assert plan.skipped == [f"v{i}" for i in range(5)]  # only the failed video is tried again
    assert [v["video_id"] for c in plan.chunks for v in c.videos] == ["broken"]
