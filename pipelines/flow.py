"""The Prefect flow that runs the DVC pipeline.

DVC is the one source of truth for the DAG: the flow reads the stages and their dependencies from ``dvc.yaml``
(through DVC's own index), never from a list of its own, and runs each stage with ``dvc repro --single-item``, so
DVC decides what is stale, records ``dvc.lock``, and skips what did not change. Stages whose dependencies are done
run in parallel (DVC releases its repository lock while a stage's command runs). A stage's retries come from its
``meta`` in ``dvc.yaml``::

    download:
      cmd: python -m stages.download
      meta: {retries: 3, retry_delay_seconds: 10}

With a Dask scheduler address (``dask_address``), a stage whose ``meta`` says ``fan_out: true`` (the decode stages)
and that DVC finds stale is not run by ``dvc repro``: :mod:`pipelines.fanout` runs its command with one Prefect task
per decode chunk on the Dask cluster (Prefect's ``DaskTaskRunner``), then ``dvc commit`` records its outputs in
``dvc.lock``, so the stages downstream and any later ``dvc repro`` see it as done. An address that cannot be reached
fails the flow before any stage runs.

The flow hands a pipeline id to the stage processes (``SLOWFAST_PIPELINE_ID``), so every stage's child run is
grouped under one MLflow parent run, created by the first stage that runs (a flow run in which DVC skipped every
stage leaves no empty parent). When the stages are done the flow ends the parent run (FAILED if a stage failed),
records the pipeline's metrics on it, and publishes a Prefect markdown artifact (key ``slowfast-pipeline``): the
stages that ran or were skipped with their durations, the metrics summary (``dvc metrics show``) and a link to
the MLflow parent run. Its result is that summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import wait

from pipelines.fanout import module_command
from slowfast.tracking import runs as tracking

DVC = [sys.executable, "-m", "dvc"]


@dataclass(frozen=True)
class StageNode:
    name: str
    upstream: tuple[str, ...]
    retries: int = 0
    retry_delay_seconds: float = 10.0
    cmd: str = ""
    fan_out: bool = False  # its chunks may run on a Dask cluster (meta.fan_out; the cmd is `python -m MODULE ...`)


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
            fan_out = meta.get("fan_out", False)
            if not isinstance(fan_out, bool):
                raise ValueError(f"stage {stage.name!r}: meta.fan_out: got {fan_out!r}, allowed: true or false")
            if fan_out:
                try:
                    module_command(stage.cmd)
                except ValueError as exc:
                    raise ValueError(f"stage {stage.name!r}: meta.fan_out: {exc}") from None
            nodes.append(
                StageNode(
                    name=address(stage),
                    upstream=tuple(sorted(address(d) for d in graph.successors(stage) if d.cmd)),
                    retries=int(meta.get("retries", 0)),
                    retry_delay_seconds=float(meta.get("retry_delay_seconds", 10.0)),
                    cmd=stage.cmd,
                    fan_out=fan_out,
                )
            )
    return nodes


@task(task_run_name="dvc repro {name}")
def run_stage(repo_root: str, name: str, pipeline_id: str, force: bool = False) -> dict[str, Any]:
    """``dvc repro --single-item NAME``: runs the stage if DVC finds it stale, else skips it; returns
    ``{"status": "ran" | "skipped", "seconds": wall time}``."""
    logger = get_run_logger()
    start = time.monotonic()
    env = {**os.environ, tracking.PIPELINE_ID_ENV: pipeline_id}
    cmd = [*DVC, "--wait-for-lock", "repro", "--single-item", name, *(["--force"] if force else [])]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise RuntimeError(f"stage {name!r} failed (exit {proc.returncode}):\n{output[-4000:]}")
    logger.info("%s", output[-2000:])
    return {"status": "skipped" if "didn't change, skipping" in output else "ran",
            "seconds": time.monotonic() - start}


def _dvc(repo_root: str, *args: str) -> str:
    proc = subprocess.run([*DVC, "--wait-for-lock", *args], cwd=repo_root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def check_dask_address(address: str, *, timeout: float = 5.0) -> int:
    """Ask the Dask scheduler at ``address`` who it is; returns its number of workers, or raises naming the address."""
    from distributed.core import rpc

    async def identity() -> dict[str, Any]:
        async with rpc(address, timeout=timeout) as scheduler:
            return await scheduler.identity()

    try:
        workers = len(asyncio.run(identity())["workers"])
    except (OSError, ValueError, TimeoutError) as exc:
        raise ValueError(f"dask_address: no Dask scheduler reachable at {address!r} ({type(exc).__name__}: {exc}); "
                         "allowed: the address of a running scheduler, e.g. tcp://host:8786") from None
    if not workers:
        get_run_logger().warning("Dask scheduler %s has no workers yet: fan-out chunks wait for one", address)
    return workers


@task(task_run_name="fan out {node.name} over Dask")
def fan_out_stage(repo_root: str, node: StageNode, pipeline_id: str, dask_address: str, force: bool = False
                  ) -> dict[str, Any]:
    """Run a stale fan-out stage through :mod:`pipelines.fanout`, then ``dvc commit`` it into ``dvc.lock``."""
    logger = get_run_logger()
    start = time.monotonic()
    if not force and not json.loads(_dvc(repo_root, "status", "--json", node.name) or "{}"):
        return {"status": "skipped", "seconds": time.monotonic() - start}
    from prefect.settings import get_current_settings

    env = {**os.environ, tracking.PIPELINE_ID_ENV: pipeline_id}
    api_url = get_current_settings().api.url
    if api_url:  # the stage's fan-out flow reports to the same Prefect server as this one
        env["PREFECT_API_URL"] = str(api_url)
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "pipelines.fanout", "--dask-address", dask_address, "--summary", str(summary),
               *shlex.split(node.cmd)]
        proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise RuntimeError(f"stage {node.name!r} failed on Dask (exit {proc.returncode}):\n{output[-4000:]}")
        result = json.loads(summary.read_text())
    _dvc(repo_root, "commit", "--force", node.name)
    logger.info("%s: %d chunks on Dask workers %s; committed to dvc.lock", node.name, result["chunks"],
                result["workers"])
    return {"status": "ran", "seconds": time.monotonic() - start, **result}


def metrics_summary(repo_root: str | os.PathLike[str]) -> dict[str, Any]:
    """``dvc metrics show --json`` of the workspace: {metrics file: {name: value}}."""
    proc = subprocess.run([*DVC, "metrics", "show", "--json"], cwd=repo_root, capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return {}
    shown = json.loads(proc.stdout)
    # keyed by revision: "workspace", or "" in a repository without commits
    workspace = shown.get("workspace") or next(iter(shown.values()), {})
    return {path: entry.get("data", {}) for path, entry in workspace.get("data", {}).items()}


def mlflow_run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where a user opens run ``run_id``: on the tracking server itself, or on ``mlflow ui`` over a local store."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"[{run_id}]({tracking_uri.rstrip('/')}/{path})"
    return (f"[{run_id}](http://127.0.0.1:5000/{path}) once `mlflow ui --backend-store-uri {tracking_uri}` "
            "serves the local store")


def summary_markdown(summary: dict[str, Any], *, link: str | None, status: str) -> str:
    """The flow run's artifact: stages (ran / skipped / failed / not run, durations), metrics, the MLflow run."""
    lines = [f"# SlowFast pipeline: {status}", "",
             f"MLflow parent run: {link}" if link else "MLflow parent run: none (every stage was skipped)", "",
             "| stage | status | duration (s) |", "|---|---|---|"]
    for name, status_ in summary["stages"].items():
        seconds = summary["durations"].get(name)
        lines.append(f"| {name} | {status_} | {'' if seconds is None else f'{seconds:.1f}'} |")
    lines += ["", "| metrics file | metric | value |", "|---|---|---|"]
    for path, values in summary["metrics"].items():
        for key, value in tracking.flatten(values).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lines.append(f"| {path} | {key} | {value:.4g} |")
    return "\n".join(lines) + "\n"


def _outcome(future: Any) -> dict[str, Any]:
    """What became of one stage's task: its result, or failed (with the one-line reason) / not run."""
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001 - a stage's failure is reported with the others, then raised
        state = future.state
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"status": "failed" if state.is_failed() and "upstream" not in first.lower() else "not run",
                "error": str(exc)}
    return result if isinstance(result, dict) else {"status": result}


@flow(name="slowfast-pipeline")
def slowfast_pipeline(repo_root: str = ".", force: bool = False, dask_address: str | None = None) -> dict[str, Any]:
    """Run the DVC pipeline in ``repo_root``; returns ``{"stages": {name: ran|skipped}, "durations": {name: s},
    "metrics": {...}, "mlflow_parent_run_id": id or None}`` and, with ``dask_address``, ``"fan_out": {stage:
    {"chunks": n, "workers": {address: chunks}}}``. A failed stage fails the flow after the independent stages ran."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.runtime import flow_run

    logger = get_run_logger()
    root = str(Path(repo_root).resolve())
    nodes = dvc_stages(root)
    if dask_address:
        check_dask_address(dask_address)
    pipeline_id = f"prefect-{flow_run.get_id() or os.getpid()}"
    params = tracking.read_params_file(Path(root) / "params.yaml")
    experiment = str((params.get("tracking") or {}).get("experiment") or tracking.DEFAULT_EXPERIMENT)
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    tracking.check_tracking_uri(mlflow.get_tracking_uri())

    futures: dict[str, Any] = {}
    for node in nodes:
        options = {"retries": node.retries, "retry_delay_seconds": node.retry_delay_seconds}
        after = [futures[u] for u in node.upstream]
        if node.fan_out and dask_address:
            futures[node.name] = fan_out_stage.with_options(**options).submit(
                root, node, pipeline_id, dask_address, force, wait_for=after)
        else:
            futures[node.name] = run_stage.with_options(**options).submit(
                root, node.name, pipeline_id, force, wait_for=after)
    wait(list(futures.values()))
    outcomes = {name: _outcome(fut) for name, fut in futures.items()}
    failed = {name: o["error"] for name, o in outcomes.items() if o["status"] == "failed"}
    status = "FAILED" if failed else "FINISHED"

    # The parent exists once a stage has run; a stage without an MLflow run of its own still deserves one.
    parent = tracking.find_pipeline_run(pipeline_id, experiment=experiment)
    if parent is None and any(o["status"] == "ran" for o in outcomes.values()):
        parent = tracking.ensure_pipeline_run(pipeline_id, experiment=experiment, params=params, repo_root=root)
    link = None
    if parent is not None:
        client = mlflow.MlflowClient()
        client.set_tag(parent, "prefect.flow_run_id", str(flow_run.get_id()))
        client.update_run(parent, name=tracking.pipeline_run_name(params, via=f"prefect {flow_run.get_name()}"))
        tracking.log_pipeline_metrics(parent, root)
        client.set_terminated(parent, status=status)
        link = mlflow_run_link(mlflow.get_tracking_uri(), client.get_run(parent).info.experiment_id, parent)
    summary = {"stages": {name: o["status"] for name, o in outcomes.items()},
               "durations": {name: o["seconds"] for name, o in outcomes.items() if "seconds" in o},
               "metrics": metrics_summary(root), "mlflow_parent_run_id": parent}
    if dask_address:
        summary["fan_out"] = {name: {k: v for k, v in o.items() if k in ("chunks", "workers")}
                              for name, o in outcomes.items() if o["status"] == "ran" and "chunks" in o}
    create_markdown_artifact(key="slowfast-pipeline", markdown=summary_markdown(summary, link=link, status=status),
                             description="stages ran/skipped, metrics, MLflow parent run")
    logger.info("pipeline %s: %s", status.lower(), json.dumps(summary["stages"]))
    if failed:
        raise RuntimeError("\n".join(failed.values()))  # each names its stage
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.flow [--repo-root .] [--force] [--dask-address tcp://host:8786]``: one run, now."""
    parser = argparse.ArgumentParser(description="Run the DVC pipeline once as a Prefect flow.")
    parser.add_argument("--repo-root", default=".")
    parser.add_argument("--force", action="store_true", help="re-run every stage")
    parser.add_argument("--dask-address", help="decode stages fan out over the Dask scheduler at this address")
    args = parser.parse_args(argv)
    summary = slowfast_pipeline(repo_root=args.repo_root, force=args.force, dask_address=args.dask_address)
    print(json.dumps(summary["stages"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
