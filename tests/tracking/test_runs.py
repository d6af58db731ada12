"""Pipeline runs in MLflow: a parent per pipeline execution, a child per stage, grouped across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from slowfast.tracking.runs import (
    PIPELINE_ID_ENV,
    TAG_PIPELINE_ID,
    TAG_ROLE,
    TrackingUnavailableError,
    flatten,
    stage_run,
)

BIN = Path(sys.executable).parent


def _runs(uri: str):
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("slowfast")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(TAG_ROLE) == "pipeline"]
    children = [r for r in runs if r.data.tags.get(TAG_ROLE) == "stage"]
    return parents, children


def test_flatten_joins_nested_keys_with_dots():
    assert flatten({"train": {"lr": 0.1, "steps": [1, 2]}, "seed": 0}) == {
        "train.lr": 0.1, "train.steps": [1, 2], "seed": 0}


def test_stages_sharing_a_pipeline_id_are_children_of_one_parent(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(PIPELINE_ID_ENV, "pipe-1")
    for stage in ("decode", "pretrain"):
        with stage_run(stage, params={"train": {"lr": 0.1}}, repo_root=tmp_path, system_metrics=False) as run:
            run.log_metrics({"loss": 1.5, "ignored": "text"}, step=0)
    parents, children = _runs(uri)
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.tags[TAG_PIPELINE_ID] for c in children} == {"pipe-1"}
    assert all(c.data.params["train.lr"] == "0.1" for c in children)
    assert all(c.data.metrics == {"loss": 1.5} for c in children)
    assert all(c.info.status == "FINISHED" for c in children)


def test_a_failing_stage_ends_its_run_failed(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(PIPELINE_ID_ENV, raising=False)
    with pytest.raises(RuntimeError, match="boom"):
        with stage_run("pretrain", params={}, repo_root=tmp_path, system_metrics=False):
            raise RuntimeError("boom")
    parents, children = _runs(uri)
    assert [c.info.status for c in children] == ["FAILED"]
    assert [p.info.status for p in parents] == ["FAILED"]


def test_unreachable_tracking_server_fails_before_the_stage_body_runs(tmp_path, monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    entered = []
    with pytest.raises(TrackingUnavailableError, match="cannot be reached"):
        with stage_run("pretrain", params={}, repo_root=tmp_path, system_metrics=False):
            entered.append(True)
    assert entered == []


def test_runs_are_recorded_on_a_real_tracking_server(tmp_path, monkeypatch, mlflow_server):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv(PIPELINE_ID_ENV, "server-pipe")
    artifact = tmp_path / "curve.csv"
    artifact.write_text("epoch,loss\n0,1.0\n")
    with stage_run("evaluate", params={"top_k": 5}, repo_root=tmp_path, system_metrics=False) as run:
        run.log_metrics({"top1": 0.9})
        run.log_artifact(artifact)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    got = client.get_run(run.run_id)
    assert got.data.metrics["top1"] == 0.9
    assert got.data.tags["mlflow.parentRunId"] == run.parent_run_id
    assert [f.path for f in client.list_artifacts(run.run_id)] == ["curve.csv"]


def test_stages_of_one_dvc_repro_share_a_parent_and_the_next_repro_gets_another(tmp_path):
    """Real DVC runs each stage as its own process; grouping comes from the dvc process above them."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if k != PIPELINE_ID_ENV}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["MLFLOW_TRACKING_URI"] = uri
    (repo / "stage.py").write_text(textwrap.dedent("""
        import sys
        from slowfast.tracking.runs import stage_run
        with stage_run(sys.argv[1], params={}, system_metrics=False):
            open(sys.argv[1] + ".txt", "w").write("done")
    """))
    py = sys.executable
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          first:
            cmd: {py} stage.py first
            outs: [first.txt]
          second:
            cmd: {py} stage.py second
            deps: [first.txt]
            outs: [second.txt]
    """))
    run = lambda *a: subprocess.run(a, cwd=repo, env=env, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    run(str(BIN / "dvc"), "repro")
    run(str(BIN / "dvc"), "repro", "-f")
    parents, children = _runs(uri)
    assert len(parents) == 2 and len(children) == 4
    by_parent: dict[str, list[str]] = {}
    for c in children:
        by_parent.setdefault(c.data.tags["mlflow.parentRunId"], []).append(c.info.run_name)
    assert sorted(sorted(v) for v in by_parent.values()) == [["first", "second"], ["first", "second"]]
    assert set(by_parent) == {p.info.run_id for p in parents}
    assert all(p.info.status == "FINISHED" for p in parents)


COMPARE_STAGE = """
import json, sys, yaml
from slowfast.tracking.runs import stage_run
name = sys.argv[1]
params = yaml.safe_load(open("params.yaml"))
with stage_run(name, params=params, system_metrics=False):
    slowfast = params["model"]["preset"] == "slowfast_tiny"
    value = {"train": {"top1": 0.9 if slowfast else 0.7, "chance_top1": 0.1}, "proposals": {"ap50": 0.8}}[name]
    json.dump(value, open(name + ".json", "w"))
    open(name + ".txt", "w").write("done")
"""


def test_parent_runs_of_dvc_repro_and_dvc_exp_run_compare_params_and_metrics(tmp_path):
    """As a user compares SlowFast with Slow-only: `dvc repro`, commit, `dvc exp run -S model.preset=slow_tiny`;
    the two parent runs hold params.yaml and every stage's metrics (the skipped stage's too), and differ where the
    executions differ; a `dvc repro` with nothing to do adds no parent."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if k != PIPELINE_ID_ENV}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env.update(MLFLOW_TRACKING_URI=uri, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    (repo / "stage.py").write_text(COMPARE_STAGE)
    (repo / "params.yaml").write_text("model: {preset: slowfast_tiny}\ntrain: {lr: 0.1, steps: [1, 2]}\n")
    py = sys.executable
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          train:
            cmd: {py} stage.py train
            params: [model, train]
            outs: [train.txt]
            metrics: [{{train.json: {{cache: false}}}}]
          proposals:
            cmd: {py} stage.py proposals
            outs: [proposals.txt]
            metrics: [{{proposals.json: {{cache: false}}}}]
    """))

    def run(*args):
        proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "the pipeline")
    code = run("git", "rev-parse", "HEAD").strip()
    run(str(BIN / "dvc"), "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline results")
    commit = run("git", "rev-parse", "HEAD").strip()
    run(str(BIN / "dvc"), "exp", "run", "-S", "model.preset=slow_tiny", "-n", "slow-only")
    run(str(BIN / "dvc"), "repro")  # nothing changed: every stage skipped, no new parent

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["slowfast"], filter_string=f"tags.`{TAG_ROLE}` = 'pipeline'")
    assert len(runs) == 2
    by_name = {row["tags.mlflow.runName"]: row for _, row in runs.iterrows()}
    assert set(by_name) == {"slowfast_tiny · workspace", "slow_tiny · slow-only"}
    base, exp = by_name["slowfast_tiny · workspace"], by_name["slow_tiny · slow-only"]
    assert exp["tags.dvc.exp_name"] == "slow-only" and base["tags.mlflow.source.git.commit"] == code
    assert exp["tags.mlflow.source.git.commit"] == commit  # the experiment's baseline

    params = [c for c in runs.columns if c.startswith("params.")]
    assert set(params) == {"params.model.preset", "params.train.lr", "params.train.steps"}
    differing = {c for c in params if base[c] != exp[c]}
    assert differing == {"params.model.preset"}
    assert exp["metrics.train.top1"] - base["metrics.train.top1"] == pytest.approx(-0.2)
    assert exp["metrics.train.chance_top1"] == base["metrics.train.chance_top1"] == pytest.approx(0.1)
    # the experiment did not re-run `proposals` (DVC skipped it); its parent still holds that stage's metric
    assert exp["metrics.proposals.ap50"] == base["metrics.proposals.ap50"] == pytest.approx(0.8)
    assert set(runs["status"]) == {"FINISHED"}


ORDER_STAGE = """
import json, sys, yaml
from slowfast.tracking.runs import stage_run
name = sys.argv[1]
params = yaml.safe_load(open("params.yaml"))
with stage_run(name, params=params, system_metrics=False):
    json.dump({"value": params["score"][name]}, open(name + ".json", "w"))
"""


def test_a_parent_run_never_holds_a_metric_of_a_stage_dvc_has_not_yet_restored(tmp_path):
    """Going back to a configuration already run: DVC restores `evaluate` from its run cache after `tick` (listed
    first) has run and logged the parent's metrics. At that moment evaluate.json still holds the other
    configuration's result; dvc.lock says so (its params differ), so the parent must not show it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if k != PIPELINE_ID_ENV}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env.update(MLFLOW_TRACKING_URI=uri)
    (repo / "stage.py").write_text(ORDER_STAGE)
    py = sys.executable
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          tick:
            cmd: {py} stage.py tick
            always_changed: true
            metrics: [{{tick.json: {{cache: false}}}}]
          evaluate:
            cmd: {py} stage.py evaluate
            params: [score.evaluate]
            metrics: [{{evaluate.json: {{cache: false}}}}]
    """))

    def repro(evaluate: float) -> None:
        (repo / "params.yaml").write_text(f"score: {{tick: 1.0, evaluate: {evaluate}}}\n")
        proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    repro(0.9)
    repro(0.5)
    repro(0.9)  # `evaluate` restored from the run cache, after `tick` ran
    assert '"value": 0.9' in (repo / "evaluate.json").read_text()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["slowfast"], filter_string=f"tags.`{TAG_ROLE}` = 'pipeline'",
                              order_by=["attributes.start_time ASC"])
    assert len(runs) == 3
    assert list(runs["metrics.evaluate.value"][:2]) == [0.9, 0.5]
    last = runs.iloc[2]
    assert last["metrics.tick.value"] == 1.0
    assert last["metrics.evaluate.value"] != 0.5  # absent (NaN) or the restored 0.9, never the other run's number
