"""Fixtures shared across the suite: real services started once per session, on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# Tests never talk to a user's tracking server or Prefect profile, and never send analytics.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], health_url: str, log_path: Path, *, what: str, timeout: float = 300,
                 **popen) -> subprocess.Popen:
    """Start ``cmd`` (a server on 127.0.0.1), its output into ``log_path``, and wait until ``health_url`` answers
    200; a server that exits or does not answer within ``timeout`` s fails with the end of its log."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **popen)
    proc.log_file = log  # closed by stop_server
    proc.own_group = bool(popen.get("start_new_session"))  # stopped as a whole process group
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc, kill=True)
            raise RuntimeError(f"{what} did not start: {Path(log_path).read_text()[-2000:]}")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen, *, kill: bool = False, timeout: float = 20) -> None:
    """Stop a server of :func:`start_server` (its whole process group when it has one of its own)."""
    import signal

    def send(sig):
        try:
            if getattr(proc, "own_group", False):
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()
    proc.log_file.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 with its own sqlite store and artifact root; yields its URI."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = start_server(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")],
        f"http://127.0.0.1:{port}/health", root / "server.log", what="mlflow server", timeout=120)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real `prefect server start` for the whole session (it takes 15-40 s to start), its scheduler service on,
    PREFECT_HOME (settings, sqlite database) in a temporary folder; this process and the processes it starts talk to
    it through PREFECT_API_URL. Yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    proc = start_server([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                        api + "/health", home / "server.log", what="prefect server", env=env)
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_API_URL")}
    os.environ.update(PREFECT_HOME=str(home), PREFECT_API_URL=api)
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_HOME: str(home)}):
        yield api
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    stop_server(proc, timeout=30)


@pytest.fixture(scope="session")
def prefect_harness(prefect_server):
    """The session's Prefect server (:func:`prefect_server`), for tests that only need one to be there."""
    return prefect_server


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    """MLflow keeps the tracking URI, the active experiment and active runs in module globals; a test that changes
    them must not decide which store or experiment the next test writes to (``set_experiment`` also exports
    ``MLFLOW_EXPERIMENT_ID`` to the environment, for child processes)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI")}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return
    import mlflow
    from mlflow.tracking._tracking_service import utils

    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None
    utils._tracking_uri = None
