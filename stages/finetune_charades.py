"""Stage `finetune_charades`: fine-tune the Kinetics model on Charades (Sec. 6): the pretrained backbone, a new
multi-label head (per-class sigmoid, BCE), step-wise learning-rate decay; validated on one centre view per video.

    python -m stages.finetune_charades --raw data/raw/charades --shards data/shards/charades \
        --pretrained models/pretrain/model.pt --out models/charades --checkpoints runs/finetune_charades \
        --metrics reports/finetune_charades.json --curve reports/finetune_charades_curve.csv
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

from slowfast.data.datasets import CharadesDataset
from slowfast.data.shards import FrameShards
from slowfast.data.sources import CharadesSource
from slowfast.engine.checkpointing import inputs_fingerprint, resume_allowed
from slowfast.engine.train import seed_everything, train
from slowfast.models import build_model, pack_pathways
from slowfast.models.transfer import load_backbone
from slowfast.params import run_stage, section
from slowfast.stage import check_split, checkpoints_arg, missing_videos, output_lock, stage_args, tracked
from slowfast.tracking.reports import write_training_report
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.finetune_charades")


def _extra_args(parser) -> None:
    checkpoints_arg(parser)
    parser.add_argument("--curve", help="the per-epoch curve CSV (a DVC plot; default: --out/curve.csv)")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "pretrained", "out", "metrics"], argv, extra=_extra_args)
    states = args.checkpoints or args.out  # resumable states, apart from the cached model in --out
    p = params.charades.finetune

    source = CharadesSource(args.raw)
    check_split("charades.finetune.val_split", p.val_split, source.SPLITS)
    classes = source.classes
    config = dataclasses.replace(params.model.config(num_classes=len(classes)), multilabel=True)
    seed_everything(p.train.seed)  # the new head's initial weights: the same on every run
    model = load_backbone(build_model(config), args.pretrained)
    pack = functools.partial(pack_pathways, config=model.config)
    shards = FrameShards(args.shards)
    sampling = params.model.sampling(fps=params.decode.frames.fps, test_clips=1)
    train_set = CharadesDataset(shards, source.videos("train"), num_classes=len(classes), sampling=sampling,
                                transform=p.transform, pack=pack, train=True, seed=p.train.seed)
    val_set = None
    if p.val_split:
        val_set = CharadesDataset(shards, source.videos(p.val_split), num_classes=len(classes), sampling=sampling,
                                  transform=dataclasses.replace(p.transform, test_crops=1), pack=pack, train=False)
    missing = missing_videos("finetune_charades", train=train_set, val=val_set)
    with output_lock(states, "finetune_charades"), tracked("finetune_charades", args, params, "model",
                                                             "charades") as run:
        # Resume only an interrupted run of this very job; new params, data or code start over.
        fingerprint = inputs_fingerprint(params=section(args.params, "model", "charades"),
                                         files=(Path(args.shards) / "manifest.json", Path(args.pretrained),),
                                         records=[v.id for v in train_set.videos])
        result = train(model, train_set, p.train, out_dir=states, model_path=Path(args.out) / "model.pt",
                       resume=resume_allowed(states, fingerprint), val_set=val_set,
                       on_epoch_end=lambda epoch, m: run.log_metrics(m, step=epoch))
        write_training_report(result.history, steps=result.step, out_dir=args.out, metrics_path=args.metrics,
                              curve_path=args.curve, run=run, **missing)
        write_json_atomic(Path(args.out) / "classes.json", classes)
        run.log_artifact(result.weights)
    return 0


if __name__ == "__main__":
    run_stage(main)
