"""Stage `evaluate`: multi-view testing of the pretrained model (Sec. 5.1: ``test_clips`` clips × 3 crops, softmax
scores averaged), top-1 / top-5 with their chance levels, per-class accuracy and the confusion matrix.

The registered version of the evaluated model then gets ``@champion`` if its top-1 beats the champion's on the same
evaluation data, else ``@challenger`` (:func:`slowfast.tracking.models.assign_alias`).

    python -m stages.evaluate --raw data/raw/kinetics --shards data/shards/kinetics --model models/pretrain/model.pt \
        --out reports/evaluate --metrics reports/evaluate.json
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from slowfast.config import to_mapping
from slowfast.data.shards import FrameShards
from slowfast.data.sources import KineticsSource
from slowfast.engine.finetune import evaluate_classifier, multiview_dataset
from slowfast.models import load_model
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.tracking.compare import data_fingerprint
from slowfast.tracking.models import Preprocessing, assign_alias, file_sha256, find_version
from slowfast.utils.io import write_json_atomic
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
    samples = source.samples(e.split)
    dataset = multiview_dataset(shards, samples, sampling=sampling, transform=e.transform, config=model.config)
    out = Path(args.out)
    with tracked("evaluate", args, params, "model", "evaluate") as run:
        metrics = evaluate_classifier(model, dataset, classes, e.eval, args.out)
        write_json_atomic(args.metrics, metrics)
        run.log_metrics(metrics)
        # What the model sees in the split's first video, viewable in the MLflow UI (labels per second, Grad-CAM).
        first = next(video_id for video_id, _ in samples if video_id in shards)
        run_demo(shards.info(first).path, out / "demo.mp4", model, classes,
                 Preprocessing(sampling, e.transform, params.decode.frames), e.demo)
        for name in ("per_class.csv", "predictions.csv", "confusion_matrix.png", "demo.mp4"):
            run.log_artifact(out / name)
        log.info("top-1 %.4f, top-5 %.4f over %d videos", metrics["top1"], metrics["top5"], metrics["videos"])
        version = find_version(params.tracking.registered_model, args.model)
        if version is None:
            log.info("%s is no registered version of %s: no alias to decide", args.model,
                     params.tracking.registered_model)
        else:
            manifest = Path(args.shards) / "manifest.json"
            scored = pd.read_csv(out / "predictions.csv")  # the videos evaluated, in order, with their true class
            eval_data = data_fingerprint(
                pd.DataFrame({"video_id": scored["video_id"], "label": scored["actual"].map(classes.index)}),
                classes=classes,
                protocol=to_mapping(e), fps=params.decode.frames.fps,
                shards=file_sha256(manifest) if manifest.is_file() else None)
            assign_alias(params.tracking.registered_model, version.version, metric="top1", eval_data=eval_data,
                         metrics={k: metrics[k] for k in ("top1", "top5", "mean_class_accuracy")},
                         champion=params.tracking.alias)
    return 0


if __name__ == "__main__":
    run_stage(main)
