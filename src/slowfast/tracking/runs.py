"""MLflow runs for the pipeline: one parent run per pipeline execution, one child run per stage.

DVC runs every stage as its own process, so a stage cannot inherit an active MLflow run. Stages are grouped instead
by a *pipeline id*, carried in the tag ``slowfast.pipeline_id`` of the parent run and of every child run (whose
``mlflow.parentRunId`` names the parent):

- an orchestrator (the Prefect flow) creates the parent run itself and passes its id to the stage processes in the
  environment variable ``SLOWFAST_PIPELINE_ID``;
- under a plain ``dvc repro``, the id is derived from the ``dvc`` process that launched the stage (its pid and start
  time), so all stages of one ``dvc repro`` share one parent run, and the next ``dvc repro`` gets a new one;
- a stage run by hand outside DVC gets a parent run of its own.

The store is MLflow's own default (``sqlite:///<repo>/mlflow.db``) unless ``MLFLOW_TRACKING_URI`` names another,
e.g. a team server; a server that cannot be reached is an error before any work starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slowfast.utils.io import OutputError, write_json_atomic

logger = logging.getLogger(__name__)

PIPELINE_ID_ENV = "SLOWFAST_PIPELINE_ID"
TAG_PIPELINE_ID = "slowfast.pipeline_id"
TAG_ROLE = "slowfast.role"
TAG_STAGE = "slowfast.stage"
DEFAULT_EXPERIMENT = "slowfast"


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking store named by the configuration cannot be used."""


class TrackingStoreFailedError(OutputError):
    """The tracking store failed while a stage ran; the message is one line (see :func:`stage_run`)."""


def tracking_uri(repo_root: str | os.PathLike[str]) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else MLflow's default sqlite store in the repository root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or f"sqlite:///{Path(repo_root).resolve() / 'mlflow.db'}"


def check_tracking_uri(uri: str, *, timeout: float = 5.0) -> None:
    """Fail fast, with the URI and the reason, when the store cannot be reached or written."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - URI comes from the user
                if resp.status != 200:
                    raise TrackingUnavailableError(f"MLflow tracking server {uri} answered {resp.status} on /health")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) cannot be reached: {exc}. Start the server, "
                "or unset MLFLOW_TRACKING_URI to use the local sqlite store mlflow.db."
            ) from exc
    elif uri.startswith("sqlite:///"):
        directory = Path(uri[len("sqlite:///"):]).parent
        if not directory.is_dir() or not os.access(directory, os.W_OK):
            raise TrackingUnavailableError(f"MLflow store {uri}: directory {directory} is missing or not writable")
    elif uri.startswith("file:") or "://" not in uri:
        directory = Path(uri[len("file:"):] if uri.startswith("file:") else uri)
        if directory.exists() and not os.access(directory, os.W_OK):
            raise TrackingUnavailableError(f"MLflow store {uri} is not writable")


def _dvc_ancestor_id() -> str | None:
    """An id for the ``dvc`` process above this one (pid + start time), or None when not run by DVC."""
    try:
        import psutil
    except ImportError:  # psutil comes with DVC and MLflow; without it, every stage gets its own parent
        return None
    try:
        proc = psutil.Process().parent()
        while proc is not None:
            args = proc.cmdline()
            # `dvc ...` is `python .../bin/dvc ...` once the console script's shebang runs; or `python -m dvc`.
            if any(Path(a).name == "dvc" for a in args[:2]) or args[1:3] == ["-m", "dvc"]:
                return f"dvc-{socket.gethostname()}-{proc.pid}-{int(proc.create_time())}"
            proc = proc.parent()
    except (psutil.Error, OSError):
        return None
    return None


def pipeline_id() -> str:
    """The id that groups the stages of one pipeline execution (see the module docstring)."""
    return os.environ.get(PIPELINE_ID_ENV) or _dvc_ancestor_id() or f"manual-{uuid.uuid4().hex[:12]}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become their string form (MLflow params are strings)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def ensure_pipeline_run(
    pid: str, *, experiment: str = DEFAULT_EXPERIMENT, tags: Mapping[str, str] | None = None
) -> str:
    """The parent run of pipeline ``pid``, created if it does not exist yet; returns its run id."""
    import mlflow

    exp = mlflow.set_experiment(experiment)
    client = mlflow.MlflowClient()
    found = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{TAG_PIPELINE_ID}` = '{pid}' and tags.`{TAG_ROLE}` = 'pipeline'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        exp.experiment_id,
        run_name=f"pipeline {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={TAG_PIPELINE_ID: pid, TAG_ROLE: "pipeline", **(tags or {})},
    )
    return run.info.run_id


@dataclass
class StageRun:
    """The active child run of one stage; thin helpers over the fluent MLflow API."""

    run_id: str
    parent_run_id: str
    pipeline_id: str

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if clean:
            mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)


@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    params: Mapping[str, Any],
    repo_root: str | os.PathLike[str] = ".",
    experiment: str = DEFAULT_EXPERIMENT,
    system_metrics: bool = True,
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open the child run of ``stage`` under its pipeline's parent run, with ``params`` logged flattened.

    The tracking store is checked before anything else, so an unreachable server fails before training starts.
    """
    import mlflow

    uri = tracking_uri(repo_root)
    check_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    pid = pipeline_id()
    managed = PIPELINE_ID_ENV in os.environ  # an orchestrator owns the parent run's lifecycle
    parent = ensure_pipeline_run(pid, experiment=experiment)
    client = mlflow.MlflowClient()
    if not managed:
        client.update_run(parent, status="RUNNING")
    run_tags = {TAG_PIPELINE_ID: pid, TAG_ROLE: "stage", TAG_STAGE: stage, **(tags or {})}
    if os.environ.get("DVC_EXP_NAME"):
        run_tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    _quiet_store_tracebacks()
    end_unfinished_runs(repo_root)  # runs a store failure left RUNNING in an earlier process
    status = "FAILED"
    run_ids = [parent] if not managed else []
    try:
        # The run ends FAILED (KILLED on Ctrl-C) when the stage raises, FINISHED otherwise.
        with mlflow.start_run(
            run_name=stage, parent_run_id=parent, tags=run_tags, log_system_metrics=system_metrics
        ) as run:
            run_ids.insert(0, run.info.run_id)
            # MLflow takes at most 100 params a call; a value is a string of at most 6000 characters.
            items = [(k, str(v)[:6000]) for k, v in flatten(params).items()]
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
            yield StageRun(run_id=run.info.run_id, parent_run_id=parent, pipeline_id=pid)
        status = "FINISHED"
    except Exception as exc:
        if not _is_store_failure(exc):
            raise
        status = "STORE_FAILED"  # the finally below must not talk to the failed store again
        raise _after_store_failure(stage, uri, exc, run_ids, repo_root) from None
    finally:
        if not managed and status != "STORE_FAILED":
            client.set_terminated(parent, status=status)


# ------------------------------------------------------------------------------ the store failing mid-run
#: where the runs a store failure left RUNNING are remembered until a later stage can end them (repository root)
UNFINISHED_RUNS = Path(".slowfast") / "unfinished_runs.json"
_STORE_MODULES = ("mlflow", "sqlalchemy", "sqlite3", "requests", "urllib3", "pymysql", "psycopg2")


def _drop_db_traceback(record: logging.LogRecord) -> bool:
    """MLflow logs every database error with its ~40-line trace before raising it; the stage reports it in one."""
    return not (record.exc_info and str(record.msg).startswith("SQLAlchemy database error"))


def _quiet_store_tracebacks() -> None:
    db_log = logging.getLogger("mlflow.store.db.utils")
    if _drop_db_traceback not in db_log.filters:
        db_log.addFilter(_drop_db_traceback)


def _is_store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) comes from the tracking client or its database."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__.split(".")[0] in _STORE_MODULES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _after_store_failure(stage: str, uri: str, exc: BaseException, run_ids: list[str],
                         repo_root: str | os.PathLike[str]) -> Exception:
    """End the stage's runs FAILED if the store answers again; else remember them for the next stage. Returns the
    one-line error the stage exits with (its checkpoints are untouched, so the next run resumes)."""
    import mlflow

    first = (str(exc).strip().splitlines() or [""])[0][:300]
    left = []
    for run_id in run_ids:
        try:
            mlflow.MlflowClient().set_terminated(run_id, status="FAILED")
        except Exception:  # noqa: BLE001 - the store is still failing: leave it to the next stage
            left.append(run_id)
    with contextlib.suppress(Exception):
        mlflow.end_run("FAILED")  # drop the fluent API's active run (its own end failed with the store)
    if left:
        path = Path(repo_root) / UNFINISHED_RUNS
        try:
            known = json.loads(path.read_text()) if path.exists() else []
            write_json_atomic(path, sorted({*known, *(f"{uri} {r}" for r in left)}))
        except (OSError, ValueError) as err:
            logger.warning("cannot record the unfinished runs in %s: %s", path, err)
    then = (f"runs {', '.join(left)} stay RUNNING until the next stage ends them FAILED" if left
            else "its runs are ended FAILED")
    return TrackingStoreFailedError(
        f"stage {stage}: the MLflow tracking store {uri} failed ({type(exc).__name__}: {first}); the checkpoints "
        f"are kept and the next run resumes; {then}")


def end_unfinished_runs(repo_root: str | os.PathLike[str] = ".") -> list[str]:
    """End FAILED the runs of this store that an earlier store failure left RUNNING; returns their ids."""
    import mlflow

    path = Path(repo_root) / UNFINISHED_RUNS
    try:
        pending = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    uri, ended, left = mlflow.get_tracking_uri(), [], []
    for entry in pending:
        store, _, run_id = entry.rpartition(" ")
        if store != uri:
            left.append(entry)
            continue
        try:
            client = mlflow.MlflowClient()
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status="FAILED")
            ended.append(run_id)
        except Exception as exc:  # noqa: BLE001 - a store still failing: try again at the next stage
            logger.warning("could not end run %s left RUNNING by a store failure: %s", run_id, exc)
            left.append(entry)
    if left:
        write_json_atomic(path, left)
    else:
        path.unlink(missing_ok=True)
    if ended:
        logger.info("ended FAILED %d runs left RUNNING by an earlier tracking store failure", len(ended))
    return ended
