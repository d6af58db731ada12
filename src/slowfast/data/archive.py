"""Safe extraction of dataset archives (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, .zip).

Dataset archives come from the network, so every member is checked before anything is written: no absolute path,
no ``..`` component, no symbolic or hard link whose target leaves the destination, no device file or FIFO
("zip-slip" / "tar-slip"). Extraction then happens in a staging directory beside the destination (in its parent,
on the same file system) and is renamed into place, so a failed or interrupted extraction leaves the destination as
it was. Links are checked twice: lexically from the archive listing, and physically (``realpath``) after extraction,
because a chain of individually harmless links can still point outside.

Zip archives have no portable link or device type: :mod:`zipfile` writes such entries as regular files holding the
target path, so only their names (and, for consistency, Unix symlink targets) are checked.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from slowfast.utils.io import make_staging_dir

log = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)


class ArchiveError(ValueError):
    """An archive that cannot be extracted safely; the message names the archive and the offending member."""

    def __init__(self, archive: str | os.PathLike[str], member: str | None, message: str):
        self.archive = str(archive)
        self.member = member
        where = f"{self.archive}: member {member!r}" if member is not None else self.archive
        super().__init__(f"{where}: {message}")


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has one of the supported archive suffixes."""
    return str(path).lower().endswith(TAR_SUFFIXES + ZIP_SUFFIXES)


def _escapes(path: str) -> bool:
    """Whether a POSIX path, relative to the destination root, is absolute or climbs out of the root."""
    if path.startswith("/"):
        return True
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def _check_member(archive: Path, name: str, *, link: str | None = None, hard: bool = False) -> None:
    """Reject ``name`` (and its link target) if extracting it could write or point outside the destination."""
    if not name or name.startswith("/") or ".." in name.split("/") or "\0" in name:
        raise ArchiveError(archive, name, "absolute path or '..' component is not allowed")
    if link is not None:
        # A hard link's target is relative to the archive root, a symbolic link's to the link's own directory.
        target = link if hard else posixpath.join(posixpath.dirname(name), link)
        if link.startswith("/") or _escapes(target):
            kind = "hard link" if hard else "symbolic link"
            raise ArchiveError(archive, name, f"{kind} to {link!r} points outside the destination")


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[str]:
    names = []
    for m in tf.getmembers():
        if m.isdev():  # character/block devices and FIFOs
            raise ArchiveError(archive, m.name, "device files and FIFOs are not allowed")
        _check_member(archive, m.name, link=m.linkname if (m.issym() or m.islnk()) else None, hard=m.islnk())
        names.append(m.name)
    return names


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[str]:
    names = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        link = zf.read(info).decode("utf-8", "replace") if stat.S_ISLNK(mode) else None
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            raise ArchiveError(archive, info.filename, "device files and FIFOs are not allowed")
        _check_member(archive, info.filename.rstrip("/") or info.filename, link=link)
        names.append(info.filename)
    return names


def _check_links_stay_inside(archive: Path, root: Path) -> None:
    """Physical check after extraction: every symbolic link under ``root`` resolves inside ``root``."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = os.path.join(dirpath, entry)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if os.path.commonpath([real, real_root]) != real_root:
                    member = os.path.relpath(path, root)
                    raise ArchiveError(archive, member, "symbolic link resolves outside the destination")


def _move_into(src: Path, dst: Path) -> None:
    """Rename ``src`` onto ``dst``, merging directory trees that already exist (never following links in dst)."""
    if src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        for child in src.iterdir():
            _move_into(child, dst / child.name)
        src.rmdir()
    else:
        os.replace(src, dst)


def safe_extract(archive_path: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> list[str]:
    """Extract ``archive_path`` into ``dest_dir`` after checking every member; return the member names.

    Raises :class:`ArchiveError` naming the offending member, before anything is written to ``dest_dir``, for
    absolute paths, ``..`` components, links leaving the destination, device files, unsupported or corrupt
    archives. If ``dest_dir`` does not exist it appears at once (one rename of the staging directory); if it exists,
    the extracted entries are merged into it, each file by one rename, existing files of the same name replaced.
    """
    archive = Path(archive_path)
    dest = Path(dest_dir).resolve()
    lower = archive.name.lower()
    if not lower.endswith(TAR_SUFFIXES + ZIP_SUFFIXES):
        allowed = ", ".join(TAR_SUFFIXES + ZIP_SUFFIXES)
        raise ArchiveError(archive, None, f"unsupported archive type; allowed suffixes: {allowed}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(f".{dest.name}.extract-", dir=dest.parent)
    try:
        try:
            if lower.endswith(ZIP_SUFFIXES):
                with zipfile.ZipFile(archive) as zf:
                    names = _zip_members(archive, zf)
                    zf.extractall(staging)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    names = _tar_members(archive, tf)
                    # The "data" filter re-checks each member against the real file system while extracting.
                    tf.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            if isinstance(exc, tarfile.FilterError) and exc.tarinfo is not None:
                raise ArchiveError(archive, exc.tarinfo.name, str(exc)) from exc
            raise ArchiveError(archive, None, f"cannot extract: {exc}") from exc
        _check_links_stay_inside(archive, staging)
        try:
            _move_into(staging, dest)
        except OSError as exc:
            raise ArchiveError(archive, None, f"cannot move extracted files into {dest}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("extracted %d members of %s into %s", len(names), archive, dest)
    return names
