"""A served deployment runs on its schedule: the Prefect server's scheduler (not a manual trigger) creates a flow run
of `python -m pipelines.deploy` and it completes. Needs a dependency set whose scheduler works (constraints.txt)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.pipelines.test_flow import dvc_repo  # noqa: F401 - the fixture: a small real DVC pipeline

ROOT = Path(__file__).resolve().parents[2]


async def _scheduled_runs(deployment: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter

    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            flow_run_filter=FlowRunFilter())


def test_the_scheduler_creates_a_run_of_the_served_deployment_and_it_completes(dvc_repo, prefect_server,  # noqa: F811
                                                                               tmp_path):
    log = open(tmp_path / "serve.log", "wb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    serve = subprocess.Popen([sys.executable, "-m", "pipelines.deploy", "--name", "every-ten-seconds",
                              "--interval", "10", "--repo-root", str(dvc_repo)],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 900  # waits on the run's state; only a broken scheduler takes this long
        completed = []
        while not completed and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(2)
            runs = asyncio.run(_scheduled_runs("every-ten-seconds"))
            completed = [r for r in runs if r.state and r.state.is_completed()]
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()
    output = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
    assert completed, f"no scheduled run completed; serve said:\n{output}"
    run = completed[0]
    assert run.auto_scheduled, "the run was created by the server's scheduler"
    assert run.parameters["repo_root"] == str(dvc_repo)
    assert (dvc_repo / "report.txt").read_text() == "download\nleft\ndownload\nright\nreport\n"
