"""The Prefect flow over this repository's real dvc.yaml (every stage, the custom ones off as by default), on the e2e test's reduced parameters: every stage
runs through the flow, the MLflow parent run holds what a user compares, the registry gets its champion, the flow
run's artifact lists the stages, and a second flow run skips everything without an empty parent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from slowfast.tracking.runs import PIPELINE_ID_ENV, TAG_ROLE
from tests.e2e.test_pipeline import REDUCED, _copy_repo, _merge
from tests.pipelines.test_flow import _artifact

BIN = Path(sys.executable).parent
STAGES = ["synthesize", "download", "decode_kinetics", "pretrain", "evaluate", "decode_charades",
          "finetune_charades", "evaluate_charades", "decode_ava", "proposals_ava", "finetune_ava", "evaluate_ava",
          "decode_custom", "finetune_custom", "evaluate_custom"]


@pytest.mark.slow
def test_the_flow_runs_every_stage_of_dvc_yaml_and_tracks_them_for_comparison(tmp_path, monkeypatch, prefect_server):
    from pipelines.flow import dvc_stages, slowfast_pipeline

    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = _merge(yaml.safe_load((repo / "params.yaml").read_text()), REDUCED)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    monkeypatch.delenv(PIPELINE_ID_ENV, raising=False)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=repo, check=True)
    assert sorted(n.name for n in dvc_stages(repo)) == sorted(STAGES)

    result = slowfast_pipeline(repo_root=str(repo))
    assert result["stages"] == {name: "ran" for name in STAGES}

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("slowfast")
    parents = client.search_runs([exp.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'pipeline'")
    assert [p.info.run_id for p in parents] == [result["mlflow_parent_run_id"]]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("slowfast_tiny · workspace · prefect")
    assert parent.data.params["pretrain.train.epochs"] == "2" and parent.data.params["model.preset"] == "slowfast_tiny"
    metrics = parent.data.metrics
    for key in ("evaluate.top1", "evaluate.top5", "evaluate.chance_top1", "evaluate_charades.map",
                "evaluate_charades.chance_map", "proposals_ava.ap50", "proposals_ava.recall", "evaluate_ava.map",
                "evaluate_ava.chance_map"):
        assert key in metrics, key
    assert metrics["evaluate.chance_top1"] == pytest.approx(1 / REDUCED["synthetic"]["kinetics"]["num_classes"])
    assert metrics["evaluate.top1"] == result["metrics"]["reports/evaluate.json"]["top1"]

    champion = client.get_model_version_by_alias("slowfast-kinetics", "champion")
    assert champion.tags["slowfast.preset"] == "slowfast_tiny"
    assert float(champion.tags["metric.top1"]) == pytest.approx(metrics["evaluate.top1"], abs=1e-5)

    (artifact,) = _artifact(parent.data.tags["prefect.flow_run_id"])
    assert all(f"| {name} | ran |" in artifact.data for name in STAGES)

    again = slowfast_pipeline(repo_root=str(repo))
    assert set(again["stages"].values()) == {"skipped"} and again["mlflow_parent_run_id"] is None
    assert len(client.search_runs([exp.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'pipeline'")) == 1
