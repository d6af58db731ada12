"""Decode under faults of the machine, not of the videos: a full disk, a second writer, a shard corrupted in place."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.shards import FrameShards
from tests.data.videos import make_video, read_index

CLI = [sys.executable, "-m", "slowfast.cli", "decode"]


def _videos(folder: Path, n: int = 4, frames: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_video(folder / f"v{i}.mp4", num_frames=frames + i)
    return folder


def _decode(src: Path, out: Path, short_side: int, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, str(src), str(out), "--short-side", str(short_side)], capture_output=True,
                          text=True, **popen)


def _errors(proc: subprocess.CompletedProcess) -> list[str]:
    """The error lines of a CLI run (progress bars aside); never a traceback."""
    assert "Traceback" not in proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("slowfast decode: error:")]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_same_size_corruption_of_a_shard_is_detected_by_its_checksum_and_rebuilt(tmp_path):
    sources = {f"v{i}": make_video(tmp_path / f"v{i}.mp4", num_frames=30) for i in range(2)}
    config = DecodeConfig(short_side=96, videos_per_task=1)
    out = tmp_path / "out"
    decode_videos(sources, out, config, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    name = manifest["videos"]["v1"]["runs"][0][0]
    assert len(manifest["shards"][name]["sha256"]) == 64
    shard = out / "shards" / name
    size = shard.stat().st_size
    assert size > 3 * 4000
    with open(shard, "r+b") as fh:  # same size, footer intact: only the checksum can tell
        fh.seek(size // 2 - 2000)
        fh.write(os.urandom(4000))
    assert shard.stat().st_size == size

    again = decode_videos(sources, out, config, progress=False)
    assert again.decoded == ["v1"] and again.skipped == ["v0"]
    assert [read_index(f) for f in FrameShards(out).read("v1", range(30))] == list(range(30))


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_write_error_during_decode_is_one_line_leaves_nothing_and_a_later_run_succeeds(tmp_path):
    src, out = _videos(tmp_path / "videos"), tmp_path / "out"
    failed = _decode(src, out, 480, preexec_fn=_limit_file_size(150_000))
    assert failed.returncode == 2
    lines = _errors(failed)
    assert len(lines) == 1 and lines[0].startswith("slowfast decode: error: decode: cannot write shards"), lines
    assert "EFBIG (File too large)" in lines[0]
    assert _files(out) == []  # no orphan shard, no temp file, no lock file

    again = _decode(src, out, 480)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["decoded"] == 4


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_during_decode_names_enospc_cleans_up_and_a_run_that_fits_succeeds(tmp_path, small_disk):
    src, out = _videos(tmp_path / "videos"), small_disk / "out"
    full = _decode(src, out, 480)
    assert full.returncode == 2
    lines = _errors(full)
    assert len(lines) == 1 and "ENOSPC (No space left on device)" in lines[0], lines
    assert _files(out) == []

    fits = _decode(src, out, 64)
    assert fits.returncode == 0, fits.stderr
    assert json.loads(fits.stdout.strip().splitlines()[-1])["decoded"] == 4


def test_a_second_writer_of_a_decode_folder_stops_at_once_naming_the_holder(tmp_path):
    src, out = _videos(tmp_path / "videos", n=1), tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from slowfast.utils.lock import folder_lock\n"
         f"with folder_lock({str(out)!r}, 'decode'):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (out / "shards").mkdir()
        foreign = out / "shards" / ".shard-0123456789abcdef-0000.parquet.abc.tmp"  # the holder's file in progress
        foreign.write_bytes(b"partial")
        second = _decode(src, out, 32)
        assert second.returncode == 2
        lines = _errors(second)
        assert len(lines) == 1 and f"is being written by pid {holder.pid} on " in lines[0], lines
        assert "folder_lock" in lines[0]  # the holder's command line
        assert foreign.exists() and not (out / "manifest.json").exists()
    finally:
        holder.communicate("")
    after = _decode(src, out, 32)  # the lock died with its holder's release
    assert after.returncode == 0, after.stderr
    assert not foreign.exists()  # a temp file of a writer that is gone is cleaned by the next lock holder
