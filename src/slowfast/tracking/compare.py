"""Figure 3 of the paper across pipeline executions: per-class AVA AP of Slow-only vs SlowFast on the same data.

The two models come from two executions of the pipeline (the second one e.g. ``dvc exp run -S
model.preset=slow_tiny``), so they meet in MLflow: each ``evaluate_ava`` run records its architecture
(:data:`TAG_ARCH`) and a fingerprint of what it was evaluated on (:data:`TAG_EVAL_DATA`: label map, ground truth,
excluded keyframes, proposals) as tags, and its result as metrics (:func:`result_metrics`: ``map``, per-class
``ap/<class id>``). A run then finds the
newest finished run of the other architecture with the same fingerprint (:func:`find_counterpart`) and draws the
pair (:func:`write_figure3_if_paired`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from slowfast.metrics.ava import AvaResult, write_figure3
from slowfast.tracking.runs import DEFAULT_EXPERIMENT, TAG_STAGE

log = logging.getLogger(__name__)

TAG_ARCH = "slowfast.arch"
TAG_EVAL_DATA = "slowfast.eval_data"
#: the architecture each one is compared with in Figure 3 (a Fast-only model has no counterpart)
COUNTERPART = {"slow": "slowfast", "slowfast": "slow"}


def data_fingerprint(*frames: pd.DataFrame, **values: Any) -> str:
    """A digest of the contents of ``frames`` (values and column names, not their index) and of the JSON-able
    ``values``: equal for the same evaluation data read from any path."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    for frame in frames:
        digest.update(json.dumps([str(c) for c in frame.columns]).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def result_metrics(result: AvaResult) -> dict[str, float]:
    """``result`` as MLflow metrics, which :func:`find_counterpart` reads back: ``map``, ``evaluated_detections``
    and ``ap/<class id>`` (NaN for a class without ground truth)."""
    return {"map": result.map, "evaluated_detections": float(result.num_detections),
            **{f"ap/{i}": ap for i, ap in result.per_class_ap.items()}}


def find_counterpart(
    result: AvaResult, *, arch: str, eval_data: str, stage: str = "evaluate_ava",
    experiment: str = DEFAULT_EXPERIMENT,
) -> tuple[str, AvaResult] | None:
    """The newest FINISHED run of ``stage`` in ``experiment`` whose architecture is ``arch``'s counterpart and whose
    evaluation data is ``eval_data``, as (run id, its result); None when there is none (or ``arch`` has no
    counterpart). ``result`` (this run's) supplies the ground-truth counts, which the same data makes equal."""
    import mlflow

    other = COUNTERPART.get(arch)
    exp = mlflow.get_experiment_by_name(experiment)
    if other is None or exp is None:
        return None
    found = mlflow.MlflowClient().search_runs(
        [exp.experiment_id],
        filter_string=(f"tags.`{TAG_STAGE}` = '{stage}' and tags.`{TAG_ARCH}` = '{other}' "
                       f"and tags.`{TAG_EVAL_DATA}` = '{eval_data}' and attributes.status = 'FINISHED'"),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        return None
    metrics: Mapping[str, float] = found[0].data.metrics
    missing = sorted({"map", "evaluated_detections", *(f"ap/{i}" for i in result.per_class_ap)} - set(metrics))
    if missing:
        log.warning("run %s lacks the metrics %s: not a counterpart", found[0].info.run_id, missing)
        return None
    other_result = AvaResult(map=metrics["map"], per_class_ap={i: metrics[f"ap/{i}"] for i in result.per_class_ap},
                             num_groundtruth=dict(result.num_groundtruth),
                             num_detections=int(metrics["evaluated_detections"]))
    return found[0].info.run_id, other_result


def write_figure3_if_paired(
    result: AvaResult, *, arch: str, eval_data: str, label_map: Mapping[int, str], out_dir: str | os.PathLike[str],
    experiment: str = DEFAULT_EXPERIMENT, run: Any = None,
) -> tuple[Path, Path] | None:
    """Figure 3 of this run's ``result`` and its counterpart's (:func:`find_counterpart`): ``out_dir/figure3.png``
    and its data ``out_dir/figure3.csv`` (:func:`slowfast.metrics.ava.write_figure3`), logged to ``run`` when given;
    returns their paths. Without a counterpart: None, and an earlier pair's files in ``out_dir`` are removed (they
    would no longer describe this model)."""
    figure = (Path(out_dir) / "figure3.png", Path(out_dir) / "figure3.csv")
    pair = find_counterpart(result, arch=arch, eval_data=eval_data, experiment=experiment)
    if pair is None:
        for path in figure:
            path.unlink(missing_ok=True)
        log.info("Figure 3: MLflow (experiment %r) has no finished run of architecture %r on the same evaluation "
                 "data; only this model's chart is written", experiment, COUNTERPART.get(arch))
        return None
    other_id, other = pair
    slow, slowfast = (result, other) if arch == "slow" else (other, result)
    write_figure3(slow, slowfast, label_map, *figure)
    if run is not None:
        for path in figure:
            run.log_artifact(path)
    log.info("Figure 3: Slow-only %.4f vs SlowFast %.4f mAP (the %s model from run %s) in %s",
             slow.map, slowfast.map, COUNTERPART[arch], other_id, figure[0])
    return figure
