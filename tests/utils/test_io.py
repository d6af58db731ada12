"""Atomic writes never leave a half-written file under the final name."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from slowfast.utils.io import atomic_path, write_json_atomic


def test_failed_write_leaves_previous_content_and_no_temp_files(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_successful_write_replaces_content_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    write_json_atomic(target, {"v": 1})
    write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_write_gives_the_file_the_umask_mode_not_mkstemps_0600(tmp_path, umask, mask, mode):
    umask(mask)
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    assert stat.S_IMODE(target.stat().st_mode) == mode
    with atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"weights")
    assert stat.S_IMODE((tmp_path / "model.pt").stat().st_mode) == mode


def test_extracted_archive_folder_gets_the_umask_mode(tmp_path, umask):
    from slowfast.data.archive import safe_extract

    umask(0o022)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(tmp_path / "src" / "a.txt", arcname="a.txt")
    safe_extract(archive, tmp_path / "new")
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755


def test_decode_cli_outputs_are_readable_by_others_under_umask_022(tmp_path, umask):
    from tests.data.videos import make_video

    umask(0o022)
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", num_frames=8, rate=8)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "slowfast.cli", "decode", str(videos), str(out), "--short-side", "32"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    files = [out / "manifest.json", out / "failures.json", *(out / "shards").glob("*.parquet")]
    assert len(files) == 3
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {oct(0o644)}
