"""Stage `evaluate`: multi-view testing of the pretrained model (Sec. 5.1: ``test_clips`` clips × 3 crops, softmax
scores averaged), top-1 / top-5 with their chance levels, per-class accuracy and the confusion matrix.

The registered version of the evaluated model then gets ``@champion`` if its top-1 beats the champion's on the same
evaluation data, else ``@challenger`` (:func:`slowfast.tracking.models.assign_alias`).

    python -m stages.evaluate --raw data/raw/kinetics --shards data/shards/kinetics --model models/pretrain/model.pt \
        --out reports/evaluate --metrics reports/evaluate.json
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from slowfast.config import to_mapping
from slowfast.data.datasets import KineticsDataset
from slowfast.data.shards import FrameShards
from slowfast.data.sources import KineticsSource
from slowfast.engine.evaluate import evaluate, write_scores
from slowfast.metrics.classification import confusion_matrix, per_class_accuracy
from slowfast.models import load_model, pack_pathways
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.tracking.compare import data_fingerprint
from slowfast.tracking.figures import plot_confusion
from slowfast.tracking.models import assign_alias, file_sha256, find_version
from slowfast.utils.io import atomic_path, write_json_atomic

log = logging.getLogger("stages.evaluate")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "model", "out", "metrics"], argv)
    e = params.evaluate

    source = KineticsSource(args.raw)
    classes = json.loads((Path(args.model).parent / "classes.json").read_text())
    if classes != source.classes:
        raise SystemExit(f"evaluate: the model was trained on classes {classes}, the data has {source.classes}")
    model = load_model(args.model)
    sampling = params.model.sampling(fps=params.decode.frames.fps, test_clips=e.test_clips)
    dataset = KineticsDataset(FrameShards(args.shards), source.samples(e.split), sampling=sampling,
                              transform=e.transform, pack=functools.partial(pack_pathways, config=model.config),
                              train=False)
    out = Path(args.out)
    with tracked("evaluate", args, params, "model", "evaluate") as run:
        scores = evaluate(model, dataset, e.eval)
        summary = scores.summary()
        predictions = scores.scores.argmax(axis=1)
        matrix = confusion_matrix(scores.labels, predictions, len(classes))
        per_class = per_class_accuracy(scores.labels, predictions, len(classes))
        metrics = {"top1": summary["top1"], "top5": summary["top5"], "mean_class_accuracy": float(np.nanmean(per_class)),
                   # the expected top-k of scores that carry no information
                   "chance_top1": 1.0 / len(classes), "chance_top5": min(5, len(classes)) / len(classes),
                   "videos": len(scores.video_ids), "views_per_video": sampling.test_clips * e.transform.test_crops}
        write_scores(scores, out / "scores.parquet")
        with atomic_path(out / "per_class.csv") as tmp:
            pd.DataFrame({"class": classes, "accuracy": per_class, "videos": matrix.sum(axis=1)}).to_csv(tmp, index=False)
        with atomic_path(out / "predictions.csv") as tmp:  # DVC's confusion-matrix plot reads actual/predicted rows
            pd.DataFrame({"video_id": scores.video_ids, "actual": [classes[i] for i in scores.labels],
                          "predicted": [classes[i] for i in predictions]}).to_csv(tmp, index=False)
        plot_confusion(matrix, classes, out / "confusion_matrix.png")
        write_json_atomic(args.metrics, metrics)
        run.log_metrics(metrics)
        for name in ("per_class.csv", "predictions.csv", "confusion_matrix.png"):
            run.log_artifact(out / name)
        log.info("top-1 %.4f, top-5 %.4f over %d videos", metrics["top1"], metrics["top5"], metrics["videos"])
        version = find_version(params.tracking.registered_model, args.model)
        if version is None:
            log.info("%s is no registered version of %s: no alias to decide", args.model,
                     params.tracking.registered_model)
        else:
            manifest = Path(args.shards) / "manifest.json"
            eval_data = data_fingerprint(
                pd.DataFrame({"video_id": scores.video_ids, "label": scores.labels}), classes=classes,
                protocol=to_mapping(e), fps=params.decode.frames.fps,
                shards=file_sha256(manifest) if manifest.is_file() else None)
            assign_alias(params.tracking.registered_model, version.version, metric="top1", eval_data=eval_data,
                         metrics={k: metrics[k] for k in ("top1", "top5", "mean_class_accuracy")},
                         champion=params.tracking.alias)
    return 0


if __name__ == "__main__":
    run_stage(main)
