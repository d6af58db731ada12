"""Atomic file writes: a reader never sees a half-written file under its final name.

Files and directories made here get the mode an ordinary ``open``/``mkdir`` would give them under the process's
umask (0644 / 0755 under 022), not the private 0600 / 0700 of :mod:`tempfile`, which a rename would otherwise carry
onto the final name (shared file systems, Dask workers and other users must be able to read the outputs).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OutputError(RuntimeError):
    """An output cannot be written: disk full, a folder locked by another writer, a failed tracking store.

    The message is one line naming what failed (CLIs and stages print it without a traceback)."""


def os_error_line(exc: OSError) -> str:
    """``ENOSPC (No space left on device) on /path``: an OSError by its errno's name, in one line."""
    import errno as _errno

    if exc.errno and exc.errno in _errno.errorcode:
        text = f"{_errno.errorcode[exc.errno]} ({os.strerror(exc.errno)})"
    else:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return text + (f" on {exc.filename}" if getattr(exc, "filename", None) else "")


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` swaps it, a race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS): the swap is the only portable way to read it
    os.umask(mask)
    return mask


def chmod_as_created(path: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Give ``path`` (made by :mod:`tempfile`, mode 0600/0700) the mode ``open``/``mkdir`` would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def make_staging_dir(prefix: str, suffix: str | None = None, *, dir: str | os.PathLike[str]) -> Path:  # noqa: A002
    """``tempfile.mkdtemp`` with the umask's mode, for a directory that is renamed onto its final name."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=dir))
    chmod_as_created(staging, directory=True)
    return staging


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        chmod_as_created(tmp_path)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
