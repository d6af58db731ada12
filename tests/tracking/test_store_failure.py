"""The MLflow store failing while a stage runs: one line, checkpoints kept, runs ended FAILED once it answers again."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import mlflow
import pytest

from slowfast.tracking.runs import PIPELINE_ID_ENV, TAG_ROLE, UNFINISHED_RUNS

DEADLINE = 300.0  # seconds: only a hung stage gets near it

STAGE = textwrap.dedent("""
    import pathlib, sys, time
    from slowfast.params import run_stage
    from slowfast.tracking.runs import stage_run

    def main():
        with stage_run(sys.argv[1], params={"a": 1}, system_metrics=False) as run:
            run.log_metrics({"loss": 1.0}, step=0)
            pathlib.Path(sys.argv[1] + ".checkpoint").write_text("kept")
            pathlib.Path("ready").touch()
            while sys.argv[1] == "first" and not pathlib.Path("go").exists():
                time.sleep(0.05)
            run.log_metrics({"loss": 0.5}, step=1)  # the store is locked by the test now
        return 0

    run_stage(main)
""")


def _runs(uri: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("slowfast")
    return {f"{r.data.tags[TAG_ROLE]} {r.info.run_name}": r for r in client.search_runs([exp.experiment_id])}


def test_store_failure_mid_stage_is_one_line_and_its_runs_end_failed_at_the_next_run(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "stage.py").write_text(STAGE)
    db = repo / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {k: v for k, v in os.environ.items() if k != PIPELINE_ID_ENV}
    env["MLFLOW_TRACKING_URI"] = uri
    proc = subprocess.Popen([sys.executable, "stage.py", "first"], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + DEADLINE
    while not (repo / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the stage never got going: {proc.communicate()}")
        time.sleep(0.05)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the store stops answering: every write (and read) is "database is locked"
    try:
        (repo / "go").touch()
        _, stderr = proc.communicate(timeout=DEADLINE)
    finally:
        lock.execute("COMMIT")
        lock.close()
    assert proc.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    assert errors[0].startswith(f"error: stage first: the MLflow tracking store {uri} failed (")
    assert "database is locked" in errors[0] and "the checkpoints are kept" in errors[0]
    assert (repo / "first.checkpoint").read_text() == "kept"
    stuck = _runs(uri)
    assert {k: r.info.status for k, r in stuck.items() if k.startswith("stage")} == {"stage first": "RUNNING"}
    assert (repo / UNFINISHED_RUNS).exists()

    again = subprocess.run([sys.executable, "stage.py", "second"], cwd=repo, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    runs = _runs(uri)
    assert runs["stage first"].info.status == "FAILED"
    first_parent = runs["stage first"].data.tags["mlflow.parentRunId"]
    parents = {r.info.run_id: r.info.status for k, r in runs.items() if k.startswith("pipeline")}
    assert parents[first_parent] == "FAILED"
    assert runs["stage second"].info.status == "FINISHED"
    assert not (repo / UNFINISHED_RUNS).exists()
