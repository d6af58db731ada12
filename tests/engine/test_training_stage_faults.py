"""The pretrain stage as DVC runs it: missing videos counted, an unknown val_split and a locked output folder refused
in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.sources import KineticsSource
from tests.data.videos import make_video

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"model": {"preset": "slowfast_tiny"}, "decode": {"frames": {"short_side": 32}},
          "pretrain": {"train": {"epochs": 1, "batch_size": 2, "warmup": 0}},
          "tracking": {"system_metrics": False}}


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    """A Kinetics root listing 6 train clips of which only 4 have a video file, and 2 val clips; decoded shards."""
    root = tmp_path_factory.mktemp("kinetics")
    raw = root / "raw"
    (raw / "annotations").mkdir(parents=True)
    rows = {"train": [(f"c{i % 2}", f"train{i:07d}aa") for i in range(6)], "val": [("c0", "val0000000a"),
                                                                                  ("c1", "val0000001a")]}
    for split, clips in rows.items():
        lines = ["label,youtube_id,time_start,time_end,split"]
        (raw / split).mkdir()
        for i, (label, yid) in enumerate(clips):
            lines.append(f"{label},{yid},0,1,{split}")
            if not (split == "train" and i >= 4):
                make_video(raw / split / f"{yid}_000000_000001.mp4", num_frames=30)
        (raw / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    decode_videos(KineticsSource(raw).video_paths(), root / "shards", DecodeConfig(short_side=32), progress=False)
    return root


def _pretrain(root: Path, tmp_path: Path, params: dict) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k != "SLOWFAST_PIPELINE_ID"}
    env.update(PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
               MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "stages.pretrain", "--raw", str(root / "raw"), "--shards", str(root / "shards"),
           "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "metrics.json"),
           "--curve", str(tmp_path / "curve.csv"), "--params", str(tmp_path / "params.yaml")]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_pretrain_says_how_many_listed_videos_are_missing_and_puts_the_count_in_its_metrics(kinetics, tmp_path):
    result = _pretrain(kinetics, tmp_path, PARAMS)
    assert result.returncode == 0, result.stderr
    assert "pretrain: 2 of 6 listed train videos are missing from the shards" in result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["missing_videos"], metrics["val_missing_videos"]) == (2, 0)
    assert not (tmp_path / "out" / ".slowfast.lock").exists()


def test_unknown_val_split_is_a_one_line_error_naming_the_key(kinetics, tmp_path):
    params = {**PARAMS, "pretrain": {**PARAMS["pretrain"], "val_split": "validation"}}
    result = _pretrain(kinetics, tmp_path, params)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: pretrain.val_split: split 'validation' is not in the dataset; available: train, val"]
    assert not (tmp_path / "out").exists()


def test_a_second_trainer_on_the_same_output_folder_stops_naming_the_first(kinetics, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from slowfast.utils.lock import folder_lock\n"
         f"with folder_lock({str(out)!r}, 'pretrain'):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = _pretrain(kinetics, tmp_path, PARAMS)
    finally:
        holder.communicate("")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: pretrain: {out} is being written by pid {holder.pid} on ")
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written beside the holder's (now released) lock
