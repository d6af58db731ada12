"""The Prefect flow runs the real DVC pipeline of a repository, with DVC as the only description of the DAG."""

from __future__ import annotations

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
from slowfast.tracking.runs import stage_run
name, deps = sys.argv[1], sys.argv[2:]
if name == "download":  # fails on its first attempt, as a flaky network would
    marker = __import__("pathlib").Path("attempts.txt")
    n = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(n + 1))
    if n == 0:
        sys.exit("connection reset")
with stage_run(name, params={"stage": name}, system_metrics=False) as run:
    start = time.time()
    time.sleep(1.5 if name in ("left", "right") else 0)
    text = "".join(open(d).read() for d in deps) + name + "\\n"
    open(name + ".txt", "w").write(text)
    open(name + ".time", "w").write(f"{start} {time.time()}")
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


def test_flow_runs_the_dag_in_parallel_tracks_it_and_reruns_as_a_no_op(dvc_repo, prefect_harness):
    from pipelines.flow import slowfast_pipeline

    result = slowfast_pipeline(repo_root=str(dvc_repo))
    assert result["stages"] == {"download": "ran", "left": "ran", "right": "ran", "report": "ran"}
    assert (dvc_repo / "attempts.txt").read_text() == "2"  # the download failed once and was retried
    assert (dvc_repo / "report.txt").read_text() == "download\nleft\ndownload\nright\nreport\n"
    assert result["metrics"]["report_metrics.json"]["chars"] == len("download\nleft\ndownload\nright\nreport\n")
    (l0, l1), (r0, r1) = (map(float, (dvc_repo / f"{s}.time").read_text().split()) for s in ("left", "right"))
    assert l0 < r1 and r0 < l1, "independent branches should run at the same time"
    lock = (dvc_repo / "dvc.lock").read_text()
    assert all(f"  {s}:" in lock for s in ("download", "left", "right", "report"))

    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("slowfast").experiment_id])
    parent = [r for r in runs if r.data.tags.get(TAG_ROLE) == "pipeline"]
    children = [r for r in runs if r.data.tags.get(TAG_ROLE) == "stage"]
    assert len(parent) == 1 and parent[0].info.run_id == result["mlflow_parent_run_id"]
    assert sorted(c.info.run_name for c in children) == ["download", "left", "report", "right"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent[0].info.run_id}

    mtimes = {p.name: p.stat().st_mtime_ns for p in dvc_repo.glob("*.txt")}
    again = slowfast_pipeline(repo_root=str(dvc_repo))
    assert set(again["stages"].values()) == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in dvc_repo.glob("*.txt")} == mtimes


def test_a_failing_stage_fails_the_flow_and_its_downstream_does_not_run(dvc_repo, prefect_harness):
    from pipelines.flow import slowfast_pipeline

    (dvc_repo / "stage.py").write_text(
        (dvc_repo / "stage.py").read_text().replace('if name == "download"', 'if name == "left" or 0')
        .replace("if n == 0:", "if True:"))
    with pytest.raises(Exception, match="left"):
        slowfast_pipeline(repo_root=str(dvc_repo))
    assert not (dvc_repo / "report.txt").exists()


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
