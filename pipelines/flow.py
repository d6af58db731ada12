"""The Prefect flow that runs the DVC pipeline.

DVC is the one source of truth for the DAG: the flow reads the stages and their dependencies from ``dvc.yaml``
(through DVC's own index), never from a list of its own, and runs each stage with ``dvc repro --single-item``, so
DVC decides what is stale, records ``dvc.lock``, and skips what did not change. Stages whose dependencies are done
run in parallel (DVC releases its repository lock while a stage's command runs). A stage's retries come from its
``meta`` in ``dvc.yaml``::

    download:
      cmd: python -m stages.download
      meta: {retries: 3, retry_delay_seconds: 10}

The flow opens the MLflow parent run of this pipeline execution and hands its id to the stage processes
(``SLOWFAST_PIPELINE_ID``), so every stage's child run is grouped under it; its result is the metrics summary
(``dvc metrics show``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import wait

from slowfast.tracking import runs as tracking

DVC = [sys.executable, "-m", "dvc"]


@dataclass(frozen=True)
class StageNode:
    name: str
    upstream: tuple[str, ...]
    retries: int = 0
    retry_delay_seconds: float = 10.0


def dvc_stages(repo_root: str | os.PathLike[str]) -> list[StageNode]:
    """The pipeline's stages in topological order (upstream first), read from DVC's index of ``dvc.yaml``."""
    import networkx as nx
    from dvc.repo import Repo

    root = Path(repo_root).resolve()

    def address(stage: Any) -> str:  # as `dvc repro` takes it when run from the repository root
        dvcfile = Path(stage.dvcfile.path).resolve()
        return stage.name if dvcfile == root / "dvc.yaml" else f"{dvcfile.relative_to(root)}:{stage.name}"

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        order = list(reversed(list(nx.topological_sort(graph))))
        nodes = []
        for stage in order:
            if not stage.cmd:  # .dvc-tracked data files are graph nodes too, but nothing runs them
                continue
            meta = stage.meta or {}
            nodes.append(
                StageNode(
                    name=address(stage),
                    upstream=tuple(sorted(address(d) for d in graph.successors(stage) if d.cmd)),
                    retries=int(meta.get("retries", 0)),
                    retry_delay_seconds=float(meta.get("retry_delay_seconds", 10.0)),
                )
            )
    return nodes


@task(task_run_name="dvc repro {name}")
def run_stage(repo_root: str, name: str, pipeline_id: str, force: bool = False) -> str:
    """``dvc repro --single-item NAME``: runs the stage if DVC finds it stale, else skips it."""
    logger = get_run_logger()
    env = {**os.environ, tracking.PIPELINE_ID_ENV: pipeline_id}
    cmd = [*DVC, "repro", "--single-item", name, *(["--force"] if force else [])]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise RuntimeError(f"stage {name!r} failed (exit {proc.returncode}):\n{output[-4000:]}")
    logger.info("%s", output[-2000:])
    return "skipped" if "didn't change, skipping" in output else "ran"


def metrics_summary(repo_root: str | os.PathLike[str]) -> dict[str, Any]:
    """``dvc metrics show --json`` of the workspace: {metrics file: {name: value}}."""
    proc = subprocess.run([*DVC, "metrics", "show", "--json"], cwd=repo_root, capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return {}
    shown = json.loads(proc.stdout)
    # keyed by revision: "workspace", or "" in a repository without commits
    workspace = shown.get("workspace") or next(iter(shown.values()), {})
    return {path: entry.get("data", {}) for path, entry in workspace.get("data", {}).items()}


@flow(name="slowfast-pipeline")
def slowfast_pipeline(repo_root: str = ".", force: bool = False) -> dict[str, Any]:
    """Run the DVC pipeline in ``repo_root``; returns ``{"stages": {name: ran|skipped}, "metrics": {...}}``."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    root = str(Path(repo_root).resolve())
    pipeline_id = f"prefect-{flow_run.get_id() or os.getpid()}"
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    tracking.check_tracking_uri(mlflow.get_tracking_uri())
    parent = tracking.ensure_pipeline_run(pipeline_id, tags={"prefect.flow_run_id": str(flow_run.get_id())})

    futures: dict[str, Any] = {}
    status = "FAILED"
    try:
        for node in dvc_stages(root):
            futures[node.name] = run_stage.with_options(
                retries=node.retries, retry_delay_seconds=node.retry_delay_seconds
            ).submit(root, node.name, pipeline_id, force, wait_for=[futures[u] for u in node.upstream])
        wait(list(futures.values()))
        stages = {name: fut.result() for name, fut in futures.items()}
        status = "FINISHED"
    finally:
        mlflow.MlflowClient().set_terminated(parent, status=status)
    summary = {"stages": stages, "metrics": metrics_summary(root), "mlflow_parent_run_id": parent}
    logger.info("pipeline finished: %s", json.dumps(summary["stages"]))
    return summary
