"""The custom stages through a real `dvc repro`, in a copy of the repository, on a user's own datasets: a folder of
class folders (with bad entries) fine-tuned from a converted-style checkpoint (so without Kinetics pretraining), and
an AVA-style set with its own 5-class label map through the AVA stages; off by default, they only say so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from slowfast.engine.train import seed_everything
from slowfast.models import build_model, preset_config
from slowfast.models.checkpoint import save_model
from slowfast.tracking.runs import PIPELINE_ID_ENV, TAG_ROLE
from tests.data.custom_datasets import CUSTOM_AVA_LABELS, custom_ava, motion_folder
from tests.data.videos import make_video, truncate
from tests.e2e.test_pipeline import _copy_repo, _merge

BIN = Path(sys.executable).parent
VIEW = {"train_scale": [48, 60], "crop": 48, "test_size": 48, "test_crops": 1}


def _repo(tmp_path: Path) -> tuple[Path, dict]:
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    env = {k: v for k, v in os.environ.items() if k not in (PIPELINE_ID_ENV, "MLFLOW_TRACKING_URI")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false",
               OMP_NUM_THREADS="1")
    return repo, env


def _commit(repo: Path, env: dict) -> None:
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)


def _dvc(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True)


def _checkpoint(path: Path) -> None:
    seed_everything(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(build_model(preset_config("slowfast_tiny", num_classes=4)), path)


def _runs(repo: Path) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("slowfast").experiment_id])


@pytest.fixture(scope="module")
def custom_repo(tmp_path_factory):
    repo, env = _repo(tmp_path_factory.mktemp("custom"))
    data = repo / "my data"
    motion_folder(data, per_class=6, classes={"rising": "rising", "falling ↓": "falling"})
    truncate(make_video(data / "rising" / "cut short.mp4", num_frames=30), 0.3)
    (data / "rising" / "readme.txt").write_text("not a video")
    (data / "empty").mkdir()
    (data / "stray.mp4").write_bytes(b"not even a video")
    _checkpoint(repo / "zoo" / "converted.pt")
    ava = custom_ava(repo / "my ava")
    _checkpoint(repo / "models" / "pretrain" / "model.pt")  # the AVA stages' init, without running pretrain
    shutil.copyfile(repo / "my ava" / ava["proposals"], repo / "proposals" / "my ava.csv")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    reduced = {
        "decode": {"workers": 1, "frames": {"short_side": 48}},
        "custom": {"enabled": True, "dataset": {"root": "my data", "val_fraction": 0.34}, "init": "zoo/converted.pt",
                   "finetune": {"train": {"epochs": 2, "batch_size": 4, "lr_steps": [1]}, "transform": VIEW},
                   "evaluate": {"test_clips": 2, "transform": VIEW}},
        "ava": {"root": "my ava", "video_start_sec": 0,
                "files": {k: str(v) for k, v in ava.items() if k != "proposals"},
                # imported proposals live in proposals/, the folder proposals_ava depends on
                "proposals": {"import_file": str(Path("proposals") / "my ava.csv")},
                "finetune": {"train": {"epochs": 2, "batch_size": 2, "lr_steps": [1], "warmup": 0}}},
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, reduced), sort_keys=False))
    _commit(repo, env)
    return repo, env


def test_dvc_repro_of_the_custom_stages_trains_scores_registers_and_records_every_bad_entry(custom_repo):
    repo, env = custom_repo
    first = _dvc(repo, env, "repro", "evaluate_custom")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert not (repo / "data" / "shards" / "kinetics").exists()  # init is a checkpoint: no Kinetics pretraining

    decode = json.loads((repo / "reports/decode_custom.json").read_text())
    assert {k: decode[k] for k in ("enabled", "videos", "decoded", "failures", "classes")} == {
        "enabled": True, "videos": 13, "decoded": 12, "failures": 4, "classes": 2}
    assert decode["train_videos"] + decode["val_videos"] == 12 and decode["val_videos"] >= 3
    failures = {f["video_id"]: f["reason"] for f in
                json.loads((repo / "reports/decode_custom_failures.json").read_text())}
    assert set(failures) == {"rising/cut short.mp4", "rising/readme.txt", "empty/", "stray.mp4"}
    assert "empty class folder" in failures["empty/"] and "outside any class folder" in failures["stray.mp4"]
    assert "not a video file" in failures["rising/readme.txt"]

    evaluation = json.loads((repo / "reports/evaluate_custom.json").read_text())
    predictions = pd.read_csv(repo / "reports/evaluate_custom/predictions.csv")
    assert evaluation["videos"] == len(predictions) == decode["val_videos"] and evaluation["classes"] == 2
    assert evaluation["top1"] == pytest.approx((predictions["actual"] == predictions["predicted"]).mean())
    assert set(predictions["actual"]) == {"rising", "falling ↓"}
    finetune = json.loads((repo / "reports/finetune_custom.json").read_text())
    assert finetune["epochs"] == 2 and finetune["train_videos"] == decode["train_videos"] and "val_top1" in finetune

    client, runs = _runs(repo)
    stages = sorted(r.info.run_name for r in runs if r.data.tags.get(TAG_ROLE) == "stage")
    assert stages == ["decode_custom", "evaluate_custom", "finetune_custom"]
    registered = client.get_model_version_by_alias("slowfast-custom", "champion")
    assert registered.run_id == next(r.info.run_id for r in runs if r.info.run_name == "finetune_custom")

    second = _dvc(repo, env, "repro", "evaluate_custom")
    assert second.returncode == 0 and "Data and pipelines are up to date" in second.stdout + second.stderr


def test_an_ava_style_set_with_its_own_label_map_trains_and_is_scored_by_the_ava_stages(custom_repo):
    repo, env = custom_repo
    result = _dvc(repo, env, "repro", "--single-item", "decode_ava", "proposals_ava", "finetune_ava", "evaluate_ava")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finetune = json.loads((repo / "reports/finetune_ava.json").read_text())
    assert finetune["epochs"] == 2 and finetune["keyframes"] > 0
    ava = json.loads((repo / "reports/evaluate_ava.json").read_text())
    per_class = pd.read_csv(repo / "reports/evaluate_ava/per_class_ap.csv")
    assert list(per_class["class_id"]) == sorted(CUSTOM_AVA_LABELS)
    assert list(per_class["class"]) == [CUSTOM_AVA_LABELS[c] for c in sorted(CUSTOM_AVA_LABELS)]
    assert 0.0 <= ava["map"] <= 1.0 and ava["keyframes"] > 0
    detections = pd.read_csv(repo / "reports/evaluate_ava/detections.csv", header=None)
    assert set(detections[6]) <= set(CUSTOM_AVA_LABELS)  # scored in the set's own ids
    assert detections[1].max() < 8  # keyframes at seconds of the file, not AVA's 902..1798
    assert ava["proposals"] == len(pd.read_csv(repo / "proposals" / "my ava.csv", header=None))


def test_off_by_default_the_custom_stages_record_enabled_false_and_track_nothing(tmp_path):
    repo, env = _repo(tmp_path)
    _checkpoint(repo / "models" / "pretrain" / "model.pt")  # finetune_custom's default init exists
    _commit(repo, env)
    result = _dvc(repo, env, "repro", "--single-item", "decode_custom", "finetune_custom", "evaluate_custom")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("decode_custom", "finetune_custom", "evaluate_custom"):
        assert json.loads((repo / "reports" / f"{name}.json").read_text()) == {"enabled": False}
    assert json.loads((repo / "models/custom/status.json").read_text()) == {"enabled": False}
    assert not (repo / "mlflow.db").exists()
