"""A deliberately naive AVA frame-mAP, written from the official ActivityNet evaluator's documented behaviour.

No package ships ``get_ava_performance.py`` unchanged (mmaction2 1.2.0 rewrote its reader without the heap cap and
needs mmengine), so the tests compare ``slowfast.metrics.ava`` against this plain-loop transcription of the
evaluator's semantics instead: read CSV rows with ``csv``/``float``/``int``; drop classes outside the label map; keep
at most ``capacity`` rows per keyframe in a min-heap of ``(score, class, y1, x1, y2, x2)`` (replace the smallest only
on a strictly larger score; ground truth: uncapped, the 8th column as "score"); list them by decreasing score (stable
over the heap array); drop excluded keyframes; drop detections with zero area; match each detection in list order to
the first ground-truth box of its class with maximal IoU; rank per class with ``np.argsort(scores)[::-1]`` on the
scores concatenated keyframe by keyframe; VOC all-point AP; ``nanmean`` over ids 1..max id.

The evaluator's argsort ran on numpy <= 1.23 (generic introsort); here the scores are sorted as a numpy *object*
array, which numpy 2 still sorts with its generic introsort on every CPU (float64 would take a SIMD sort on AVX2 /
AVX-512 machines and order ties differently). This shares no code with ``slowfast.metrics.sorting``.

``protocol="activitynet-2020"`` follows ActivityNet's current evaluator: no exclusions, ground-truth rows of only
``video_id,timestamp`` list keyframes without actions, and detections on keyframes that the ground-truth file does
not name (in any row, of any class) are ignored.
"""

from __future__ import annotations

import csv
import heapq

import numpy as np


def _read(path, whitelist, capacity, all_keys=None):
    entries = {}
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if not row:
                continue
            key = (row[0], int(row[1]))
            if all_keys is not None:
                all_keys.add(key)
            if len(row) == 2:
                continue
            x1, y1, x2, y2 = (float(v) for v in row[2:6])
            action = int(row[6])
            if action not in whitelist:
                continue
            score = float(row[7]) if len(row) == 8 else 1.0
            heap = entries.setdefault(key, [])
            item = (score, action, y1, x1, y2, x2)
            if capacity < 1 or len(heap) < capacity:
                heapq.heappush(heap, item)
            elif score > heap[0][0]:
                heapq.heapreplace(heap, item)
    return {key: sorted(heap, key=lambda t: -t[0]) for key, heap in entries.items()}


def _iou(d, g):
    # d, g: (y1, x1, y2, x2)
    h = max(0.0, min(d[2], g[2]) - max(d[0], g[0]))
    w = max(0.0, min(d[3], g[3]) - max(d[1], g[1]))
    inter = h * w
    union = (d[2] - d[0]) * (d[3] - d[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
    return inter / union


def _average_precision(scores, tps, num_gt):
    if not scores:
        return 0.0
    order = np.argsort(np.array([float(s) for s in scores], dtype=object))[::-1]
    tp_count = fp_count = 0
    precision, recall = [], []
    for i in order:
        if tps[i]:
            tp_count += 1
        else:
            fp_count += 1
        precision.append(float(tp_count) / (tp_count + fp_count))
        recall.append(float(tp_count) / num_gt)
    recall = [0.0, *recall, 1.0]
    precision = [0.0, *precision, 0.0]
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    terms = [(recall[i] - recall[i - 1]) * precision[i] for i in range(1, len(recall)) if recall[i] != recall[i - 1]]
    return float(np.sum(np.array(terms, dtype=float)))


def reference_read(gt_csv, det_csv, label_map, *, capacity=50, all_keys=None):
    """The reading phase: {keyframe: listed boxes} for ground truth and (capped) detections; ``all_keys`` (a set)
    collects every keyframe the ground-truth file names."""
    return _read(gt_csv, set(label_map), 0, all_keys), _read(det_csv, set(label_map), capacity)


def reference_ava_map(
    gt_csv, det_csv, label_map, *, exclusions=(), capacity=50, iou_threshold=0.5, protocol="activitynet-2019"
):
    """Returns (mAP, {class_id: AP}) for CSV files, computed with plain loops."""
    all_keys = set()
    groundtruth, detections = reference_read(gt_csv, det_csv, label_map, capacity=capacity, all_keys=all_keys)
    if protocol == "activitynet-2020":
        assert not exclusions, "the 2020 evaluator has no exclusions"
        detections = {k: v for k, v in detections.items() if k in all_keys}
    return reference_evaluate(groundtruth, detections, label_map, exclusions=exclusions, iou_threshold=iou_threshold)


def reference_evaluate(groundtruth, detections, label_map, *, exclusions=(), iou_threshold=0.5):
    """The evaluation phase on what :func:`reference_read` returns: (mAP, {class_id: AP})."""
    excluded = set(exclusions)
    groundtruth = {k: v for k, v in groundtruth.items() if k not in excluded}
    detections = {k: v for k, v in detections.items() if k not in excluded}
    num_classes = max(label_map)
    num_gt = [0] * (num_classes + 1)
    for boxes in groundtruth.values():
        for item in boxes:
            num_gt[item[1]] += 1
    scores = {c: [] for c in range(1, num_classes + 1)}
    tps = {c: [] for c in range(1, num_classes + 1)}
    for key, listed in detections.items():  # keyframes in order of first appearance
        listed = [d for d in listed if d[2] < d[4] and d[3] < d[5]]
        gt_here = groundtruth.get(key, [])
        for c in range(1, num_classes + 1):
            dets = [d for d in listed if d[1] == c]
            gts = [g for g in gt_here if g[1] == c]
            taken = [False] * len(gts)
            for d in dets:
                is_tp = False
                if gts:
                    overlaps = [_iou(d[2:], g[2:]) for g in gts]
                    best = 0
                    for j in range(1, len(gts)):
                        if overlaps[j] > overlaps[best]:
                            best = j
                    if overlaps[best] >= iou_threshold and not taken[best]:
                        taken[best] = True
                        is_tp = True
                scores[c].append(d[0])
                tps[c].append(is_tp)
    per_class = np.full(num_classes, np.nan)
    for c in range(1, num_classes + 1):
        if num_gt[c]:
            per_class[c - 1] = _average_precision(scores[c], tps[c], num_gt[c])
    mean = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")
    return mean, {c: float(per_class[c - 1]) for c in label_map}
