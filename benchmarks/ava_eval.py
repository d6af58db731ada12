"""AVA frame-mAP evaluation speed: slowfast.metrics.ava vs reference implementations of the official evaluator.

All read the same CSV files (ground truth, detections) and compute mAP@0.5 over a 60-class label map, in one run,
side by side, and must agree on the mAP. References (the official ActivityNet code is not installable from a package
index, see tests/metrics/ava_reference.py):

* "reference": tests/metrics/ava_reference.py, plain Python loops (the equality tests' reference);
* "official per-keyframe numpy structure": the official evaluator's cost structure (numpy arrays per keyframe, a loop
  over every class id per keyframe, an IoU matrix per class), fed by the same reading phase.

Prints a table, or one JSON object with --json.

    python benchmarks/ava_eval.py [--keyframes 1000] [--per-keyframe 100] [--repeats 3] [--score-decimals 4] [--json]

``--whole-process`` times what a user waits for instead: ``slowfast eval-ava`` as a process (start-up, reading the
CSVs, evaluating) against a process running the official-structure reference on the same files (its reading phase
is the official ``csv``/``heapq`` reader), with an exclusions file, as the official evaluator is run on AVA val.
AVA-val size (the official evaluator takes ~110 s there):

    python benchmarks/ava_eval.py --whole-process --keyframes 24000 --per-keyframe 29 --score-decimals 4 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slowfast.data.formats.ava import read_ava_csv, write_ava_csv, write_label_map  # noqa: E402
from slowfast.metrics.ava import evaluate_ava  # noqa: E402
from tests.metrics.ava_reference import reference_evaluate, reference_read  # noqa: E402


def synthetic(
    keyframes: int, per_keyframe: int, seed: int, score_decimals: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, str]]:
    """AVA-like data: ~4 people per keyframe with 1-3 actions; detections = jittered people x random classes."""
    rng = np.random.default_rng(seed)
    label_map = {int(c): f"action {c}" for c in np.sort(rng.choice(np.arange(1, 81), 60, replace=False))}
    gt, det = [], []
    for k in range(keyframes):
        video, t = f"movie{k // 900:03d}", 902 + k % 900
        people = np.sort(rng.random((rng.integers(2, 7), 2, 2)), axis=1).reshape(-1, 4)[:, [0, 1, 2, 3]]
        for pid, box in enumerate(people):
            for action in rng.choice(np.arange(1, 81), rng.integers(1, 4), replace=False):
                gt.append((video, t, *box, int(action), pid))
        per_person = max(1, per_keyframe // len(people))
        for box in people:
            jitter = np.clip(box + rng.normal(0, 0.02, 4), 0, 1)
            x1, x2 = sorted(jitter[[0, 2]])
            y1, y2 = sorted(jitter[[1, 3]])
            for action in rng.choice(np.arange(1, 81), per_person, replace=False):
                score = float(rng.random())
                if score_decimals is not None:
                    score = round(score, score_decimals)
                det.append((video, t, x1, y1, x2, y2, int(action), score))
    columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]
    return (
        pd.DataFrame(gt, columns=[*columns, "person_id"]),
        pd.DataFrame(det, columns=[*columns, "score"]),
        label_map,
    )


def per_keyframe_numpy_evaluate(groundtruth, detections, label_map, exclusions=frozenset()):
    """The official evaluator's cost structure, for timing: per keyframe, numpy arrays; per class id 1..max id, boolean
    masks, an IoU matrix, argmax and a loop over that class's detections; per class, numpy precision/recall/AP.
    (Consumes :func:`reference_read`'s output; the result must equal the other two.)"""
    num_classes = max(label_map)
    num_gt = np.zeros(num_classes + 1, dtype=int)
    gt_arrays = {}
    groundtruth = {k: v for k, v in groundtruth.items() if k not in exclusions}
    detections = {k: v for k, v in detections.items() if k not in exclusions}
    for key, listed in groundtruth.items():
        labels = np.array([t[1] for t in listed], dtype=int)
        gt_arrays[key] = (np.array([t[2:] for t in listed], dtype=float), labels)
        num_gt += np.bincount(labels, minlength=num_classes + 1)
    scores_per_class = [[] for _ in range(num_classes + 1)]
    tp_per_class = [[] for _ in range(num_classes + 1)]
    for key, listed in detections.items():
        boxes = np.array([t[2:] for t in listed], dtype=float)
        scores = np.array([t[0] for t in listed], dtype=float)
        labels = np.array([t[1] for t in listed], dtype=int)
        valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        gt_boxes, gt_labels = gt_arrays.get(key, (np.zeros((0, 4)), np.zeros(0, dtype=int)))
        for c in range(1, num_classes + 1):
            det_c, score_c, gt_c = boxes[labels == c], scores[labels == c], gt_boxes[gt_labels == c]
            if det_c.size == 0:
                continue
            tp = np.zeros(len(det_c), dtype=bool)
            if gt_c.size:
                heights = np.maximum(0, np.minimum(det_c[:, None, 2], gt_c[None, :, 2])
                                     - np.maximum(det_c[:, None, 0], gt_c[None, :, 0]))
                widths = np.maximum(0, np.minimum(det_c[:, None, 3], gt_c[None, :, 3])
                                    - np.maximum(det_c[:, None, 1], gt_c[None, :, 1]))
                inter = heights * widths
                area_d = (det_c[:, 2] - det_c[:, 0]) * (det_c[:, 3] - det_c[:, 1])
                area_g = (gt_c[:, 2] - gt_c[:, 0]) * (gt_c[:, 3] - gt_c[:, 1])
                iou = inter / (area_d[:, None] + area_g[None, :] - inter)
                best = np.argmax(iou, axis=1)
                taken = np.zeros(len(gt_c), dtype=bool)
                for i in range(len(det_c)):
                    if iou[i, best[i]] >= 0.5 and not taken[best[i]]:
                        tp[i] = taken[best[i]] = True
            scores_per_class[c].append(score_c)
            tp_per_class[c].append(tp)
    ap = np.full(num_classes, np.nan)
    for c in range(1, num_classes + 1):
        if num_gt[c] == 0:
            continue
        if not scores_per_class[c]:
            ap[c - 1] = 0.0
            continue
        scores, tp = np.concatenate(scores_per_class[c]), np.concatenate(tp_per_class[c]).astype(int)
        # numpy's generic introsort, as under the numpy <= 1.23 the evaluator runs on (same cost as its float sort).
        ranked = tp[np.argsort(scores.astype(np.longdouble))[::-1]]
        cum_tp, cum_fp = np.cumsum(ranked), np.cumsum(1 - ranked)
        precision = np.concatenate([[0], cum_tp / (cum_tp + cum_fp), [0]])
        recall = np.concatenate([[0], cum_tp / num_gt[c], [1]])
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
        ap[c - 1] = np.sum((recall[steps] - recall[steps - 1]) * precision[steps])
    return float(np.nanmean(ap))


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def reference_process(gt_path: str, det_path: str, map_path: str, exclusions_path: str) -> int:
    """Entry point of the reference process: read like the official evaluator, evaluate with its structure."""
    from slowfast.data.formats.ava import read_label_map

    label_map = read_label_map(map_path)
    with open(exclusions_path, newline="") as fh:
        excluded = {(v, int(t)) for v, t in (line.strip().split(",") for line in fh if line.strip())}
    groundtruth, detections = reference_read(gt_path, det_path, label_map)
    print(json.dumps({"mAP": per_keyframe_numpy_evaluate(groundtruth, detections, label_map, excluded)}))
    return 0


def whole_process(args: argparse.Namespace) -> int:
    gt, det, label_map = synthetic(args.keyframes, args.per_keyframe, args.seed, args.score_decimals)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, det_path, map_path = Path(tmp, "gt.csv"), Path(tmp, "det.csv"), Path(tmp, "map.pbtxt")
        ex_path = Path(tmp, "exclusions.csv")
        write_ava_csv(gt, gt_path)
        # Scores as written by PySlowFast (4 decimals when --score-decimals 4), boxes with 3.
        write_ava_csv(det, det_path)
        write_label_map(label_map, map_path)
        keys = gt[["video_id", "timestamp"]].drop_duplicates().to_numpy()[:: max(1, args.keyframes // 50)]
        ex_path.write_text("".join(f"{v},{int(t):04d}\n" for v, t in keys))
        files = [str(gt_path), str(det_path), str(map_path), str(ex_path)]
        ours_cmd = [sys.executable, "-m", "slowfast.cli", "eval-ava", "--groundtruth", files[0], "--detections",
                    files[1], "--labelmap", files[2], "--exclusions", files[3], "--json"]
        ref_cmd = [sys.executable, str(Path(__file__).resolve()), "--reference-process", *files]

        def timed(cmd: list[str]) -> tuple[float, float]:
            best, value = float("inf"), float("nan")
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
                best = min(best, time.perf_counter() - start)
                value = json.loads(out)["mAP"]
            return best, value

        t_ours, map_ours = timed(ours_cmd)
        t_ref, map_ref = timed(ref_cmd)
    summary = {"keyframes": args.keyframes, "detections": len(det), "groundtruth_boxes": len(gt),
               "classes": len(label_map), "excluded_keyframes": len(keys), "ours_s": t_ours, "reference_s": t_ref,
               "speedup": t_ref / t_ours, "map_ours": map_ours, "map_reference": map_ref,
               "abs_difference": abs(map_ours - map_ref)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"AVA frame mAP@0.5, whole process: {args.keyframes} keyframes, {len(det)} detections, {len(gt)} GT boxes, "
          f"{len(label_map)} classes, {len(keys)} excluded keyframes (best of {args.repeats})")
    print(f"{'process':<58} {'seconds':>8} {'speed-up':>9}")
    print(f"{'official-structure reference (csv + heapq read, numpy eval)':<58} {t_ref:>8.2f} {1.0:>8.1f}x")
    print(f"{'slowfast eval-ava':<58} {t_ours:>8.2f} {t_ref / t_ours:>8.1f}x")
    print(f"mAP ours {map_ours:.10f}  reference {map_ref:.10f}  |diff| {summary['abs_difference']:.2e}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--reference-process"]:
        return reference_process(*argv[1:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyframes", type=int, default=1000)
    parser.add_argument("--per-keyframe", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs of each phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--score-decimals", type=int, help="round scores (PySlowFast writes 4 decimals): ties exercise the exact paths"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--whole-process", action="store_true", help="time eval-ava and the reference as processes")
    args = parser.parse_args(argv)
    if args.whole_process:
        return whole_process(args)

    gt, det, label_map = synthetic(args.keyframes, args.per_keyframe, args.seed, args.score_decimals)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, det_path, map_path = Path(tmp, "gt.csv"), Path(tmp, "det.csv"), Path(tmp, "map.pbtxt")
        write_ava_csv(gt, gt_path)
        write_ava_csv(det, det_path)
        write_label_map(label_map, map_path)
        gt_df, det_df = read_ava_csv(gt_path), read_ava_csv(det_path, detections=True)

        def ours_read():
            return read_ava_csv(gt_path), read_ava_csv(det_path, detections=True)

        def ref_read():
            return reference_read(gt_path, det_path, label_map)

        t_ours_read, (gt_df, det_df) = best_of(args.repeats, ours_read)
        t_ours_eval, result = best_of(args.repeats, lambda: evaluate_ava(gt_df, det_df, label_map))
        t_ref_read, (ref_gt, ref_det) = best_of(args.repeats, ref_read)
        t_ref_eval, (ref_map, _) = best_of(args.repeats, lambda: reference_evaluate(ref_gt, ref_det, label_map))
        t_np_eval, np_map = best_of(
            args.repeats, lambda: per_keyframe_numpy_evaluate(ref_gt, ref_det, label_map)
        )

    rows = [
        {"phase": "read CSVs (+ per-keyframe cap in the reference)", "reference_s": t_ref_read, "ours_s": t_ours_read},
        {"phase": "evaluate (cap, matching, AP)", "reference_s": t_ref_eval, "ours_s": t_ours_eval},
        {"phase": "total", "reference_s": t_ref_read + t_ref_eval, "ours_s": t_ours_read + t_ours_eval},
        {"phase": "evaluate, official per-keyframe numpy structure", "reference_s": t_np_eval, "ours_s": t_ours_eval},
        {"phase": "total, official per-keyframe numpy structure", "reference_s": t_ref_read + t_np_eval,
         "ours_s": t_ours_read + t_ours_eval},
    ]
    for row in rows:
        row["speedup"] = row["reference_s"] / row["ours_s"]
    summary = {
        "keyframes": args.keyframes,
        "detections": len(det),
        "groundtruth_boxes": len(gt),
        "classes": len(label_map),
        "map_ours": result.map,
        "map_reference": ref_map,
        "map_per_keyframe_numpy": np_map,
        "abs_difference": max(abs(result.map - ref_map), abs(result.map - np_map)),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"AVA frame mAP@0.5: {args.keyframes} keyframes, {len(det)} detections, {len(gt)} GT boxes, "
        f"{len(label_map)} classes"
    )
    print(f"{'phase':<52} {'reference s':>11} {'ours s':>8} {'speed-up':>9}")
    for row in rows:
        print(f"{row['phase']:<52} {row['reference_s']:>11.3f} {row['ours_s']:>8.3f} {row['speedup']:>8.1f}x")
    print(
        f"mAP ours {result.map:.10f}  reference {ref_map:.10f}  per-keyframe numpy {np_map:.10f}  "
        f"max |diff| {summary['abs_difference']:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
