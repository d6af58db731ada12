"""AVA frame-level mAP@0.5, with the exact semantics of the official ActivityNet evaluator, vectorised.

The paper reports AVA results as "frame-level mean AP at IoU 0.5" over the 60 evaluation classes (Sec. 5, Figure 3),
computed by ``get_ava_performance.py`` of the ActivityNet evaluation kit (a trimmed TF object-detection Pascal VOC
evaluator). :func:`evaluate_ava` reproduces its result bit for bit, including the details that decide ties:

* an image is a keyframe ``(video_id, timestamp)``; rows whose class is not in the label map are dropped first,
  excluded keyframes are dropped from ground truth and detections;
* detections are capped per keyframe (over all classes) with a bounded min-heap of
  ``(score, action_id, y1, x1, y2, x2)`` tuples: a row replaces the heap's smallest tuple only if its score is
  strictly larger. The kept rows are then ordered by decreasing score, ties in the heap's array order. Ground truth
  goes through the same (uncapped) heap, where the 8th CSV column, the person id, plays the score;
* detections with zero area are discarded (after the cap); each detection, in that order, takes the ground-truth box
  of its class with the highest IoU (first one on ties, IoU without the +1), and is a true positive if the IoU is
  >= 0.5 and that box was not taken by an earlier detection; there are no difficult or group-of boxes;
* per class, the scores are concatenated keyframe by keyframe (keyframes in order of first appearance in the
  detections) and ranked by ``np.argsort(scores)[::-1]`` -- numpy's default, unstable sort, whose order of equal
  scores the evaluator took from numpy <= 1.23's introsort (it cannot run on later numpy); newer numpy orders ties
  differently on SIMD CPUs, so the ranking here is :func:`slowfast.metrics.sorting.legacy_argsort`, the same on any
  machine; AP is the Pascal VOC all-point interpolated area; classes without ground truth give NaN and the
  mAP is the ``nanmean`` over the label map.

Everything is vectorised over keyframes and classes; only keyframes where ties make the heap's order observable
(tied scores at the cap, or equal scores of one class in one keyframe) are replayed through :mod:`heapq`.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import logging
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from slowfast.config import ConfigError, require

if TYPE_CHECKING:  # numpy and pandas are imported where they are used, so `slowfast eval-ava --help` starts fast
    import numpy as np
    import pandas as pd
else:
    from slowfast.utils.lazy import lazy_module

    np = lazy_module("numpy")
    pd = lazy_module("pandas")

from slowfast.metrics.sorting import legacy_argsort
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AvaResult:
    """Frame mAP and per-class AP (NaN for a class without ground truth), in label-map order."""

    map: float
    per_class_ap: dict[int, float]
    num_groundtruth: dict[int, int]
    num_detections: int


#: The official evaluators: ActivityNet's ``get_ava_performance.py`` of 2019 (exclusions file; the one the paper,
#: PySlowFast and MMAction2 use) and of 2020 (no exclusions; ground truth lists keyframes without actions, detections
#: on keyframes absent from the ground truth are ignored).
PROTOCOLS = ("activitynet-2019", "activitynet-2020")
Protocol = Literal["activitynet-2019", "activitynet-2020"]


@dataclasses.dataclass(frozen=True)
class AvaEvalConfig:
    """The evaluator's knobs: the per-keyframe cap on detections (50 in the official evaluator; 0 = none, as
    PySlowFast's copy), the IoU a detection needs to match a ground-truth box (0.5: "frame mAP@0.5") and the
    official evaluator whose protocol is followed (:data:`PROTOCOLS`; the paper's numbers use 2019's)."""

    max_per_keyframe: int = 50
    iou: float = 0.5
    protocol: Protocol = "activitynet-2019"

    def __post_init__(self) -> None:
        require(self.protocol in PROTOCOLS, "protocol", f"got {self.protocol!r}, allowed: {', '.join(PROTOCOLS)}")
        require(
            isinstance(self.max_per_keyframe, int) and self.max_per_keyframe >= 0,
            "max_per_keyframe",
            f"must be an integer >= 0 (0 = no cap), got {self.max_per_keyframe!r}",
        )
        require(0.0 < self.iou <= 1.0, "iou", f"must be in (0, 1], got {self.iou!r}")


@dataclasses.dataclass
class _Boxes:
    """Rows of one CSV after class and exclusion filtering, in file order."""

    image: np.ndarray  # keyframe index, numbered by first appearance (detections first)
    cls: np.ndarray  # index into the sorted class ids
    boxes: np.ndarray  # (N, 4) as (y1, x1, y2, x2), the evaluator's order
    score: np.ndarray  # detection score, or the ground truth's person id


def _by_image_then_score(image: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Row order by keyframe, then decreasing score (ties in any order: callers replay keyframes where it matters)."""
    n = len(image)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-score)] = np.arange(n)
    return np.argsort(image.astype(np.int64) * n + rank)


def _select(b: _Boxes, rows: np.ndarray) -> _Boxes:
    return _Boxes(b.image[rows], b.cls[rows], b.boxes[rows], b.score[rows])


def _heap_order(rows: np.ndarray, b: _Boxes, class_ids: np.ndarray, capacity: int) -> np.ndarray:
    """The evaluator's ``read_csv`` for one keyframe: the rows it keeps, in the order it lists them."""
    heap: list[tuple] = []
    where: dict[tuple, list[int]] = defaultdict(list)
    boxes = b.boxes[rows].tolist()
    for r, score, action, (y1, x1, y2, x2) in zip(
        rows.tolist(), b.score[rows].tolist(), class_ids[b.cls[rows]].tolist(), boxes
    ):
        item = (score, action, y1, x1, y2, x2)
        where[item].append(r)
        if capacity < 1 or len(heap) < capacity:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    # Identical tuples are interchangeable rows, so handing their row numbers out in any order is exact.
    return np.array([where[item].pop() for item in sorted(heap, key=lambda t: -t[0])], dtype=np.int64)


def _keyframe_order(b: _Boxes, class_ids: np.ndarray, capacity: int, num_images: int) -> np.ndarray:
    """Indices of the rows the evaluator keeps, sorted by keyframe and then by its per-keyframe order."""
    n = len(b.image)
    order = _by_image_then_score(b.image, b.score)
    counts = np.bincount(b.image, minlength=num_images)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - starts[b.image[order]]
    replay = np.zeros(num_images, dtype=bool)
    keep = np.ones(n, dtype=bool)
    if capacity > 0:
        keep = rank < capacity
        over = counts > capacity
        cut = np.full(num_images, -np.inf)
        cut[over] = b.score[order[starts[over] + capacity - 1]]
        at_least_cut = np.bincount(b.image, weights=b.score >= cut[b.image], minlength=num_images)
        replay = over & (at_least_cut > capacity)  # tied scores straddle the cap: which stay depends on the heap
    kept = order[keep]
    # Equal scores of one class in one keyframe are matched in the heap's order: replay those keyframes. Equal
    # scores of a keyframe are neighbours in `kept`; only those candidates are checked for a shared class.
    image, score = b.image[kept], b.score[kept]
    pair = np.flatnonzero((image[1:] == image[:-1]) & (score[1:] == score[:-1]))
    if len(pair):
        k = kept[np.union1d(pair, pair + 1)]
        k = k[np.lexsort((b.score[k], b.cls[k], b.image[k]))]
        tie = (b.image[k][1:] == b.image[k][:-1]) & (b.cls[k][1:] == b.cls[k][:-1])
        tie &= b.score[k][1:] == b.score[k][:-1]
        replay[b.image[k][1:][tie]] = True
    if not replay.any():
        return kept
    position = np.empty(n, dtype=np.int64)
    position[order] = rank
    chosen = np.zeros(n, dtype=bool)
    chosen[kept] = True
    _replay(b, class_ids, capacity, np.flatnonzero(replay), position, chosen)
    kept = np.flatnonzero(chosen)
    return kept[np.argsort(b.image[kept].astype(np.int64) * n + position[kept])]


def _replay(
    b: _Boxes, class_ids: np.ndarray, capacity: int, images: np.ndarray, position: np.ndarray, chosen: np.ndarray
) -> None:
    """Run the evaluator's heap on the rows of ``images``: mark the rows it keeps in ``chosen`` and write their
    listing order into ``position``."""
    rows_by_image = np.argsort(b.image, kind="stable")
    sorted_image = b.image[rows_by_image]
    for lo, hi in zip(np.searchsorted(sorted_image, images), np.searchsorted(sorted_image, images, side="right")):
        rows = rows_by_image[lo:hi]
        chosen[rows] = False
        listed = _heap_order(rows, b, class_ids, capacity)
        chosen[listed] = True
        position[listed] = np.arange(len(listed))


def _groundtruth_order(b: _Boxes, class_ids: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Ground-truth rows sorted by keyframe, class and listing order: file order, or for ``images`` the evaluator's
    (it decides which of several boxes with the same IoU a detection takes)."""
    position = np.arange(len(b.image))
    if len(images):
        _replay(b, class_ids, 0, images, position, np.ones(len(b.image), dtype=bool))
    return np.lexsort((position, b.cls, b.image))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (y1, x1, y2, x2) boxes, with the evaluator's arithmetic (no +1), so equal to the last bit."""
    heights = np.maximum(0.0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
    widths = np.maximum(0.0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
    intersection = heights * widths
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / (area_a + area_b - intersection)


def _true_positives(
    det: _Boxes, gt: _Boxes, num_classes: int, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of detections (already in evaluation order) to same-keyframe, same-class ground truth.

    Returns the true-positive flags and the keyframes where a detection has several best ground-truth boxes (there,
    the ground truth's listing order matters)."""
    gt_key = gt.image * num_classes + gt.cls  # gt is sorted by this key, then by listing order
    det_key = det.image * num_classes + det.cls
    per_key = np.bincount(gt_key, minlength=(int(det_key.max()) + 1) if len(det_key) else 0)
    counts = per_key[det_key]
    lo = (np.cumsum(per_key) - per_key)[det_key]
    pair_det = np.repeat(np.arange(len(det_key)), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    pair_gt = lo[pair_det] + np.arange(len(pair_det)) - offsets[pair_det]
    overlap = _iou(det.boxes[pair_det], gt.boxes[pair_gt])
    has_gt = np.flatnonzero(counts > 0)
    best = np.full(len(det_key), -np.inf)
    if len(has_gt):
        best[has_gt] = np.maximum.reduceat(overlap, offsets[has_gt])
    # First pair reaching the maximum = np.argmax's choice among the ground truth of the class.
    at_best = np.flatnonzero(overlap == best[pair_det])
    matched_det, first = np.unique(pair_det[at_best], return_index=True)
    matched_gt = pair_gt[at_best[first]]
    ok = best[matched_det] >= iou_threshold
    several = np.bincount(pair_det[at_best], minlength=len(det_key))[matched_det] > 1
    tied_images = np.unique(det.image[matched_det[ok & several]])
    matched_det, matched_gt = matched_det[ok], matched_gt[ok]
    # A ground-truth box counts once: for the earliest detection that takes it.
    _, first_taker = np.unique(matched_gt, return_index=True)
    tp = np.zeros(len(det_key), dtype=bool)
    tp[matched_det[first_taker]] = True
    return tp, tied_images


def _voc_average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """Pascal VOC all-point interpolated AP, computed with the evaluator's exact sequence of array operations."""
    if scores.size == 0:
        return 0.0
    ranked = tp[legacy_argsort(scores)[::-1]].astype(int)  # ties in numpy 1.23's order, as the evaluator ran
    cum_tp = np.cumsum(ranked)
    cum_fp = np.cumsum(1 - ranked)
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    recall = np.concatenate([[0], recall, [1]])
    precision = np.maximum.accumulate(np.concatenate([[0], precision, [0]])[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _keyframe_keys(
    frames: tuple[pd.DataFrame, ...],
    exclusions: Iterable[tuple[str, int]] | None,
    listed: Iterable[tuple[str, int]] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per frame, an int64 key per row naming its keyframe ``(video_id, timestamp)`` consistently across the frames,
    and a mask of the rows on excluded keyframes. With ``listed`` (the 2020 protocol), the detections (first frame)
    are also excluded on keyframes that neither the ground truth (second frame) nor ``listed`` names."""
    codes, names = zip(*(pd.factorize(f["video_id"]) for f in frames))
    videos = pd.Index(names[0]).append([pd.Index(n) for n in names[1:]]).unique()
    stamps = [f["timestamp"].to_numpy(dtype=np.int64) for f in frames]
    low = min((int(t.min()) for t in stamps if len(t)), default=0)
    span = max((int(t.max()) for t in stamps if len(t)), default=low) - low + 1
    keys = [
        videos.get_indexer(n)[c].astype(np.int64) * span + (t - low) if len(c) else t
        for c, n, t in zip(codes, names, stamps)
    ]
    where = {v: i for i, v in enumerate(videos)}
    # A timestamp outside the files' range names no row (and must not alias another video's key).
    excluded = np.array(
        [where[v] * span + t - low for v, t in exclusions or () if v in where and 0 <= t - low < span],
        dtype=np.int64,
    )
    masks = [np.isin(key, excluded) if len(excluded) else np.zeros(len(key), dtype=bool) for key in keys]
    if listed is not None:
        extra = np.array(
            [where[v] * span + t - low for v, t in listed if v in where and 0 <= t - low < span], dtype=np.int64
        )
        masks[0] |= ~np.isin(keys[0], np.concatenate([keys[1], extra]))
    return keys, masks


def evaluate_ava(
    groundtruth_df: pd.DataFrame,
    detections_df: pd.DataFrame,
    label_map: Mapping[int, str],
    *,
    exclusions: Iterable[tuple[str, int]] | None = None,
    max_per_keyframe: int = 50,
    iou: float = 0.5,
    protocol: Protocol = "activitynet-2019",
    keyframes: Iterable[tuple[str, int]] | None = None,
) -> AvaResult:
    """Frame-level AP per class of ``label_map`` and their mean, equal to the official ActivityNet evaluator of
    ``protocol`` (run under numpy <= 1.23, the only numpy it runs on) on any machine.

    ``groundtruth_df`` / ``detections_df`` are frames as :func:`slowfast.data.formats.ava.read_ava_csv` returns them,
    in file order (the order decides ties, as in the evaluator). ``max_per_keyframe`` is the evaluator's cap of 50
    detections per keyframe; 0 applies none (as PySlowFast's copy of the evaluator).

    ``"activitynet-2019"`` drops ``exclusions`` from both; a detection on any other keyframe counts.
    ``"activitynet-2020"`` has no exclusions: detections count only on keyframes of the ground truth -- its box rows
    (of any class) and ``keyframes``, the keyframes it lists without actions
    (:func:`slowfast.data.formats.ava.read_ava_groundtruth`).
    """
    require(len(label_map) > 0, "label_map", "needs at least one class")
    require(min(label_map) >= 1, "label_map", f"class ids must be >= 1 (1-indexed), got {min(label_map)}")
    config = AvaEvalConfig(max_per_keyframe=max_per_keyframe, iou=iou, protocol=protocol)
    if config.protocol == "activitynet-2020" and exclusions:
        raise ConfigError("exclusions", "the activitynet-2020 protocol has no excluded timestamps (use 2019's)")
    if config.protocol == "activitynet-2019" and keyframes:
        raise ConfigError("keyframes", "only the activitynet-2020 protocol lists keyframes without actions")
    class_ids = np.array(sorted(label_map), dtype=np.int64)
    num_classes = len(class_ids)
    frames = (detections_df, groundtruth_df)
    listed = (keyframes or ()) if config.protocol == "activitynet-2020" else None
    keys, excluded = _keyframe_keys(frames, exclusions, listed)
    # Classes outside the label map are dropped first, as by the evaluator.
    lookup = np.full(int(class_ids.max()) + 2, -1)
    lookup[class_ids] = np.arange(num_classes)
    cls = [lookup[np.clip(f["action_id"].to_numpy(dtype=np.int64), 0, len(lookup) - 1)] for f in frames]
    keep = [(c >= 0) & ~x for c, x in zip(cls, excluded)]
    # Keyframes numbered by first appearance, detections first (the order of the evaluator's per-class arrays).
    image, uniques = pd.factorize(np.concatenate([key[k] for key, k in zip(keys, keep)]))
    n_det = int(keep[0].sum())
    det_score = detections_df["score"].to_numpy(dtype=np.float64)
    require(bool(np.isfinite(det_score).all()), "detections_df.score", "must be finite numbers")
    # Ground truth goes through the evaluator's heap with the person id as its score (1.0 when the column is absent).
    person = groundtruth_df["person_id"].to_numpy(dtype=np.float64) if "person_id" in groundtruth_df else None
    gt_score = np.ones(len(groundtruth_df)) if person is None else np.where(person == -1, 1.0, person)
    det_all, gt_all = (
        _Boxes(
            image=im,
            cls=c[k],
            boxes=np.stack([f[name].to_numpy(dtype=np.float64)[k] for name in ("y1", "x1", "y2", "x2")], axis=1),
            score=sc[k],
        )
        for f, c, k, sc, im in zip(frames, cls, keep, (det_score, gt_score), (image[:n_det], image[n_det:]))
    )
    num_images = len(uniques)

    kept = _keyframe_order(det_all, class_ids, config.max_per_keyframe, num_images)
    boxes = det_all.boxes[kept]
    det = _select(det_all, kept[(boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])])  # zero area: dropped
    gt = _select(gt_all, _groundtruth_order(gt_all, class_ids, np.empty(0, dtype=np.int64)))
    tp, tied = _true_positives(det, gt, num_classes, config.iou)
    if len(tied):
        gt = _select(gt_all, _groundtruth_order(gt_all, class_ids, tied))
        tp, _ = _true_positives(det, gt, num_classes, config.iou)

    num_gt = np.bincount(gt.cls, minlength=num_classes)
    logger.debug("AVA eval: %d keyframes, %d detections, %d ground-truth boxes", num_images, len(det.image), len(gt.cls))
    # Stable, so each class keeps the keyframe order; 16-bit keys let numpy use its linear-time radix sort.
    by_class = np.argsort(det.cls.astype(np.int16 if num_classes < 2**15 else np.int64), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(det.cls, minlength=num_classes))])
    # The evaluator's AP array has one slot per id 1..max id; ids outside the label map stay NaN.
    ap_slots = np.full(int(class_ids.max()), np.nan)
    for c in np.flatnonzero(num_gt):
        rows = by_class[bounds[c] : bounds[c + 1]]
        ap_slots[class_ids[c] - 1] = _voc_average_precision(det.score[rows], tp[rows], int(num_gt[c]))
    mean_ap = float(np.nanmean(ap_slots)) if np.isfinite(ap_slots).any() else math.nan
    per_class = {int(i): float(ap_slots[i - 1]) for i in label_map}
    counts = dict(zip(class_ids.tolist(), num_gt.tolist()))
    return AvaResult(
        map=mean_ap,
        per_class_ap=per_class,
        num_groundtruth={int(i): int(counts[i]) for i in label_map},
        num_detections=len(det.image),
    )


def plot_per_class_ap(results: Mapping[str, AvaResult], label_map: Mapping[int, str], path: str | Path) -> None:
    """Per-class AP bars of one or more runs side by side, each run's mAP in the legend, classes sorted by their
    number of ground-truth examples; writes a PNG.

    With two runs or more it is Figure 3 of the paper ("Per-category AP on AVA: a Slow-only baseline vs. its SlowFast
    counterpart"): the first run is the baseline, the last the model compared; "the highlighted categories are the 5
    highest absolute increase (black) or 5 highest relative increase with Slow-only AP > 1.0 (orange)" (AP in %; a
    class in both sets is black).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    require(len(results) > 0, "results", "needs at least one run")
    first, last = next(iter(results.values())), list(results.values())[-1]
    classes = sorted(label_map, key=lambda i: (-first.num_groundtruth.get(i, 0), i))
    x = np.arange(len(classes))
    width = 0.8 / len(results)
    fig = Figure(figsize=(max(8.0, 0.25 * len(classes)), 5.5))
    ax = fig.subplots()
    for k, (run, result) in enumerate(results.items()):
        ap = [100.0 * result.per_class_ap.get(i, math.nan) for i in classes]
        ax.bar(x + (k - (len(results) - 1) / 2) * width, ap, width, label=f"{run} ({100.0 * result.map:.1f} mAP)")
    ax.set_xticks(x, [label_map[i] for i in classes], rotation=90, fontsize=7)
    labels = ax.get_xticklabels()
    if len(results) > 1:
        base = np.array([100.0 * first.per_class_ap.get(i, math.nan) for i in classes])
        gain = np.array([100.0 * last.per_class_ap.get(i, math.nan) for i in classes]) - base
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(base > 1.0, gain / base, np.nan)
        for values, colour in ((relative, "darkorange"), (gain, "black")):  # black last: it wins a tie
            for j in np.argsort(np.nan_to_num(values, nan=-np.inf), kind="stable")[::-1][:5]:
                if np.isfinite(values[j]):
                    labels[j].set(fontweight="bold", color=colour)
    ax.set_xlim(-0.6, len(classes) - 0.4)
    ax.set_ylabel("AP@0.5 (%)")
    ax.set_title("AVA per-category AP (classes sorted by number of examples)")
    ax.legend()
    fig.tight_layout()
    from slowfast.utils.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def write_figure3(
    slow: AvaResult, slowfast: AvaResult, label_map: Mapping[int, str], png: str | Path, csv: str | Path
) -> pd.DataFrame:
    """Figure 3 of the paper: per-class AP of a Slow-only model and its SlowFast counterpart on the same data
    (:func:`plot_per_class_ap`) as ``png``, and its data as ``csv`` (class_id, class, groundtruth, ap_slow,
    ap_slowfast, in the figure's order: by number of examples); returns the table."""
    classes = sorted(label_map, key=lambda i: (-slow.num_groundtruth.get(i, 0), i))
    table = pd.DataFrame({
        "class_id": classes,
        "class": [label_map[i] for i in classes],
        "groundtruth": [slow.num_groundtruth.get(i, 0) for i in classes],
        "ap_slow": [slow.per_class_ap.get(i, math.nan) for i in classes],
        "ap_slowfast": [slowfast.per_class_ap.get(i, math.nan) for i in classes],
    })
    from slowfast.utils.io import atomic_path

    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    plot_per_class_ap({"Slow-only": slow, "SlowFast": slowfast}, label_map, png)
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--groundtruth", required=True, type=Path, help="ground-truth CSV (ava_val_v2.x.csv)")
    parser.add_argument("--detections", required=True, type=Path, help="detections CSV (8th column = score)")
    parser.add_argument("--labelmap", required=True, type=Path, help="label map .pbtxt of the evaluated classes")
    parser.add_argument("--exclusions", type=Path, help="excluded timestamps CSV (video_id,timestamp; 2019 only)")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="activitynet-2019",
        help="official evaluator to equal: 2019 (exclusions file; the paper's) or 2020 (ground-truth rows "
        "'video_id,timestamp' list keyframes without actions; detections elsewhere are ignored)",
    )
    parser.add_argument(
        "--max-per-keyframe", type=int, default=50, help="detections kept per keyframe by score (0 = no cap)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from slowfast.data.formats.ava import read_ava_csv, read_ava_groundtruth, read_exclusions, read_label_map

    # Fails before any file is read.
    config = AvaEvalConfig(max_per_keyframe=args.max_per_keyframe, protocol=args.protocol)
    if args.exclusions and config.protocol == "activitynet-2020":
        raise ConfigError("--exclusions", "the activitynet-2020 protocol has no excluded timestamps")
    label_map = read_label_map(args.labelmap)
    groundtruth, keyframes = read_ava_groundtruth(args.groundtruth, protocol=config.protocol)
    result = evaluate_ava(
        groundtruth,
        read_ava_csv(args.detections, detections=True),
        label_map,
        exclusions=read_exclusions(args.exclusions) if args.exclusions else None,
        max_per_keyframe=config.max_per_keyframe,
        iou=config.iou,
        protocol=config.protocol,
        keyframes=keyframes,
    )

    def finite(v: float) -> float | None:
        return None if math.isnan(v) else v

    if args.json:
        payload = {
            "mAP": finite(result.map),
            "per_class_ap": {
                str(i): {"name": label_map[i], "ap": finite(ap), "num_groundtruth": result.num_groundtruth[i]}
                for i, ap in result.per_class_ap.items()
            },
            "num_detections": result.num_detections,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    lines = [f"{'id':>4}  {'AP@0.5':>7}  {'#gt':>6}  class"]
    for i, ap in result.per_class_ap.items():
        shown = "    n/a" if math.isnan(ap) else f"{100.0 * ap:7.2f}"
        lines.append(f"{i:>4}  {shown}  {result.num_groundtruth[i]:>6}  {label_map[i]}")
    lines.append(f"mAP@0.5: {100.0 * result.map:.2f}  ({result.num_detections} detections evaluated)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
