"""MLflow runs for the pipeline: one parent run per pipeline execution, one child run per stage.

DVC runs every stage as its own process, so a stage cannot inherit an active MLflow run. Stages are grouped instead
by a *pipeline id*, carried in the tag ``slowfast.pipeline_id`` of the parent run and of every child run (whose
``mlflow.parentRunId`` names the parent):

- an orchestrator (the Prefect flow) creates the parent run itself and passes its id to the stage processes in the
  environment variable ``SLOWFAST_PIPELINE_ID``;
- under a plain ``dvc repro``, the id is derived from the ``dvc`` process that launched the stage (its pid and start
  time), so all stages of one ``dvc repro`` share one parent run, and the next ``dvc repro`` gets a new one;
- a stage run by hand outside DVC gets a parent run of its own.

The parent run is what a user compares in the MLflow UI (select two parent runs, *Compare*): it is created by the
first stage that runs (so an execution in which every stage was skipped leaves no empty parent) and holds

- every parameter of ``params.yaml``, flattened (``pretrain.train.base_lr``);
- the metrics of every stage's metrics file declared in ``dvc.yaml``, as ``<stage>.<key>`` (``evaluate.top1``,
  ``evaluate_charades.map``, ``evaluate_charades.chance_map``, ...), refreshed each time a stage ends, so that after
  the last stage it holds the pipeline's current results, those of stages DVC skipped included; a metrics file that
  ``dvc.lock`` shows to belong to another configuration (a stage not yet re-run or restored) is left out, so a
  parent run never shows another run's number (:func:`current_stages`);
- the git commit (``mlflow.source.git.commit``), the DVC experiment name under ``dvc exp run`` (DVC hands it to
  the stage processes as ``DVC_EXP_NAME``), and a name saying what it is: ``<model.preset> · <experiment>``.

The store is MLflow's own default (``sqlite:///<repo>/mlflow.db``; under ``dvc exp run --queue`` the repository that
queued it, ``DVC_ROOT``) unless ``MLFLOW_TRACKING_URI`` names another, e.g. a team server; a server that cannot be
reached is an error before any work starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import tempfile
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
TAG_PRESET = "slowfast.preset"
TAG_DVC_EXP = "dvc.exp_name"
TAG_GIT_COMMIT = "mlflow.source.git.commit"  # the tag MLflow's UI shows as the run's source version
DEFAULT_EXPERIMENT = "slowfast"
EXPERIMENT_DESCRIPTION = (
    "SlowFast pipeline (dvc.yaml). A parent run per pipeline execution (slowfast.role = pipeline) holds every "
    "parameter of params.yaml and every stage's metrics as <stage>.<key>; select two parent runs and Compare to see "
    "the differing parameters and the metric deltas. Its child runs are the stages."
)


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking store named by the configuration cannot be used."""


class TrackingStoreFailedError(OutputError):
    """The tracking store failed while a stage ran; the message is one line (see :func:`stage_run`)."""


def tracking_uri(repo_root: str | os.PathLike[str]) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else MLflow's default sqlite store in the repository root (for a stage run
    by ``dvc exp run --queue`` in a temporary copy, the root of the repository that queued it: ``DVC_ROOT``)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    root = os.environ.get("DVC_ROOT") or repo_root
    return uri or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


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
    from slowfast.utils.lifeline import dvc_ancestor

    found = dvc_ancestor()
    return None if found is None else f"dvc-{socket.gethostname()}-{found[0]}-{int(found[1])}"


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


def git_commit(repo_root: str | os.PathLike[str]) -> str | None:
    """The commit checked out in ``repo_root`` (the baseline of a DVC experiment), or None outside git."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    if proc is not None and proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    return os.environ.get("DVC_EXP_BASELINE_REV") or None


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a ``params.yaml``, or {} when there is none."""
    import yaml

    path = Path(path)
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def pipeline_run_name(params: Mapping[str, Any], *, exp_name: str | None = None, via: str | None = None) -> str:
    """What a parent run is, as its name: ``<model.preset> · <DVC experiment or 'workspace'>[ · <via>]``."""
    model = params.get("model") if isinstance(params.get("model"), Mapping) else {}
    preset = str(model.get("preset") or "pipeline")
    name = f"{preset} · {exp_name or os.environ.get('DVC_EXP_NAME') or 'workspace'}"
    return f"{name} · {via}" if via else name


def _lock(pid: str) -> Any:
    """A lock between the processes of one machine that may create pipeline ``pid``'s parent at the same time
    (stages the Prefect flow runs in parallel)."""
    from filelock import FileLock

    digest = hashlib.sha256(pid.encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"slowfast-pipeline-{digest}.lock")


def find_pipeline_run(pid: str, *, experiment: str = DEFAULT_EXPERIMENT) -> str | None:
    """The id of pipeline ``pid``'s parent run, or None when no stage of it has run yet."""
    import mlflow

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = mlflow.MlflowClient().search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{TAG_PIPELINE_ID}` = '{pid}' and tags.`{TAG_ROLE}` = 'pipeline'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


def ensure_pipeline_run(
    pid: str,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tags: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    repo_root: str | os.PathLike[str] = ".",
    via: str | None = None,
) -> str:
    """The parent run of pipeline ``pid``, created if it does not exist yet (with ``params`` flattened, the git
    commit, the DVC experiment name and a descriptive name); returns its run id. ``tags`` are set either way."""
    import mlflow

    with _lock(pid):
        exp = mlflow.set_experiment(experiment)
        client = mlflow.MlflowClient()
        if not exp.tags.get("mlflow.note.content"):
            client.set_experiment_tag(exp.experiment_id, "mlflow.note.content", EXPERIMENT_DESCRIPTION)
        run_id = find_pipeline_run(pid, experiment=experiment)
        if run_id is None:
            params = dict(params or {})
            run_tags = {TAG_PIPELINE_ID: pid, TAG_ROLE: "pipeline"}
            commit = git_commit(repo_root)
            if commit:
                run_tags[TAG_GIT_COMMIT] = commit
            if os.environ.get("DVC_EXP_NAME"):
                run_tags[TAG_DVC_EXP] = os.environ["DVC_EXP_NAME"]
            preset = (params.get("model") or {}).get("preset") if isinstance(params.get("model"), Mapping) else None
            if preset:
                run_tags[TAG_PRESET] = str(preset)
            run = client.create_run(exp.experiment_id, run_name=pipeline_run_name(params, via=via),
                                    tags={**run_tags, **(tags or {})})
            run_id = run.info.run_id
            log_params(run_id, flatten(params))
            return run_id
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    return run_id


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """``params`` on run ``run_id``: MLflow takes at most 100 a call, each value at most 6000 characters."""
    import mlflow
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    client = mlflow.MlflowClient()
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def _metrics_files(dvc_yaml: Path) -> dict[str, list[Path]]:
    """{stage: [its metrics files]} as ``dvc.yaml`` declares them (paths relative to the stage's ``wdir``)."""
    import yaml

    if not dvc_yaml.is_file():  # a stage run by hand outside a DVC repository
        return {}
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, ValueError) as exc:
        logger.warning("%s unreadable (%s): the parent run gets no stage metrics", dvc_yaml, exc)
        return {}
    files: dict[str, list[Path]] = {}
    for name, stage in stages.items():
        if not isinstance(stage, Mapping):
            continue
        wdir = dvc_yaml.parent / str(stage.get("wdir", "."))
        for entry in stage.get("metrics") or []:
            for path in (entry if isinstance(entry, Mapping) else {entry: None}):
                files.setdefault(str(name), []).append(wdir / str(path))
    return files


def _numbers(data: Any, prefix: str) -> dict[str, float]:
    if isinstance(data, Mapping):
        out: dict[str, float] = {}
        for key, value in data.items():
            out.update(_numbers(value, f"{prefix}.{key}"))
        return out
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {prefix: float(data)}
    return {}


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, compared with dvc.lock, not a security check
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _param_value(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return _MISSING
        data = data[part]
    return data


_MISSING = object()


def _same_param(a: Any, b: Any) -> bool:
    """Equal parameter values; PyYAML reads ``5e-05`` (no dot, as DVC writes it in dvc.lock) as a string."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_param(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_param(x, y) for x, y in zip(a, b))
    if isinstance(a, str) != isinstance(b, str) and not isinstance(a, bool) and not isinstance(b, bool):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return a == b


def current_stages(repo_root: str | os.PathLike[str] = ".", *, running: str | None = None) -> set[str]:
    """The stages whose metrics files hold results of the workspace's configuration, judged from ``dvc.lock``.

    While ``dvc repro`` goes through the DAG, a metrics file not yet re-run or restored from the run cache still
    holds the results of the previous configuration (e.g. the Slow-only ablation's after going back to SlowFast).
    A stage is current when its lock entry has the params of the params files as they are now, its metrics files
    are the ones the lock records, and every stage whose outputs it depends on is current with the outputs it read.
    ``running`` is the stage whose process is ending: its files are fresh, its lock entry not yet written, so it
    is current and the stages below it are not (they will run or be restored after it)."""
    import yaml

    root = Path(repo_root)
    try:
        lock = (yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, ValueError):
        lock = {}
    lock = {name: entry for name, entry in lock.items() if isinstance(entry, Mapping)}
    metrics_paths = {name: {os.path.relpath(p, root).replace(os.sep, "/") for p in paths}
                     for name, paths in _metrics_files(root / "dvc.yaml").items()}
    produced = {out["path"]: (name, out.get("md5")) for name, entry in lock.items() for out in _entries(entry, "outs")}
    params: dict[str, Any] = {}

    def params_match(entry: Mapping[str, Any]) -> bool:
        for file, values in (entry.get("params") or {}).items():
            if file not in params:
                params[file] = read_params_file(root / file)
            if not all(_same_param(_param_value(params[file], key), value) for key, value in (values or {}).items()):
                return False
        return True

    def producer_of(path: str) -> tuple[str, str | None] | None:
        """The stage with output ``path`` or with an output folder holding it, and that output's recorded md5
        (None for a file inside a folder: the file itself is hashed then)."""
        for out, (name, md5) in produced.items():
            if path == out:
                return name, md5
            if path.startswith(out.rstrip("/") + "/"):
                return name, None
        return None

    def inputs_current(entry: Mapping[str, Any]) -> bool:
        for dep in _entries(entry, "deps"):
            found = producer_of(dep["path"])
            if found is None:
                continue  # code and source data: not another stage's result
            producer, md5 = found
            if producer == running or not current(producer):
                return False
            path = root / dep["path"]
            if md5 is None and path.is_dir():
                continue  # a folder inside the producer's output folder: the producer being current must do
            if dep.get("md5") != (md5 if md5 is not None else _file_md5(path) if path.is_file() else None):
                return False
        return True

    def files_recorded(name: str, entry: Mapping[str, Any]) -> bool:
        return all(not (root / out["path"]).is_file() or _file_md5(root / out["path"]) == out.get("md5")
                   for out in _entries(entry, "outs") if out["path"] in metrics_paths.get(name, ()))

    memo: dict[str, bool] = {}

    def current(name: str) -> bool:
        if name == running:
            return True
        if name not in memo:
            memo[name] = False  # provisional, so that a cycle (not a valid DAG) ends as not current
            entry = lock.get(name)
            memo[name] = entry is not None and params_match(entry) and inputs_current(entry) and files_recorded(
                name, entry)
        return memo[name]

    return {name for name in metrics_paths if current(name)}


def _entries(entry: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [e for e in entry.get(key) or [] if isinstance(e, Mapping) and "path" in e]


def pipeline_metrics(repo_root: str | os.PathLike[str] = ".", *, running: str | None = None) -> dict[str, float]:
    """Every number in the metrics files (JSON) declared in ``repo_root/dvc.yaml`` of the stages that are current
    (:func:`current_stages`), as ``<stage>.<key>`` (nested keys joined with dots); a stage whose file does not
    exist yet, or holds another configuration's results, contributes nothing."""
    metrics: dict[str, float] = {}
    current = current_stages(repo_root, running=running)
    for stage, paths in _metrics_files(Path(repo_root) / "dvc.yaml").items():
        if stage not in current:
            continue
        for path in paths:
            if not path.is_file():
                continue
            try:
                metrics.update(_numbers(json.loads(path.read_text(encoding="utf-8")), stage))
            except (OSError, ValueError) as exc:
                logger.warning("metrics file %s unreadable (%s): not on the parent run", path, exc)
    return metrics


def log_pipeline_metrics(run_id: str, repo_root: str | os.PathLike[str] = ".", *,
                         running: str | None = None) -> dict[str, float]:
    """:func:`pipeline_metrics` on the parent run ``run_id``, timestamped when the files were read (so a later
    reading wins in MLflow's *latest value* even if it is logged first); returns them. ``running``: the stage
    whose process is logging (see :func:`current_stages`)."""
    import mlflow
    from mlflow.entities import Metric

    read_at = int(time.time() * 1000)
    metrics = pipeline_metrics(repo_root, running=running)
    items = [Metric(k, v, read_at, 0) for k, v in metrics.items()]
    client = mlflow.MlflowClient()
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i : i + 1000])
    return metrics


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
    pipeline_params: Mapping[str, Any] | None = None,
) -> Iterator[StageRun]:
    """Open the child run of ``stage`` under its pipeline's parent run, with ``params`` logged flattened; the
    parent, if this stage creates it, gets ``pipeline_params`` (default: ``repo_root/params.yaml``). When the stage
    ends, the parent gets the metrics of every stage (:func:`log_pipeline_metrics`).

    The tracking store is checked before anything else, so an unreachable server fails before training starts.
    """
    import mlflow

    uri = tracking_uri(repo_root)
    check_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    pid = pipeline_id()
    managed = PIPELINE_ID_ENV in os.environ  # an orchestrator owns the parent run's lifecycle
    if pipeline_params is None:
        pipeline_params = read_params_file(Path(repo_root) / "params.yaml")
    parent = ensure_pipeline_run(pid, experiment=experiment, params=pipeline_params, repo_root=repo_root)
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
            log_params(run.info.run_id, flatten(params))
            yield StageRun(run_id=run.info.run_id, parent_run_id=parent, pipeline_id=pid)
        status = "FINISHED"
    except Exception as exc:
        if not _is_store_failure(exc):
            raise
        status = "STORE_FAILED"  # the finally below must not talk to the failed store again
        raise _after_store_failure(stage, uri, exc, run_ids, repo_root) from None
    finally:
        if status != "STORE_FAILED":
            try:
                log_pipeline_metrics(parent, repo_root, running=stage)
            except Exception as exc:  # noqa: BLE001 - the summary must not hide the stage's own outcome
                logger.warning("the parent run %s did not get the pipeline's metrics: %s", parent, exc)
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
