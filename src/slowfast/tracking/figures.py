"""Figures logged as artifacts: training curves and the confusion matrix (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from slowfast.utils.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history: Sequence[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Loss (left) and accuracies (right) per epoch, from the engine's ``metrics.jsonl`` records."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [r["loss"] for r in history], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="training loss")
    for key in ("train_top1", "val_top1", "val_map"):
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            ax_acc.plot(*zip(*points), marker=".", label=key)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class), counts written in the cells."""
    plt = _pyplot()
    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    if len(classes) <= 30:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
