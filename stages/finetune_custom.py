"""Stage `finetune_custom`: fine-tune on a user's own videos (``custom`` in params.yaml): the backbone of
``custom.init`` (the pretrain stage's model or a converted model-zoo checkpoint), a new softmax head for the
dataset's classes, the recipe of ``custom.finetune``; validated on one centre view per video. The model is
registered in MLflow as ``custom.registered_model`` with the alias ``tracking.alias``.

With ``custom.enabled: false`` (the default) the stage only records that it is off.

    python -m stages.finetune_custom --raw custom --shards data/shards/custom \
        --pretrained models/pretrain/model.pt --out models/custom --metrics reports/finetune_custom.json
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from slowfast.data.shards import FrameShards
from slowfast.data.sources import CustomSource
from slowfast.engine.finetune import finetune_classifier, usable_samples, write_model_files
from slowfast.params import run_stage, section
from slowfast.stage import stage_args, tracked, write_status
from slowfast.tracking.models import log_model
from slowfast.tracking.reports import write_training_report

log = logging.getLogger("stages.finetune_custom")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "pretrained", "out", "metrics"], argv)
    c = params.custom
    if not c.enabled:
        write_status(args.out, enabled=False, metrics=args.metrics)
        return 0
    try:
        source = CustomSource(dataclasses.replace(c.dataset, root=args.raw))
    except (FileNotFoundError, ValueError) as exc:  # a missing root or list file: one line, no traceback
        raise SystemExit(f"finetune_custom: {exc}") from None
    shards = FrameShards(args.shards)
    try:
        samples = usable_samples(source, shards)
    except ValueError as exc:
        raise SystemExit(f"finetune_custom: {exc}") from None
    classes = source.classes
    config = dataclasses.replace(params.model.config(num_classes=len(classes)), multilabel=False)
    sampling = params.model.sampling(fps=params.decode.frames.fps, test_clips=c.evaluate.test_clips)
    with tracked("finetune_custom", args, params, "model", "custom") as run:
        import mlflow

        mlflow.log_params({"data.train_videos": len(samples["train"]), "data.val_videos": len(samples["val"]),
                           "data.classes": len(classes)})
        result = finetune_classifier(args.pretrained, config, shards, samples, sampling=sampling,
                                     train_config=c.finetune.train, transform=c.finetune.transform,
                                     out_dir=args.out, val_split=c.finetune.val_split,
                                     fingerprint=section(args.params, "model", "custom"),
                                     on_epoch_end=lambda epoch, m: run.log_metrics(m, step=epoch))
        write_training_report(result.history, steps=result.step, out_dir=args.out, metrics_path=args.metrics,
                              run=run, enabled=True, classes=len(classes), train_videos=len(samples["train"]),
                              val_videos=len(samples["val"]))
        write_model_files(args.out, classes, sampling=sampling, transform=c.evaluate.transform,
                          decode=params.decode.frames)
        write_status(args.out, enabled=True)
        run.log_artifact(Path(args.out) / "classes.json")
        log_model(result.weights, classes=classes, sampling=sampling, transform=c.evaluate.transform,
                  decode=params.decode.frames, registered_name=c.registered_model, alias=params.tracking.alias)
    return 0


if __name__ == "__main__":
    run_stage(main)
