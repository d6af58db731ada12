"""With a Dask address, the flow runs the decode stage's chunks on a real local Dask cluster through Prefect's
DaskTaskRunner, writes what the stage's own process pool writes, and DVC records the result."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slowfast.data.synthetic.build import VideoParams
from slowfast.data.synthetic.kinetics import KineticsParams, generate_kinetics
from slowfast.tracking.runs import PIPELINE_ID_ENV
from tests.conftest import free_port
from tests.e2e.test_pipeline import _copy_repo

BIN = Path(sys.executable).parent
COUNT = ("python -c \"import json; m = json.load(open('data/shards/kinetics/manifest.json')); "
         "json.dump({'videos': len(m['videos'])}, open('count.json', 'w'))\"")


@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.get_task_stream()  # installs the scheduler's task log, read after the flow ran
        yield cluster, client


@pytest.fixture
def decode_repo(tmp_path, monkeypatch):
    """This repository's decode_kinetics stage (as dvc.yaml declares it) and a stage reading its shards, on six
    small synthetic Kinetics videos."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    stages = {"decode_kinetics": declared["decode_kinetics"],
              "count": {"cmd": COUNT, "deps": ["data/shards/kinetics"], "metrics": [{"count.json": {"cache": False}}]}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["decode"] = {"workers": 2, "frames": {"short_side": 32}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    generate_kinetics(repo / "data/raw/kinetics", KineticsParams(
        num_classes=2, train_per_class=2, val_per_class=1, duration_sec=1.0, video=VideoParams(width=64, height=48)))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(PIPELINE_ID_ENV, raising=False)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo


async def _prefect_chunk_runs() -> tuple[list[str], set[str]]:
    """The completed chunk task runs the Prefect server recorded, and the flows they ran in."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    async with get_client() as prefect:
        runs = await prefect.read_task_runs(task_run_filter=TaskRunFilter(
            name=TaskRunFilterName(any_=[f"chunk {i}" for i in range(6)])))
        flows = {(await prefect.read_flow((await prefect.read_flow_run(r.flow_run_id)).flow_id)).name for r in runs}
    return sorted(r.name for r in runs if r.state.is_completed()), flows


def _chunk_runs_when_recorded(expected: int) -> tuple[list[str], set[str]]:
    """:func:`_prefect_chunk_runs` once the server holds ``expected`` completed chunk runs: task-run states reach it
    asynchronously, after the flow has returned. Polls for at most 5 minutes, then returns what it holds."""
    deadline = time.monotonic() + 300
    while True:
        completed, flows = asyncio.run(_prefect_chunk_runs())
        if len(completed) >= expected or time.monotonic() > deadline:
            return completed, flows
        time.sleep(0.5)


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True)


def test_decode_chunks_run_on_dask_workers_write_the_process_pools_bytes_and_dvc_records_them(
        decode_repo, dask_cluster, prefect_harness):
    from pipelines.flow import slowfast_pipeline

    cluster, client = dask_cluster
    workers = set(client.scheduler_info()["workers"])
    result = slowfast_pipeline(repo_root=str(decode_repo), dask_address=cluster.scheduler_address)

    assert result["stages"] == {"decode_kinetics": "ran", "count": "ran"}
    assert result["metrics"]["count.json"]["videos"] == 6
    fanned = result["fan_out"]["decode_kinetics"]
    assert fanned["chunks"] == 6  # 6 videos, decode.workers 2: chunks of one video (about four per worker)
    assert set(fanned["workers"]) <= workers and sum(fanned["workers"].values()) == 6
    ran = [t for t in client.get_task_stream() if t["key"].startswith("run_chunk")]  # the cluster's own log
    assert len(ran) == 6 and {t["worker"] for t in ran} <= workers
    assert _chunk_runs_when_recorded(6) == ([f"chunk {i}" for i in range(6)], {"slowfast-fan-out"})
    assert json.loads((decode_repo / "reports/decode_kinetics.json").read_text())["decoded"] == 6

    lock = yaml.safe_load((decode_repo / "dvc.lock").read_text())["stages"]
    assert {o["path"] for o in lock["decode_kinetics"]["outs"]} == {"data/shards/kinetics",
                                                                     "reports/decode_kinetics.json"}
    status = _dvc(decode_repo, "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == {}
    again = _dvc(decode_repo, "repro")
    assert again.returncode == 0 and "Data and pipelines are up to date" in again.stdout + again.stderr

    # the same stage, run as DVC runs it (its own process pool), writes the same manifest and shards byte for byte
    plain = subprocess.run(
        [sys.executable, "-m", "stages.decode", "--dataset", "kinetics", "--raw", "data/raw/kinetics", "--out",
         "plain", "--metrics", "plain.json"], cwd=decode_repo, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr[-3000:]
    fanned_dir, plain_dir = decode_repo / "data/shards/kinetics", decode_repo / "plain"
    assert (fanned_dir / "manifest.json").read_bytes() == (plain_dir / "manifest.json").read_bytes()
    shards = sorted(p.name for p in (plain_dir / "shards").iterdir())
    assert len(shards) == 6 and sorted(p.name for p in (fanned_dir / "shards").iterdir()) == shards
    assert all((fanned_dir / "shards" / n).read_bytes() == (plain_dir / "shards" / n).read_bytes() for n in shards)


def test_an_unreachable_dask_address_fails_before_any_stage_runs(decode_repo, prefect_harness):
    from pipelines.flow import slowfast_pipeline

    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ValueError, match=f"dask_address: no Dask scheduler reachable at '{address}'"):
        slowfast_pipeline(repo_root=str(decode_repo), dask_address=address)
    assert not (decode_repo / "dvc.lock").exists() and not (decode_repo / "data/shards").exists()


def test_fan_out_must_be_a_boolean_on_a_python_module_command(decode_repo):
    from pipelines.flow import dvc_stages

    assert {n.name: n.fan_out for n in dvc_stages(decode_repo)} == {"decode_kinetics": True, "count": False}
    dvc_yaml = yaml.safe_load((decode_repo / "dvc.yaml").read_text())
    dvc_yaml["stages"]["count"]["meta"] = {"fan_out": True}
    (decode_repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml))
    with pytest.raises(ValueError, match="stage 'count': meta.fan_out: .*'python -m MODULE ARGS...'"):
        dvc_stages(decode_repo)
    dvc_yaml["stages"]["count"]["meta"] = {"fan_out": "yes"}
    (decode_repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml))
    with pytest.raises(ValueError, match="meta.fan_out: got 'yes', allowed: true or false"):
        dvc_stages(decode_repo)
