"""AVA frame mAP equals the official evaluator's semantics (naive reference in ava_reference.py) on random inputs
full of the cases that decide ties, and its CLI and Figure-3 plot work on real files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from tests.metrics.ava_reference import reference_ava_map

from slowfast.cli import main as cli_main
from slowfast.config import ConfigError, from_mapping
from slowfast.data.formats.ava import read_ava_csv, read_ava_groundtruth, read_exclusions, write_label_map
from slowfast.metrics.ava import AvaEvalConfig, AvaResult, evaluate_ava, plot_per_class_ap

LABEL_MAP = {1: "bend/bow (at the waist)", 3: "crouch/kneel", 4: "dance", 5: "fall down", 8: "jump/leap", 9: "lie"}
ALL_CLASSES = [1, 2, 3, 4, 5, 6, 8, 9]  # 2 and 6 are not in the label map


def _box(rng, grid: bool):
    # Grid boxes (multiples of 1/16) make IoU values collide exactly, so ground-truth order decides matches.
    if grid:
        a, b = np.sort(rng.integers(0, 17, 2)), np.sort(rng.integers(0, 17, 2))
        return [a[0] / 16, b[0] / 16, a[1] / 16, b[1] / 16]  # zero-area when equal
    a, b = np.sort(rng.random(2)), np.sort(rng.random(2))
    return [a[0], b[0], a[1], b[1]]


def _random_case(tmp_path, seed: int):
    """GT and detection CSVs with ties, duplicates, zero-area boxes, >50 detections per keyframe, detections on
    keyframes without GT, classes outside the label map and excluded timestamps; returns paths and exclusions."""
    rng = np.random.default_rng(seed)
    grid = bool(seed % 2)
    keyframes = [(f"vid{v}", int(t)) for v in range(3) for t in rng.choice(np.arange(902, 920), 4, replace=False)]
    gt_rows, det_rows = [], []
    for k, (video, t) in enumerate(keyframes):
        if k % 5 == 4:
            continue  # keyframe without ground truth (detections there are all false positives)
        people = [_box(rng, grid) for _ in range(rng.integers(1, 4))]
        if rng.random() < 0.3:
            people.append(list(people[0]))  # a duplicate person box
        for pid, box in enumerate(people):
            for action in rng.choice(ALL_CLASSES, rng.integers(1, 4), replace=False):
                gt_rows.append([video, t, *box, int(action), int(rng.integers(0, 3)) if grid else pid])
        if grid and rng.random() < 0.7:
            # Two GT boxes of one class shifted either side of a detection: equal IoU, so the evaluator's listing
            # order of the ground truth (by person id, through its heap) decides which one the detection takes.
            x, y, w = rng.integers(1, 8) / 16, rng.integers(0, 8) / 16, rng.integers(4, 8) / 16
            action = int(rng.choice(list(LABEL_MAP)))
            for shift in (-1 / 16, 1 / 16):
                gt_rows.append([video, t, x + shift, y, x + w + shift, y + w, action, int(rng.integers(0, 4))])
            det_rows.append([video, t, x, y, x + w, y + w, action, 0.875])
            det_rows.append([video, t, x + 1 / 16, y, x + w + 1 / 16, y + w, action, 0.5])
    for video, t in keyframes:
        n = int(rng.choice([5, 30, 60, 120]))
        gt_here = [r for r in gt_rows if r[0] == video and r[1] == t]
        for _ in range(n):
            if gt_here and rng.random() < 0.6:
                src = gt_here[rng.integers(len(gt_here))]
                box = list(src[2:6])
                if not grid:
                    box = list(np.clip(np.array(box) + rng.normal(0, 0.03, 4), 0, 1))
                    box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
                action = src[6] if rng.random() < 0.7 else int(rng.choice(ALL_CLASSES))
            else:
                box, action = _box(rng, grid), int(rng.choice(ALL_CLASSES))
            score = float(rng.integers(0, 8) / 8) if rng.random() < 0.5 else float(rng.random())
            det_rows.append([video, t, *box, action, score])
        if rng.random() < 0.3 and det_rows:
            det_rows.extend([list(det_rows[-1])] * 3)  # exact duplicate detections
    rng.shuffle(det_rows)
    rng.shuffle(gt_rows)
    det_rows.append(["vid9", 1000, 0.1, 0.1, 0.2, 0.2, 1, 0.99])  # keyframe that no ground truth has
    columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]
    gt = pd.DataFrame(gt_rows, columns=[*columns, "person_id"])
    det = pd.DataFrame(det_rows, columns=[*columns, "score"])
    excluded = {keyframes[i] for i in rng.choice(len(keyframes), 2, replace=False)}
    gt_path, det_path, ex_path = tmp_path / f"gt{seed}.csv", tmp_path / f"det{seed}.csv", tmp_path / f"ex{seed}.csv"
    # Repr-precision floats, so the CSV holds exactly the values both implementations parse.
    gt.assign(timestamp=gt.timestamp.map("{:04d}".format)).to_csv(gt_path, header=False, index=False)
    det.assign(timestamp=det.timestamp.map("{:04d}".format)).to_csv(det_path, header=False, index=False)
    ex_path.write_text("".join(f"{v},{t:04d}\n" for v, t in sorted(excluded)))
    return gt_path, det_path, ex_path


def _assert_equal(result: AvaResult, reference) -> None:
    ref_map, ref_ap = reference
    assert set(result.per_class_ap) == set(ref_ap)
    for c, ap in ref_ap.items():
        if math.isnan(ap):
            assert math.isnan(result.per_class_ap[c]), c
        else:
            assert result.per_class_ap[c] == pytest.approx(ap, abs=1e-12), c
    assert result.map == pytest.approx(ref_map, abs=1e-12)


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("cap", [50, 0, 7])
def test_frame_map_equals_official_semantics_on_random_inputs_with_ties(tmp_path, seed, cap):
    gt_path, det_path, ex_path = _random_case(tmp_path, seed)
    exclusions = read_exclusions(ex_path) if seed % 3 else None
    result = evaluate_ava(
        read_ava_csv(gt_path),
        read_ava_csv(det_path, detections=True),
        LABEL_MAP,
        exclusions=exclusions,
        max_per_keyframe=cap,
    )
    reference = reference_ava_map(gt_path, det_path, LABEL_MAP, exclusions=exclusions or (), capacity=cap)
    _assert_equal(result, reference)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cap", [50, 0])
def test_2020_protocol_equals_the_reference_ignoring_detections_off_the_ground_truth(tmp_path, seed, cap):
    gt_path, det_path, _ = _random_case(tmp_path, seed)
    # Keyframes without actions as 2-field rows: some with detections (all false positives), one without any.
    gt_lines = gt_path.read_text().splitlines()
    det_keys = sorted({tuple(line.split(",")[:2]) for line in det_path.read_text().splitlines()})
    listed = [f"{v},{t}" for v, t in det_keys if v == "vid9"] + ["vid0,1500"]
    rng = np.random.default_rng(seed)
    for row in listed:
        gt_lines.insert(int(rng.integers(0, len(gt_lines) + 1)), row)
    gt2020 = tmp_path / "gt2020.csv"
    gt2020.write_text("\n".join(gt_lines) + "\n")
    groundtruth, keyframes = read_ava_groundtruth(gt2020, protocol="activitynet-2020")
    assert ("vid9", 1000) in keyframes
    detections = read_ava_csv(det_path, detections=True)
    result = evaluate_ava(groundtruth, detections, LABEL_MAP, max_per_keyframe=cap, protocol="activitynet-2020",
                          keyframes=keyframes)
    _assert_equal(result, reference_ava_map(gt2020, det_path, LABEL_MAP, capacity=cap, protocol="activitynet-2020"))
    # Without the listed keyframes, vid9's detections are off the ground truth and ignored, not false positives.
    ignored = evaluate_ava(groundtruth, detections, LABEL_MAP, max_per_keyframe=cap, protocol="activitynet-2020")
    assert ignored.num_detections < result.num_detections
    _assert_equal(ignored, reference_ava_map(gt_path, det_path, LABEL_MAP, capacity=cap, protocol="activitynet-2020"))


def test_protocols_refuse_each_others_inputs():
    empty = pd.DataFrame(columns=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score"])
    with pytest.raises(ConfigError) as info:
        evaluate_ava(empty, empty, {1: "a"}, protocol="activitynet-2020", exclusions={("v", 902)})
    assert info.value.key == "exclusions"
    with pytest.raises(ConfigError) as info:
        evaluate_ava(empty, empty, {1: "a"}, keyframes={("v", 902)})
    assert info.value.key == "keyframes"
    with pytest.raises(ConfigError) as info:
        from_mapping(AvaEvalConfig, {"protocol": "activitynet-2021"})
    assert info.value.key == "protocol" and "activitynet-2019" in str(info.value)


def test_perfect_detections_score_one_and_classes_without_ground_truth_are_nan(tmp_path):
    gt_path, _, _ = _random_case(tmp_path, seed=100)
    gt = read_ava_csv(gt_path)
    det = gt.drop(columns="person_id").assign(score=np.linspace(1.0, 0.5, len(gt)))
    # Drop duplicate (box, class) pairs: a second detection of an identical GT box can only be a false positive.
    det = det.drop_duplicates(subset=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"])
    gt = gt.drop_duplicates(subset=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"])
    gt = gt[(gt.x1 < gt.x2) & (gt.y1 < gt.y2)]  # zero-area detections are discarded by the evaluator
    det = det[(det.x1 < det.x2) & (det.y1 < det.y2)]
    label_map = {**LABEL_MAP, 7: "unused class"}
    result = evaluate_ava(gt, det, label_map, max_per_keyframe=0)
    present = set(gt.action_id) & set(label_map)
    assert all(result.per_class_ap[c] == 1.0 for c in present)
    assert all(math.isnan(result.per_class_ap[c]) for c in set(label_map) - present)
    assert result.map == 1.0


def test_cap_keeps_only_the_top_scoring_detections_per_keyframe():
    gt = pd.DataFrame(
        {"video_id": ["v"], "timestamp": [902], "x1": [0.1], "y1": [0.1], "x2": [0.5], "y2": [0.5],
         "action_id": [1], "person_id": [0]}
    )
    # 60 false positives outscore the single true positive: with the cap of 50 it is cut, without it is found.
    fp = pd.DataFrame(
        {"video_id": "v", "timestamp": 902, "x1": 0.6, "y1": 0.6, "x2": 0.9, "y2": 0.9, "action_id": 1,
         "score": np.linspace(0.9, 0.99, 60)}
    )
    tp = gt.drop(columns="person_id").assign(score=0.5)
    det = pd.concat([tp, fp], ignore_index=True)
    assert evaluate_ava(gt, det, {1: "a"}).per_class_ap[1] == 0.0
    assert evaluate_ava(gt, det, {1: "a"}, max_per_keyframe=0).per_class_ap[1] == pytest.approx(1 / 61)


@pytest.mark.parametrize(
    "kwargs, key",
    [({"max_per_keyframe": -1}, "max_per_keyframe"), ({"iou": 0.0}, "iou"), ({"iou": 1.5}, "iou")],
)
def test_invalid_parameters_fail_naming_the_key(kwargs, key):
    empty = pd.DataFrame(columns=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score"])
    with pytest.raises(ConfigError) as info:
        evaluate_ava(empty, empty, {1: "a"}, **kwargs)
    assert info.value.key == key
    with pytest.raises(ConfigError, match="label_map"):
        evaluate_ava(empty, empty, {0: "zero-indexed"})


def test_cli_prints_the_same_map_as_the_library(tmp_path, capsys):
    gt_path, det_path, ex_path = _random_case(tmp_path, seed=7)
    write_label_map(LABEL_MAP, tmp_path / "map.pbtxt")
    argv = ["eval-ava", "--groundtruth", str(gt_path), "--detections", str(det_path),
            "--labelmap", str(tmp_path / "map.pbtxt"), "--exclusions", str(ex_path)]
    assert cli_main([*argv, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    expected = evaluate_ava(
        read_ava_csv(gt_path), read_ava_csv(det_path, detections=True), LABEL_MAP,
        exclusions=read_exclusions(ex_path),
    )
    assert payload["mAP"] == pytest.approx(expected.map, abs=1e-12)
    assert {int(k) for k in payload["per_class_ap"]} == set(LABEL_MAP)
    assert cli_main(argv) == 0
    assert f"mAP@0.5: {100 * expected.map:.2f}" in capsys.readouterr().out


def test_cli_reports_a_malformed_csv_line_without_a_traceback(tmp_path, capsys):
    gt_path, det_path, _ = _random_case(tmp_path, seed=8)
    det_path.write_text(det_path.read_text() + "vid0,0902,0.1,0.2\n")
    write_label_map(LABEL_MAP, tmp_path / "map.pbtxt")
    code = cli_main(["eval-ava", "--groundtruth", str(gt_path), "--detections", str(det_path),
                     "--labelmap", str(tmp_path / "map.pbtxt")])
    assert code == 2
    assert f"{det_path}: line" in capsys.readouterr().err


def test_per_class_ap_plot_is_a_png(tmp_path):
    gt_path, det_path, _ = _random_case(tmp_path, seed=3)
    gt, det = read_ava_csv(gt_path), read_ava_csv(det_path, detections=True)
    runs = {
        "Slow-only": evaluate_ava(gt, det.assign(score=det.score * 0.5 + 0.1 * np.cos(det.index)), LABEL_MAP),
        "SlowFast": evaluate_ava(gt, det, LABEL_MAP),
    }
    plot_per_class_ap(runs, LABEL_MAP, tmp_path / "fig3.png")
    data = (tmp_path / "fig3.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_config_from_mapping_names_the_bad_key_and_cli_fails_before_reading(tmp_path, capsys):
    assert from_mapping(AvaEvalConfig, {"max_per_keyframe": 0}).max_per_keyframe == 0
    with pytest.raises(ConfigError) as info:
        from_mapping(AvaEvalConfig, {"max_per_keyframe": 1.5})
    assert info.value.key == "max_per_keyframe"
    missing = str(tmp_path / "does-not-exist.csv")
    code = cli_main(["eval-ava", "--groundtruth", missing, "--detections", missing, "--labelmap", missing,
                     "--max-per-keyframe", "-1"])
    assert code == 2
    assert "max_per_keyframe" in capsys.readouterr().err
