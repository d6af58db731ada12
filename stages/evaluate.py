"""Stage `evaluate`: multi-view testing of the pretrained model (Sec. 5.1: ``test_clips`` clips × 3 crops, softmax
scores averaged), top-1 / top-5, per-class accuracy and the confusion matrix.

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

from slowfast.data.datasets import KineticsDataset
from slowfast.data.shards import FrameShards
from slowfast.data.sources import KineticsSource
from slowfast.engine.evaluate import evaluate, write_scores
from slowfast.metrics.classification import confusion_matrix, per_class_accuracy
from slowfast.models import load_model, pack_pathways
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.tracking.figures import plot_confusion
from slowfast.tracking.models import Preprocessing
from slowfast.utils.io import atomic_path, write_json_atomic
from slowfast.visualize.demo import run_demo

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
    shards = FrameShards(args.shards)
    dataset = KineticsDataset(shards, source.samples(e.split), sampling=sampling,
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
        # What the model sees in the split's first video, viewable in the MLflow UI (labels per second, Grad-CAM).
        run_demo(shards.info(scores.video_ids[0]).path, out / "demo.mp4", model, classes,
                 Preprocessing(sampling, e.transform, params.decode.frames), e.demo)
        for name in ("per_class.csv", "predictions.csv", "confusion_matrix.png", "demo.mp4"):
            run.log_artifact(out / name)
        log.info("top-1 %.4f, top-5 %.4f over %d videos", metrics["top1"], metrics["top5"], metrics["videos"])
    return 0


if __name__ == "__main__":
    run_stage(main)
