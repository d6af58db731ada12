"""A stage process dies with the ``dvc`` that started it, checkpointing first.

``dvc repro`` runs each stage as a child process (through a shell). When ``dvc`` itself is stopped -- SIGTERM from a
scheduler, a Prefect cancellation, a closed terminal -- it does not pass the signal on: the stage kept running with
parent 1, and the next ``dvc repro`` started a second trainer on the same folder. :func:`follow_dvc` starts a
daemon thread that watches the ``dvc`` process above this one (its pid and start time, so a recycled pid does not
fool it) and, once it is gone, sends SIGTERM to this process: the training loop's handler finishes the current
step, writes a checkpoint and exits (:mod:`slowfast.engine.train`); other stages stop at once, their outputs being
written atomically. ``prctl(PR_SET_PDEATHSIG)`` is not enough on its own: the stage's parent is the shell ``dvc``
spawns, which outlives ``dvc``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_started = False


def dvc_ancestor() -> tuple[int, float] | None:
    """``(pid, create_time)`` of the nearest ``dvc`` process above this one, or None when not run by DVC."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        proc = psutil.Process().parent()
        while proc is not None:
            args = proc.cmdline()
            # `dvc ...` is `python .../bin/dvc ...` once the console script's shebang runs; or `python -m dvc`.
            if any(Path(a).name == "dvc" for a in args[:2]) or args[1:3] == ["-m", "dvc"]:
                return proc.pid, proc.create_time()
            proc = proc.parent()
    except (psutil.Error, OSError):
        return None
    return None


def _alive(pid: int, created: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def follow_dvc(*, poll_seconds: float = 0.5) -> int | None:
    """Send this process SIGTERM when the ``dvc`` above it exits; returns that ``dvc``'s pid (None: not under DVC).

    Idempotent; the watcher is a daemon thread, so it never keeps the process alive."""
    global _started
    found = dvc_ancestor()
    if found is None or _started:
        return found[0] if found else None
    _started = True
    pid, created = found

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(poll_seconds):
            if not _alive(pid, created):
                log.warning("dvc (pid %d) has exited: stopping this stage (SIGTERM to pid %d)", pid, os.getpid())
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="slowfast-follow-dvc", daemon=True).start()
    return pid
