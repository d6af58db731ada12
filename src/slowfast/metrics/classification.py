"""Clip/video classification metrics: top-k accuracy, per-class accuracy, confusion matrix.

The paper reports Kinetics top-1 and top-5 of video-level scores (softmax averaged over 30 views, Sec. 5.1); the
functions here take those per-video scores. Labels are either class indices ``(N,)`` (single-label, Kinetics) or
multi-hot ``(N, K)`` (multi-label, Charades: a top-k "hit" is any positive class among the k best scores).
Inputs may be numpy arrays or torch tensors. Ties in scores are broken towards the lower class index.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = _numpy(scores), _numpy(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, num_classes), got shape {scores.shape}")
    if labels.shape not in ((scores.shape[0],), scores.shape):
        raise ValueError(f"labels must be (N,) or (N, num_classes) for scores {scores.shape}, got {labels.shape}")
    return scores, labels


def top_k_predictions(scores: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first, shape ``(N, k)`` (ties: lower class index first)."""
    scores = _numpy(scores)
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def top_k_hits(scores: Any, labels: Any, k: int = 1) -> np.ndarray:
    """Boolean ``(N,)``: is a true class among the ``k`` highest-scoring classes of each row."""
    scores, labels = _check(scores, labels)
    top = top_k_predictions(scores, k)
    if labels.ndim == 1:
        return (top == labels[:, None].astype(np.int64)).any(axis=1)
    return np.take_along_axis(labels > 0, top, axis=1).any(axis=1)


def top_k_accuracy(scores: Any, labels: Any, k: int = 1) -> float:
    """Fraction of rows whose true class (any positive class, for multi-hot labels) is in the top ``k``."""
    hits = top_k_hits(scores, labels, k)
    if hits.size == 0:
        raise ValueError("top_k_accuracy of zero samples is undefined")
    return float(hits.mean())


def confusion_matrix(labels: Any, predictions: Any, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts; row = true class, column = predicted class."""
    labels, predictions = _numpy(labels).astype(np.int64), _numpy(predictions).astype(np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels and predictions must be equal-length 1-D, got {labels.shape}, {predictions.shape}")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got values in [{v.min()}, {v.max()}]")
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(labels: Any, predictions: Any, num_classes: int) -> np.ndarray:
    """Recall of each class (diagonal / row sum of the confusion matrix); NaN for classes without samples."""
    cm = confusion_matrix(labels, predictions, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def classification_summary(scores: Any, labels: Any) -> dict[str, float]:
    """top-1 and top-5 accuracy, plus mean per-class accuracy for single-label data (classes with samples)."""
    scores, labels = _check(scores, labels)
    summary = {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, 5)}
    if labels.ndim == 1:
        acc = per_class_accuracy(labels, top_k_predictions(scores, 1)[:, 0], scores.shape[1])
        summary["mean_class_accuracy"] = float(np.nanmean(acc))
    return summary
