"""The AVA protocol knob: ``ava.evaluate.metric.protocol`` is validated before any work (naming the key and the
allowed values) by the evaluate_ava stage as a user runs it, and detections written in the official CSV format score,
through ``slowfast eval-ava``, exactly as the stage scores them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from slowfast.config import ConfigError
from slowfast.data.formats.ava import read_ava_csv, write_ava_csv, write_label_map
from slowfast.metrics.ava import evaluate_ava
from slowfast.params import load_params

REPO = Path(__file__).resolve().parents[2]
LABEL_MAP = {1: "stand", 3: "sit", 4: "walk"}


def _params_with(tmp_path: Path, protocol: str) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ava"]["evaluate"]["metric"]["protocol"] = protocol
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_default_params_use_the_2019_protocol_of_the_papers_numbers():
    assert load_params(REPO / "params.yaml").ava.evaluate.metric.protocol == "activitynet-2019"


def test_unknown_protocol_fails_naming_the_key_and_the_allowed_values(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_params(_params_with(tmp_path, "activitynet-2021"))
    assert info.value.key == "ava.evaluate.metric.protocol"
    assert "'activitynet-2019'" in str(info.value) and "'activitynet-2020'" in str(info.value)
    assert load_params(_params_with(tmp_path, "activitynet-2020")).ava.evaluate.metric.protocol == "activitynet-2020"


def test_evaluate_ava_stage_rejects_a_bad_protocol_before_any_work(tmp_path):
    params = _params_with(tmp_path, "activitynet-2021")
    missing = str(tmp_path / "missing")
    proc = subprocess.run(
        [sys.executable, "-m", "stages.evaluate_ava", "--raw", missing, "--shards", missing, "--model", missing,
         "--proposals", missing, "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"),
         "--params", str(params)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "ava.evaluate.metric.protocol" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("protocol", ["activitynet-2019", "activitynet-2020"])
def test_detections_written_in_the_official_format_score_the_same_through_the_cli(tmp_path, protocol):
    """What the stage does: write the detections CSV, score what was written; the CLI on that file agrees."""
    rng = np.random.default_rng(0)
    keyframes = [("movie-a_1", t) for t in range(902, 912)] + [("movie_b", t) for t in range(1000, 1006)]
    gt_rows, det_rows = [], []
    for k, (video, t) in enumerate(keyframes):
        for person in range(3):
            x1, y1 = rng.random(2) * 0.5
            box = [x1, y1, x1 + 0.1 + rng.random() * 0.4, y1 + 0.1 + rng.random() * 0.4]
            if k % 4:  # every 4th keyframe has no ground truth
                gt_rows.append([video, t, *np.round(box, 3), int(rng.choice(list(LABEL_MAP))), person])
            for action in LABEL_MAP:  # one detection per class per proposal, full-precision floats
                jitter = np.clip(np.array(box) + rng.normal(0, 0.02, 4), 0, 1)
                det_rows.append([video, t, *np.sort(jitter[[0, 2]])[[0]], *np.sort(jitter[[1, 3]])[[0]],
                                 *np.sort(jitter[[0, 2]])[[1]], *np.sort(jitter[[1, 3]])[[1]], action,
                                 float(np.round(rng.random(), 2))])
    columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]
    groundtruth = pd.DataFrame(gt_rows, columns=[*columns, "person_id"])
    detections = pd.DataFrame(det_rows, columns=[*columns, "score"])
    gt_path, det_path, map_path = tmp_path / "gt.csv", tmp_path / "detections.csv", tmp_path / "map.pbtxt"
    write_ava_csv(groundtruth, gt_path)
    write_label_map(LABEL_MAP, map_path)
    exclusions = {keyframes[1]} if protocol == "activitynet-2019" else None
    write_ava_csv(detections, det_path)
    stage = evaluate_ava(read_ava_csv(gt_path), read_ava_csv(det_path, detections=True), LABEL_MAP,
                         exclusions=exclusions, protocol=protocol)
    argv = [sys.executable, "-m", "slowfast.cli", "eval-ava", "--groundtruth", str(gt_path), "--detections",
            str(det_path), "--labelmap", str(map_path), "--protocol", protocol, "--json"]
    if exclusions:
        (tmp_path / "ex.csv").write_text("".join(f"{v},{t:04d}\n" for v, t in exclusions))
        argv += ["--exclusions", str(tmp_path / "ex.csv")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["mAP"] == pytest.approx(stage.map, abs=1e-12)
    assert payload["num_detections"] == stage.num_detections
    for class_id, ap in stage.per_class_ap.items():
        assert payload["per_class_ap"][str(class_id)]["ap"] == pytest.approx(ap, abs=1e-12)


def test_cli_refuses_exclusions_under_the_2020_protocol(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "slowfast.cli", "eval-ava", "--groundtruth", "g", "--detections", "d", "--labelmap",
         "l", "--protocol", "activitynet-2020", "--exclusions", "e"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 2
    assert "--exclusions" in proc.stderr and "activitynet-2020" in proc.stderr and "Traceback" not in proc.stderr
