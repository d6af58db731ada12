"""`slowfast finetune` as a user runs it: a folder / MMAction2 / PySlowFast dataset of real encoded videos, fine-tuned
and evaluated in one command; its model then works with `slowfast predict`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slowfast.engine.train import seed_everything
from slowfast.models import build_model, preset_config
from slowfast.models.checkpoint import save_model
from tests.data.custom_datasets import motion_folder
from tests.data.videos import make_video, truncate

BIN = Path(sys.executable).parent
VIEW = {"train_scale": [48, 60], "crop": 48, "test_size": 48, "test_crops": 1}
#: the reduced recipe: 48-pixel frames, AdamW 2e-3 at batch 8 for ~100 steps (README "Embedded default": rising vs
#: falling learns in about that many), two clips per video at test time
RECIPE = {
    "decode": {"workers": 1, "frames": {"short_side": 48}},
    "custom": {"finetune": {"train": {"epochs": 24, "batch_size": 8, "optimizer": "adamw", "base_lr": 0.002,
                                      "weight_decay": 1e-4, "schedule": "cosine", "seed": 0},
                            "transform": VIEW},
               "evaluate": {"test_clips": 2, "transform": VIEW}},
}


def _init_checkpoint(path: Path) -> Path:
    """A fresh slowfast_tiny (no pretraining): whatever the fine-tuned model knows, it learned from the dataset."""
    seed_everything(0)
    return save_model(build_model(preset_config("slowfast_tiny", num_classes=7)), path)


def _finetune(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "slowfast"), "finetune", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={"OMP_NUM_THREADS": "1", "PATH": str(BIN), "HOME": str(cwd)})


@pytest.fixture(scope="module")
def motion_dataset(tmp_path_factory):
    """Rising vs falling objects (the class is only the motion), in five containers, plus bad entries."""
    work = tmp_path_factory.mktemp("finetune")
    root = work / "my videos"
    good = motion_folder(root, per_class=24, classes={"rising up": "rising", "fällt ↓": "falling"})
    truncate(make_video(root / "rising up" / "broken.mp4", num_frames=30), 0.3)
    (root / "rising up" / "notes.txt").write_text("not a video")
    (root / "nothing here").mkdir()
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(RECIPE))
    return work, root, good, _init_checkpoint(work / "init" / "model.pt"), params


def test_finetune_learns_motion_classes_above_chance_and_its_model_predicts(motion_dataset):
    work, root, good, init, params = motion_dataset
    out = work / "run"
    result = _finetune("--dataset", f"folder:{root}", "--init", init, "--out", out, "--params", params,
                       "--val-fraction", "0.25", "--json", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert summary["classes"] == 2
    assert summary["train_videos"] == 2 * 18 and summary["val_videos"] == 2 * 6
    # 12 validation videos: chance gets >= 10 right with probability 1.9%
    assert summary["top1"] >= 10 / 12, summary
    assert summary["top5"] == 1.0
    failures = json.loads((out / "failures.json").read_text())
    assert summary["failures"] == len(failures) == 3
    assert {f["video_id"] for f in failures} == {"rising up/broken.mp4", "rising up/notes.txt", "nothing here/"}
    per_class = (out / "evaluate" / "per_class.csv").read_text().splitlines()
    assert per_class[0] == "class,accuracy,videos" and {r.split(",")[0] for r in per_class[1:]} == set(good)

    video = root / good["rising up"][0]
    predicted = subprocess.run([str(BIN / "slowfast"), "predict", str(video), "--checkpoint", str(out / "model.pt"),
                                "--json", "--clips", "2", "--crops", "1"], capture_output=True, text=True)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    top = json.loads(predicted.stdout)["top"]
    assert {t["class"] for t in top} == {"rising up", "fällt ↓"}
    assert abs(sum(t["score"] for t in top) - 1.0) < 1e-4


@pytest.mark.parametrize("layout", ["mmaction", "pyslowfast"])
def test_finetune_reads_list_layouts_and_counts_their_bad_lines(motion_dataset, layout):
    work, root, good, init, params = motion_dataset
    names = sorted(good)
    lines = [f"{rel} {names.index(folder)}" for folder in names for rel in good[folder][:6]]
    lines += ["does not exist.mp4 0", f"{good[names[0]][0]} 0", f"{good[names[0]][1]} 9", "../../escape.mp4 1"]
    suffix = {"mmaction": "txt", "pyslowfast": "csv"}[layout]
    listing = root / f"train.{suffix}"
    listing.write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    out = work / f"run-{layout}"
    result = _finetune("--dataset", f"{layout}:{listing}", "--classes", "classes.txt", "--init", init, "--out", out,
                       "--params", params, "--epochs", "1", "--val-fraction", "0.34", "--json", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["classes"] == 2 and summary["train_videos"] == 8 and summary["val_videos"] == 4  # 2 of 6 held out
    reasons = [f["reason"] for f in json.loads((out / "failures.json").read_text())]
    assert [r.split(":")[:2] for r in reasons] == [[listing.name, str(n)] for n in (13, 14, 15, 16)]
    assert "missing file" in reasons[0] and "duplicate path" in reasons[1]
    assert "unknown label '9'" in reasons[2] and "outside the dataset root" in reasons[3]


def test_finetune_with_a_bad_dataset_spec_or_nothing_usable_fails_in_one_line(motion_dataset, tmp_path):
    work, root, good, init, params = motion_dataset
    bad = _finetune("--dataset", f"csv:{root}", "--init", init, "--out", tmp_path / "x", cwd=work)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"slowfast finetune: error: --dataset: got 'csv:{root}', allowed: folder:ROOT, mmaction:LIST or pyslowfast:CSV"]
    empty = tmp_path / "empty"
    truncate(make_video(empty / "a" / "only.mp4", num_frames=20), 0.2)
    nothing = _finetune("--dataset", f"folder:{empty}", "--init", init, "--out", tmp_path / "y", "--params", params,
                        cwd=work)
    assert nothing.returncode == 2
    last = nothing.stderr.strip().splitlines()[-1]
    assert last.startswith("slowfast finetune: error: ") and "no usable training video is left" in last
    assert "a/only.mp4" in last and "Traceback" not in nothing.stderr
