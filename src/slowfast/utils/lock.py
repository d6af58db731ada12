"""One writer per output folder: an advisory lock file inside the folder, naming its holder.

Two runs writing the same folder (two ``slowfast decode`` into one ``out``, a second ``dvc repro`` while a trainer
still runs, a Prefect retry beside an orphan) would delete or overwrite each other's files. Every writer of an
output folder (decode, the training stages, download) holds :func:`folder_lock` while it writes: ``fcntl.flock`` on
``<folder>/.slowfast.lock``, taken without waiting. A second writer fails at once with one line naming the holder
(pid, host, command, since when), which the file records. The kernel releases the lock when its process dies, so a
killed run never leaves a stale lock; the file is removed on release, so a finished run leaves nothing behind.

The lock is advisory and local to one host's kernel (NFS ``flock`` is emulated by ``fcntl`` locks on Linux, which
works on NFSv4); readers never take it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from slowfast.utils.io import OutputError

log = logging.getLogger(__name__)

LOCK_NAME = ".slowfast.lock"


class FolderLockedError(OutputError):
    """Another process holds the folder's lock; the message names it."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"pid {info['pid']} on {info['host']} since {since}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file names no holder yet)"


def _command() -> str:
    """This process's command line, in one line of at most 300 characters."""
    try:
        args = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in args)
    except OSError:
        text = " ".join([sys.executable, *sys.argv])
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], purpose: str) -> Iterator[Path]:
    """Hold the write lock of ``folder`` (created if missing) for the ``with`` block; raise
    :class:`FolderLockedError` at once when another process holds it. ``purpose`` names the writer in messages."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(
                f"{purpose}: {folder} is being written by {_holder(path)}; wait for it to finish or stop it "
                f"(lock file {path})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder released and removed the file between our open and flock: take the new one
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": _command()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding the lock, so nobody else can hold this inode
        os.close(fd)
