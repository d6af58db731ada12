"""Stage `evaluate_custom`: the `evaluate` stage's multi-view testing (Sec. 5.1) of the fine-tuned model on the
user's own videos (``custom.evaluate``): top-1 / top-5, per-class accuracy, the confusion matrix.

With ``custom.enabled: false`` (the default) the stage only records that it is off.

    python -m stages.evaluate_custom --raw custom --shards data/shards/custom --model models/custom \
        --out reports/evaluate_custom --metrics reports/evaluate_custom.json
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from slowfast.data.shards import FrameShards
from slowfast.data.sources import CustomSource
from slowfast.engine.finetune import evaluate_classifier, multiview_dataset, usable_samples
from slowfast.models import load_model
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked, write_status
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.evaluate_custom")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "model", "out", "metrics"], argv)
    c = params.custom
    if not c.enabled:
        write_status(args.out, enabled=False, metrics=args.metrics)
        return 0
    e = c.evaluate
    try:
        source = CustomSource(dataclasses.replace(c.dataset, root=args.raw))
    except (FileNotFoundError, ValueError) as exc:  # a missing root or list file: one line, no traceback
        raise SystemExit(f"evaluate_custom: {exc}") from None
    model_dir = Path(args.model)
    classes = json.loads((model_dir / "classes.json").read_text(encoding="utf-8"))
    if classes != source.classes:
        raise SystemExit(f"evaluate_custom: the model was trained on classes {classes}, the data has "
                         f"{source.classes}")
    model = load_model(model_dir / "model.pt")
    shards = FrameShards(args.shards)
    try:
        records = usable_samples(source, shards)[e.split]
    except ValueError as exc:
        raise SystemExit(f"evaluate_custom: {exc}") from None
    if not records:
        raise SystemExit(f"evaluate_custom: the {e.split} split of {args.raw} has no usable video")
    sampling = params.model.sampling(fps=params.decode.frames.fps, test_clips=e.test_clips)
    dataset = multiview_dataset(shards, records, sampling=sampling, transform=e.transform, config=model.config)
    with tracked("evaluate_custom", args, params, "model", "custom") as run:
        metrics = {"enabled": True, **evaluate_classifier(model, dataset, classes, e.eval, args.out),
                   "classes": len(classes)}
        write_json_atomic(args.metrics, metrics)
        run.log_metrics({k: float(v) for k, v in metrics.items()})
        write_status(args.out, enabled=True)
        for name in ("per_class.csv", "predictions.csv", "confusion_matrix.png"):
            run.log_artifact(Path(args.out) / name)
    return 0


if __name__ == "__main__":
    run_stage(main)
