"""The real pipeline: `dvc repro` of this repository's dvc.yaml on reduced parameters, in a copy of the repo.

Checks the outputs and metrics of every stage, the MLflow runs and their grouping, that a second `dvc repro` does
nothing, and that an invalid parameter fails before any work.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from slowfast.tracking.compare import TAG_ARCH, TAG_EVAL_DATA
from slowfast.tracking.runs import PIPELINE_ID_ENV, TAG_ROLE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

REDUCED = {
    "synthetic": {
        "kinetics": {"num_classes": 3, "train_per_class": 4, "val_per_class": 2, "duration_sec": 2.4},
        "charades": {"num_classes": 3, "train_videos": 3, "test_videos": 2, "duration_sec": 4.0},
        "ava": {"train_videos": 1, "val_videos": 1, "duration_sec": 8},
    },
    "decode": {"workers": 1, "frames": {"short_side": 48}},
    "pretrain": {"train": {"epochs": 2, "batch_size": 4, "checkpoint_every": 1, "warmup": 0}},
    "evaluate": {"test_clips": 2},
    "charades": {"finetune": {"train": {"epochs": 2, "batch_size": 3, "lr_steps": [1]}},
                 "evaluate": {"test_clips": 2}},
    "ava": {"proposals": {"pretrain_scenes": 32, "pretrain": {"epochs": 1}, "finetune": {"epochs": 1}},
            "finetune": {"train": {"epochs": 2, "batch_size": 2, "lr_steps": [1], "warmup": 0}}},
}


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file() and not name.startswith(("tests/", "benchmarks/")) and name != "dvc.lock":
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, REDUCED), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in (PIPELINE_ID_ENV, "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    return repo, env


def _dvc(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True)


def test_dvc_repro_runs_every_stage_tracks_them_and_a_second_repro_is_a_no_op(pipeline_repo):
    repo, env = pipeline_repo
    first = _dvc(repo, env, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    assert json.loads((repo / "reports/download.json").read_text())["failures"] == 0
    decode = json.loads((repo / "reports/decode_kinetics.json").read_text())
    assert decode["decoded"] == decode["videos"] == 3 * (4 + 2) and decode["failures"] == 0
    pretrain = json.loads((repo / "reports/pretrain.json").read_text())
    assert pretrain["epochs"] == 2 and pretrain["steps"] == 2 * 3  # 12 clips / batch 4, two epochs
    curve = (repo / "reports/pretrain_curve.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,") and len(curve) == 3
    evaluate = json.loads((repo / "reports/evaluate.json").read_text())
    assert evaluate["videos"] == 3 * 2 and evaluate["views_per_video"] == 2 * 3
    assert 0.0 <= evaluate["top1"] <= evaluate["top5"] == 1.0  # top-5 of 3 classes always hits
    assert (repo / "reports/evaluate/confusion_matrix.png").stat().st_size > 0
    assert (repo / "models/pretrain/model.pt").is_file()

    charades = json.loads((repo / "reports/evaluate_charades.json").read_text())
    assert charades["videos"] == 2 and charades["views_per_video"] == 6
    assert 0.0 <= charades["chance_map"] <= 1.0 and 0.0 <= charades["map"] <= 1.0
    finetune = json.loads((repo / "reports/finetune_charades.json").read_text())
    assert finetune["epochs"] == 2 and "val_map" in finetune

    proposals = json.loads((repo / "reports/proposals_ava.json").read_text())
    assert proposals["keyframes"] > 0 and {"ap50", "recall", "precision"} <= set(proposals)
    ava = json.loads((repo / "reports/evaluate_ava.json").read_text())
    assert ava["keyframes"] <= proposals["keyframes"] and 0.0 <= ava["chance_map"] <= 1.0
    detections = (repo / "reports/evaluate_ava/detections.csv").read_text().splitlines()
    assert len(detections) == ava["detections"]
    # The published detections file, scored by the CLI as a user would, gives the stage's mAP.
    annotations = repo / "data/raw/ava/annotations"
    scored = subprocess.run(
        [sys.executable, "-m", "slowfast.cli", "eval-ava", "--json", "--groundtruth", annotations / "ava_val_v2.2.csv",
         "--detections", repo / "reports/evaluate_ava/detections.csv",
         "--labelmap", annotations / "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
         *(["--exclusions", ex] if (ex := annotations / "ava_val_excluded_timestamps_v2.2.csv").is_file() else [])],
        capture_output=True, text=True, env=env, cwd=repo, check=True,
    )
    assert json.loads(scored.stdout)["mAP"] == pytest.approx(ava["map"], abs=1e-9)

    shown = _dvc(repo, env, "metrics", "show", "--json")
    assert "reports/evaluate.json" in shown.stdout

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("slowfast").experiment_id])
    parents = [r for r in runs if r.data.tags.get(TAG_ROLE) == "pipeline"]
    children = [r for r in runs if r.data.tags.get(TAG_ROLE) == "stage"]
    assert len(parents) == 1
    assert sorted(r.info.run_name for r in children) == [
        "decode_ava", "decode_charades", "decode_kinetics", "download", "evaluate", "evaluate_ava",
        "evaluate_charades", "finetune_ava", "finetune_charades", "pretrain", "proposals_ava", "synthesize"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    train_run = next(r for r in children if r.info.run_name == "pretrain")
    assert train_run.data.params["pretrain.train.epochs"] == "2"
    history = client.get_metric_history(train_run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2]
    artifacts = {f.path for f in client.list_artifacts(train_run.info.run_id)}
    assert {"classes.json", "training_curves.png"} <= artifacts
    registered = client.get_model_version_by_alias("slowfast-kinetics", "champion")
    assert registered.run_id == train_run.info.run_id

    mtime = (repo / "models/pretrain/model.pt").stat().st_mtime_ns
    second = _dvc(repo, env, "repro")
    assert second.returncode == 0
    assert "Data and pipelines are up to date" in second.stdout + second.stderr
    assert (repo / "models/pretrain/model.pt").stat().st_mtime_ns == mtime


def test_training_again_gives_byte_identical_models_and_the_same_metrics(pipeline_repo, tmp_path):
    """Run-to-run determinism: the person detector and the Kinetics model trained again by their stages, in fresh
    processes writing elsewhere, equal the pipeline's byte for byte (their initial weights are seeded too)."""
    repo, env = pipeline_repo
    assert _dvc(repo, env, "repro", "pretrain", "proposals_ava").returncode == 0  # a no-op after the test above
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # the pipeline's store untouched
    again = tmp_path / "again"
    stages = {
        "proposals_ava": ["--raw", "data/raw/ava", "--shards", "data/shards/ava", "--out", again / "proposals",
                          "--proposals", again / "ava_val.csv", "--metrics", again / "proposals_ava.json"],
        "pretrain": ["--raw", "data/raw/kinetics", "--shards", "data/shards/kinetics", "--out", again / "pretrain",
                     "--metrics", again / "pretrain.json", "--curve", again / "pretrain_curve.csv"],
    }
    for stage, args in stages.items():
        result = subprocess.run([sys.executable, "-m", f"stages.{stage}", *map(str, args)], cwd=repo, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    for ours, theirs in (("proposals/person_detector.pt", "models/proposals_ava/person_detector.pt"),
                         ("ava_val.csv", "data/proposals/ava_val.csv"),
                         ("proposals_ava.json", "reports/proposals_ava.json"),
                         ("pretrain/model.pt", "models/pretrain/model.pt")):
        assert (again / ours).read_bytes() == (repo / theirs).read_bytes(), ours

    def without_timing(path: Path) -> dict:
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "clips_per_s"}

    assert without_timing(again / "pretrain.json") == without_timing(repo / "reports/pretrain.json")


def test_a_slow_only_experiment_draws_figure3_against_the_slowfast_run(pipeline_repo):
    """`dvc exp run -S model.preset=slow_tiny` (the README's way to get the Slow-only baseline) re-runs the AVA
    stages with the Slow-only model, and its evaluate_ava pairs with the SlowFast run in MLflow: figure3.csv holds
    the two runs' per-class APs. Runs last: the workspace keeps the experiment's params."""
    repo, env = pipeline_repo
    assert _dvc(repo, env, "repro").returncode == 0  # the SlowFast run (a no-op after the first test)
    out = repo / "reports/evaluate_ava"
    assert (out / "per_class_ap.png").is_file() and not (out / "figure3.png").exists()  # no Slow-only run yet

    result = _dvc(repo, env, "exp", "run", "-S", "model.preset=slow_tiny")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("slowfast").experiment_id],
                              filter_string="tags.`slowfast.stage` = 'evaluate_ava'",
                              order_by=["attributes.start_time DESC"])
    assert [r.data.tags[TAG_ARCH] for r in runs] == ["slow", "slowfast"]
    slow, slowfast = runs
    assert slow.data.params["model.preset"] == "slow_tiny" and slowfast.data.params["model.preset"] == "slowfast_tiny"
    assert slow.data.tags[TAG_EVAL_DATA] == slowfast.data.tags[TAG_EVAL_DATA]  # the same proposals and data
    table = pd.read_csv(out / "figure3.csv")
    assert sorted(table["class_id"]) == sorted(int(k[3:]) for k in slow.data.metrics if k.startswith("ap/"))
    for row in table.itertuples():
        for column, run in (("ap_slow", slow), ("ap_slowfast", slowfast)):
            want = run.data.metrics[f"ap/{row.class_id}"]
            assert (math.isnan(want) and math.isnan(getattr(row, column))) or getattr(row, column) == want
    assert {"figure3.png", "figure3.csv"} <= {f.path for f in client.list_artifacts(slow.info.run_id)}


def test_invalid_parameter_fails_before_any_work_naming_the_key(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["pretrain"]["train"]["base_lr"] = -1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop(PIPELINE_ID_ENV, None)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    result = _dvc(repo, env, "repro", "evaluate")
    assert result.returncode != 0
    assert "pretrain.train.base_lr: must be > 0, got -1" in result.stdout + result.stderr
    assert not (repo / "data").exists() and not (repo / "mlflow.db").exists()
