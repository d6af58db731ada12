"""Charades multi-label mAP (paper Table 4): mean over classes of average precision, classes without positives dropped.

Average precision is scikit-learn's ``average_precision_score`` (no interpolation): with the videos ranked by
decreasing score and tied scores forming one threshold, ``AP = sum_k (R_k - R_{k-1}) * P_k`` over the thresholds.
Computed for all classes at once with numpy; scikit-learn is only the tests' reference.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from slowfast.config import require


def average_precision_per_class(scores: npt.ArrayLike, labels: npt.ArrayLike) -> np.ndarray:
    """AP of every column of ``scores`` (N, C) against binary ``labels`` (N, C); NaN for a class without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0
    require(scores.ndim == 2, "scores", f"must be (N, C), got shape {scores.shape}")
    require(labels.shape == scores.shape, "labels", f"must have the shape of scores {scores.shape}, got {labels.shape}")
    require(bool(np.isfinite(scores).all()), "scores", "must be finite")
    n, _ = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=0)
    cum_tp = np.cumsum(np.take_along_axis(labels, order, axis=0), axis=0, dtype=np.float64)
    # A threshold ends where the next (lower) score differs: tied scores are one step of the curve.
    threshold = np.ones_like(ranked, dtype=bool)
    threshold[:-1] = ranked[1:] != ranked[:-1]
    at_threshold = np.where(threshold, cum_tp, 0.0)
    previous = np.zeros_like(cum_tp)
    previous[1:] = np.maximum.accumulate(at_threshold, axis=0)[:-1]  # true positives at the previous threshold
    precision = cum_tp / np.arange(1, n + 1, dtype=np.float64)[:, None]
    positives = cum_tp[-1] if n else np.zeros(scores.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.sum(np.where(threshold, (cum_tp - previous) * precision, 0.0), axis=0) / positives
    return np.where(positives > 0, ap, np.nan)


def mean_average_precision(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, np.ndarray]:
    """Charades mAP: ``(mean over classes with at least one positive, per-class AP with NaN for the others)``."""
    per_class = average_precision_per_class(scores, labels)
    present = ~np.isnan(per_class)
    require(bool(present.any()), "labels", "no class has a positive sample")
    return float(per_class[present].mean()), per_class
