"""Stage `finetune_ava`: train the AVA action detector (Sec. 5) from the Kinetics model: the pretrained backbone
with res5 at stride 1 / dilation 2, a new RoI head (per-class sigmoid, BCE) trained on the ground-truth boxes,
weight decay 1e-7, warm-up then step decay.

    python -m stages.finetune_ava --raw data/raw/ava --shards data/shards/ava --pretrained models/pretrain/model.pt \
        --out models/ava --checkpoints runs/finetune_ava --metrics reports/finetune_ava.json \
        --curve reports/finetune_ava_curve.csv
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from slowfast.data.datasets import AvaDataset
from slowfast.data.shards import FrameShards
from slowfast.data.sources import AvaSource
from slowfast.engine.checkpointing import inputs_fingerprint, resume_allowed
from slowfast.engine.train import seed_everything, train
from slowfast.models import pack_pathways
from slowfast.models.detector import detector_from_pretrained
from slowfast.params import run_stage, section
from slowfast.stage import checkpoints_arg, missing_videos, output_lock, stage_args, tracked
from slowfast.tracking.reports import write_training_report

log = logging.getLogger("stages.finetune_ava")


def _extra_args(parser) -> None:
    checkpoints_arg(parser)
    parser.add_argument("--curve", help="the per-epoch curve CSV (a DVC plot; default: --out/curve.csv)")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "pretrained", "out", "metrics"], argv, extra=_extra_args)
    states = args.checkpoints or args.out  # resumable states, apart from the cached model in --out
    p = params.ava.finetune

    source = AvaSource(args.raw, video_start_sec=params.ava.video_start_sec, files=params.ava.files)
    class_ids = sorted(source.label_map)
    seed_everything(p.train.seed)  # the new head's initial weights: the same on every run
    detector = detector_from_pretrained(args.pretrained, len(class_ids),
                                        config=params.model.config(num_classes=len(class_ids)))
    train_set = AvaDataset(FrameShards(args.shards), source.boxes("train"), class_ids=class_ids,
                           sampling=params.model.sampling(fps=params.decode.frames.fps), transform=p.transform,
                           pack=functools.partial(pack_pathways, config=detector.config), train=True,
                           seed=p.train.seed, video_start_sec=params.ava.video_start_sec)
    missing = missing_videos("finetune_ava", train=train_set)
    with output_lock(states, "finetune_ava"), tracked("finetune_ava", args, params, "model", "ava") as run:
        # Resume only an interrupted run of this very job; new params, data or code start over.
        fingerprint = inputs_fingerprint(params=section(args.params, "model", "ava"),
                                         files=(Path(args.shards) / "manifest.json", Path(args.pretrained),),
                                         records=[k[:2] for k in train_set.keyframes])
        result = train(detector, train_set, p.train, out_dir=states, model_path=Path(args.out) / "model.pt",
                       resume=resume_allowed(states, fingerprint),
                       on_epoch_end=lambda epoch, m: run.log_metrics(m, step=epoch))
        write_training_report(result.history, steps=result.step, out_dir=args.out, metrics_path=args.metrics,
                              curve_path=args.curve, run=run, keyframes=len(train_set), **missing)
        run.log_artifact(result.weights)
    return 0


if __name__ == "__main__":
    run_stage(main)
