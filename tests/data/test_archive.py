"""safe_extract writes nothing outside its destination and extracts well-formed archives of every supported type."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from slowfast.data.archive import ArchiveError, safe_extract

FILES = {"videos/a.mp4": b"\x00\x01video-a" * 50, "videos/sub/b.mp4": b"video-b", "labels.csv": b"label,id\n"}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _add_file(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _add_link(tf: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tf.addfile(info)


def _write_tar(path: Path, members: list[tuple], mode: str = "w") -> Path:
    """members: ("file", name, data) | ("sym", name, target) | ("hard", name, target) | ("dev", name)."""
    with tarfile.open(path, mode) as tf:
        for kind, name, *rest in members:
            if kind == "file":
                _add_file(tf, name, rest[0])
            elif kind == "sym":
                _add_link(tf, name, rest[0])
            elif kind == "hard":
                _add_link(tf, name, rest[0], tarfile.LNKTYPE)
            else:
                info = tarfile.TarInfo(name)
                info.type = tarfile.CHRTYPE
                tf.addfile(info)
    return path


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


@pytest.mark.parametrize(
    "suffix, mode",
    [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz"), (".zip", "")],
)
def test_every_supported_format_extracts_the_exact_files(tmp_path, suffix, mode):
    archive = tmp_path / f"data{suffix}"
    if suffix == ".zip":
        _write_zip(archive, FILES)
    else:
        _write_tar(archive, [("file", n, d) for n, d in FILES.items()], mode)
    dest = tmp_path / "out" / "dataset"
    names = safe_extract(archive, dest)
    assert sorted(names) == sorted(FILES)
    assert _tree(dest) == FILES
    # The staging directory is gone: the parent holds only the destination.
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dataset"]


def test_symlink_and_hardlink_inside_destination_are_kept(tmp_path):
    archive = _write_tar(
        tmp_path / "links.tar",
        [("file", "data/x.bin", b"payload"), ("sym", "data/alias.bin", "x.bin"), ("hard", "copy.bin", "data/x.bin")],
    )
    dest = tmp_path / "dest"
    safe_extract(archive, dest)
    assert os.readlink(dest / "data" / "alias.bin") == "x.bin"
    assert (dest / "data" / "alias.bin").read_bytes() == b"payload"
    assert (dest / "copy.bin").read_bytes() == b"payload"


MALICIOUS_TARS = {
    "dotdot": ([("file", "ok.txt", b"fine"), ("file", "../evil.txt", b"pwned")], "../evil.txt"),
    "nested_dotdot": ([("file", "a/../../evil.txt", b"pwned")], "a/../../evil.txt"),
    "absolute": ([("file", "/tmp/evil-absolute.txt", b"pwned")], "/tmp/evil-absolute.txt"),
    "symlink_escape": ([("sym", "link", "../../outside"), ("file", "ok.txt", b"x")], "link"),
    "symlink_absolute": ([("sym", "etc", "/etc")], "etc"),
    "symlink_then_write_through": ([("sym", "d", ".."), ("file", "d/evil.txt", b"pwned")], "d"),
    "hardlink_escape": ([("hard", "h", "../evil.txt")], "h"),
    "device_file": ([("dev", "null")], "null"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_TARS))
def test_malicious_tar_is_rejected_naming_the_member_and_writes_nothing_outside(tmp_path, case):
    members, offender = MALICIOUS_TARS[case]
    box = tmp_path / "box"
    box.mkdir()
    archive = _write_tar(tmp_path / "bad.tar.gz", members, "w:gz")
    dest = box / "dest"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ArchiveError) as err:
        safe_extract(archive, dest)
    assert err.value.member == offender
    assert repr(offender) in str(err.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/evil-absolute.txt").exists()


@pytest.mark.parametrize("first_link_first", [True, False])
def test_chained_symlinks_that_only_escape_together_are_rejected(tmp_path, first_link_first):
    # Lexically both are harmless ("d/s" -> "d/.." is the root; "e" -> "d/s/.." is "d"),
    # physically "e" resolves to dest/.. -- caught by the file-system checks whatever the member order.
    links = [("sym", "d/s", ".."), ("sym", "e", "d/s/..")]
    archive = _write_tar(tmp_path / "chain.tar", links if first_link_first else links[::-1])
    box = tmp_path / "box"
    box.mkdir()
    with pytest.raises(ArchiveError, match="'e'"):
        safe_extract(archive, box / "dest")
    assert list(box.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil.txt", "sub/../../evil.txt", "/evil.txt"])
def test_zip_slip_is_rejected_and_writes_nothing(tmp_path, name):
    archive = _write_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"pwned"})
    box = tmp_path / "box"
    box.mkdir()
    with pytest.raises(ArchiveError) as err:
        safe_extract(archive, box / "dest")
    assert err.value.member == name
    assert list(box.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_entry_pointing_outside_is_rejected(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_extracting_into_an_existing_directory_merges_and_replaces_same_names(tmp_path):
    dest = tmp_path / "dataset"
    (dest / "videos").mkdir(parents=True)
    (dest / "videos" / "old.mp4").write_bytes(b"old")
    (dest / "labels.csv").write_bytes(b"stale")
    safe_extract(_write_tar(tmp_path / "d.tar", [("file", n, d) for n, d in FILES.items()]), dest)
    assert _tree(dest) == {**FILES, "videos/old.mp4": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tar", "dataset"]


def test_corrupt_or_unsupported_archives_raise_and_leave_no_staging(tmp_path):
    corrupt = tmp_path / "broken.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ArchiveError, match="broken.tar.gz"):
        safe_extract(corrupt, tmp_path / "dest")
    with pytest.raises(ArchiveError, match="unsupported archive type"):
        safe_extract(tmp_path / "file.rar", tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tar.gz"]
