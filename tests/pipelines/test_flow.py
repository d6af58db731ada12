"""The Prefect flow runs the real DVC pipeline of a repository, with DVC as the only description of the DAG."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from slowfast.tracking.runs import PIPELINE_ID_ENV, TAG_ROLE

BIN = Path(sys.executable).parent

STAGE = """
import sys, time
from pathlib import Path
from slowfast.tracking.runs import stage_run
name, deps = sys.argv[1], sys.argv[2:]
SIBLING = {"left": "right", "right": "left"}
if name in SIBLING:
    Path(name + ".started").write_text("")
if name == "download":  # fails on its first attempt, as a flaky network would
    marker = __import__("pathlib").Path("attempts.txt")
    n = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(n + 1))
    if n == 0:
        sys.exit("connection reset")
with stage_run(name, params={"stage": name}, system_metrics=False) as run:
    met = "alone"
    if name in SIBLING:  # independent branches: each waits (at most 10 min) for the other to have started
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not Path(SIBLING[name] + ".started").exists():
            time.sleep(0.05)
        met = "met" if Path(SIBLING[name] + ".started").exists() else "alone"
    text = "".join(open(d).read() for d in deps) + name + "\\n"
    open(name + ".txt", "w").write(text)
    open(name + ".time", "w").write(met)
    run.log_metrics({"chars": len(text)})
    open(name + "_metrics.json", "w").write('{"chars": %d}' % len(text))
"""


def _stage(name, deps, retries=0):
    dep_files = [f"{d}.txt" for d in deps]
    lines = [f"  {name}:", f"    cmd: {sys.executable} stage.py {name} {' '.join(dep_files)}"]
    if dep_files:
        lines.append(f"    deps: [{', '.join(dep_files)}]")
    lines.append(f"    outs: [{name}.txt, {name}.time]")
    lines.append(f"    metrics: [{{{name}_metrics.json: {{cache: false}}}}]")
    if retries:
        lines.append(f"    meta: {{retries: {retries}, retry_delay_seconds: 0}}")
    return "\n".join(lines)


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "stage.py").write_text(textwrap.dedent(STAGE))
    stages = [_stage("download", [], retries=2), _stage("left", ["download"]), _stage("right", ["download"]),
              _stage("report", ["left", "right"])]
    (repo / "dvc.yaml").write_text("stages:\n" + "\n".join(stages) + "\n")
    (repo / "params.yaml").write_text("model: {preset: slowfast_tiny}\ntrain: {lr: 0.1, steps: [1, 2]}\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(PIPELINE_ID_ENV, raising=False)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    return repo


def test_stage_order_and_retries_come_from_dvc_yaml(dvc_repo):
    from pipelines.flow import dvc_stages

    nodes = {n.name: n for n in dvc_stages(dvc_repo)}
    assert list(nodes)[0] == "download" and list(nodes)[-1] == "report"
    assert nodes["report"].upstream == ("left", "right")
    assert nodes["download"].retries == 2 and nodes["left"].retries == 0


def _pipeline_runs(experiment="slowfast"):
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return ([r for r in runs if r.data.tags.get(TAG_ROLE) == "pipeline"],
            [r for r in runs if r.data.tags.get(TAG_ROLE) == "stage"])


def _artifact(flow_run_id):
    """The markdown artifacts of a flow run (a failed task's persisted result is an artifact too)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))

    return [a for a in asyncio.run(read()) if a.type == "markdown"]


def _flow_run_id(parent):
    return parent.data.tags["prefect.flow_run_id"]


def test_flow_runs_the_dag_in_parallel_tracks_it_and_reruns_as_a_no_op(dvc_repo, prefect_harness):
    from pipelines.flow import slowfast_pipeline

    result = slowfast_pipeline(repo_root=str(dvc_repo))
    assert result["stages"] == {"download": "ran", "left": "ran", "right": "ran", "report": "ran"}
    assert set(result["durations"]) == set(result["stages"]) and all(t > 0 for t in result["durations"].values())
    assert (dvc_repo / "attempts.txt").read_text() == "2"  # the download failed once and was retried
    assert (dvc_repo / "report.txt").read_text() == "download\nleft\ndownload\nright\nreport\n"
    assert result["metrics"]["report_metrics.json"]["chars"] == len("download\nleft\ndownload\nright\nreport\n")
    # each independent branch waited until the other had started: they ran at the same time
    assert [(dvc_repo / f"{s}.time").read_text() for s in ("left", "right")] == ["met", "met"]
    lock = (dvc_repo / "dvc.lock").read_text()
    assert all(f"  {s}:" in lock for s in ("download", "left", "right", "report"))

    parents, children = _pipeline_runs()
    assert len(parents) == 1 and parents[0].info.run_id == result["mlflow_parent_run_id"]
    parent = parents[0]
    assert sorted(c.info.run_name for c in children) == ["download", "left", "report", "right"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    # the parent holds what a user compares: params.yaml flattened, every stage's metrics, the commit, a name
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"model.preset": "slowfast_tiny", "train.lr": "0.1", "train.steps": "[1, 2]"}
    assert parent.data.metrics == {"download.chars": 9, "left.chars": 14, "right.chars": 15, "report.chars": 36}
    assert parent.info.run_name.startswith("slowfast_tiny · workspace · prefect ")
    assert "mlflow.source.git.commit" not in parent.data.tags  # the test repository has no commit yet

    (artifact,) = _artifact(_flow_run_id(parent))
    assert artifact.key == "slowfast-pipeline" and artifact.type == "markdown"
    assert "| left | ran |" in artifact.data and "| report_metrics.json | chars | 36 |" in artifact.data
    assert parent.info.run_id in artifact.data

    mtimes = {p.name: p.stat().st_mtime_ns for p in dvc_repo.glob("*.txt")}
    again = slowfast_pipeline(repo_root=str(dvc_repo))
    assert set(again["stages"].values()) == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in dvc_repo.glob("*.txt")} == mtimes
    assert again["mlflow_parent_run_id"] is None and len(_pipeline_runs()[0]) == 1  # no empty parent


def test_a_failing_stage_fails_the_flow_the_independent_branch_still_runs_and_the_parent_run_fails(
        dvc_repo, prefect_harness):
    from pipelines.flow import slowfast_pipeline

    (dvc_repo / "stage.py").write_text(
        (dvc_repo / "stage.py").read_text().replace('if name == "download"', 'if name == "left" or 0')
        .replace("if n == 0:", "if True:"))
    with pytest.raises(Exception, match="stage 'left' failed"):
        slowfast_pipeline(repo_root=str(dvc_repo))
    assert not (dvc_repo / "report.txt").exists()
    assert (dvc_repo / "right.txt").read_text() == "download\nright\n"  # the independent branch ran to the end
    parents, children = _pipeline_runs()
    assert [p.info.status for p in parents] == ["FAILED"]
    assert {c.info.run_name: c.info.status for c in children} == {"download": "FINISHED", "right": "FINISHED"}
    (artifact,) = _artifact(_flow_run_id(parents[0]))
    assert "| left | failed |" in artifact.data and "| report | not run |" in artifact.data
    assert "| right | ran |" in artifact.data


def test_deployment_is_scheduled_nightly_and_passes_the_dask_address(prefect_harness):
    from prefect.client.orchestration import get_client

    from pipelines.deploy import NIGHTLY, main

    assert main(["--apply-only", "--name", "nightly-test"]) == 0
    assert main(["--apply-only", "--name", "nightly-dask", "--dask-address", "tcp://scheduler:8786"]) == 0

    import asyncio

    async def fetch(name):
        async with get_client() as client:
            dep = await client.read_deployment_by_name(f"slowfast-pipeline/{name}")
            return [s.schedule.cron for s in dep.schedules], dep.parameters

    crons, parameters = asyncio.run(fetch("nightly-test"))
    assert crons == [NIGHTLY] and "dask_address" not in parameters
    assert asyncio.run(fetch("nightly-dask"))[1]["dask_address"] == "tcp://scheduler:8786"
