"""What a training stage leaves behind: the per-epoch curve (CSV, a DVC plot), its figure, and the final metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from slowfast.tracking.figures import plot_training_curves
from slowfast.utils.io import atomic_path, write_json_atomic

TIMING = ("clips_per_s",)  # per-epoch keys that measure the machine, not the training


def write_training_report(
    history: list[dict[str, float]],
    *,
    steps: int,
    out_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    curve_path: str | os.PathLike[str] | None = None,
    run: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``curve_path`` (default ``out_dir/curve.csv``), ``out_dir/training_curves.png`` and ``metrics_path``
    (the last epoch's metrics, ``epochs``, ``steps`` and ``extra``); log the curve and the figure to ``run``.

    The curve and the metrics leave out the timing (``clips_per_s``, kept in MLflow and the run's
    ``metrics.jsonl``): they are DVC outputs, so the same training gives the same files and ``dvc.lock`` entry."""
    history = [{k: v for k, v in record.items() if k not in TIMING} for record in history]
    curve = Path(curve_path) if curve_path else Path(out_dir) / "curve.csv"
    with atomic_path(curve) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    figure = Path(out_dir) / "training_curves.png"
    plot_training_curves(history, figure)
    final = {k: v for k, v in history[-1].items() if k not in ("epoch", "step")}
    final.update(epochs=history[-1]["epoch"], steps=steps, **extra)  # epochs are counted from 1
    write_json_atomic(metrics_path, final)
    if run is not None:
        run.log_artifact(curve)
        run.log_artifact(figure)
    return final
