"""Stage `pretrain`: train the model of ``model.preset`` on Kinetics (or the Kinetics-like synthetic set) with the
paper's recipe (``pretrain.train``), validating on one centre view per video after each epoch.

Resumable: an interrupted run continues from its newest training state in ``--checkpoints`` (``runs/pretrain``, a
folder DVC does not manage, so it survives DVC removing ``--out`` before a re-run); ``--out`` holds the final
``model.pt`` (a cached DVC output, restorable from the run cache). Under ``torchrun`` every process trains its share
of each batch (DDP); only rank 0 tracks and writes outputs.

    python -m stages.pretrain --raw data/raw/kinetics --shards data/shards/kinetics --out models/pretrain \
        --checkpoints runs/pretrain --metrics reports/pretrain.json --curve reports/pretrain_curve.csv
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from pathlib import Path

import pandas as pd

from slowfast.data.datasets import KineticsDataset
from slowfast.data.shards import FrameShards
from slowfast.data.sources import KineticsSource
from slowfast.engine.checkpointing import inputs_fingerprint, resume_allowed
from slowfast.engine.train import seed_everything, train
from slowfast.models import build_model, pack_pathways
from slowfast.params import run_stage, section
from slowfast.stage import check_split, checkpoints_arg, missing_videos, output_lock, stage_args, tracked
from slowfast.tracking.models import log_model
from slowfast.tracking.reports import write_training_report
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.pretrain")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "out", "metrics", "curve"], argv, extra=checkpoints_arg)
    states = args.checkpoints or args.out
    p = params.pretrain

    source = KineticsSource(args.raw)
    check_split("pretrain.val_split", p.val_split, source.splits)
    shards = FrameShards(args.shards)
    seed_everything(p.train.seed)  # the initial weights: the same on every run
    model = build_model(params.model.config(num_classes=len(source.classes)))
    pack = functools.partial(pack_pathways, config=model.config)
    sampling = params.model.sampling(fps=params.decode.frames.fps, test_clips=1)
    train_set = KineticsDataset(shards, source.samples("train"), sampling=sampling, transform=p.transform,
                                pack=pack, train=True, seed=p.train.seed)
    val_set = None
    if p.val_split:
        val_set = KineticsDataset(shards, source.samples(p.val_split), sampling=sampling,
                                  transform=dataclasses.replace(p.transform, test_crops=1), pack=pack, train=False)
    if len(train_set) == 0:
        raise SystemExit(f"pretrain: no training clip of {args.raw} is in the shards {args.shards}")

    main_process = int(os.environ.get("RANK", "0")) == 0
    tracking = (tracked("pretrain", args, params, "model", "pretrain")
                if main_process else contextlib.nullcontext())
    lock = output_lock(states, "pretrain") if main_process else contextlib.nullcontext()
    missing = missing_videos("pretrain", train=train_set, val=val_set)
    with lock, tracking as run:
        if run is not None:
            import mlflow

            mlflow.log_params({"data.train_clips": len(train_set), "data.val_clips": len(val_set or []),
                               "data.classes": len(source.classes)})
            mlflow.log_input(mlflow.data.from_pandas(
                pd.DataFrame(train_set.records, columns=["video_id", "label"]),
                source=str(Path(args.raw).resolve()), name="kinetics-train"), context="training")
        # Resume only an interrupted run of this very job; new params, data or code start over.
        fingerprint = inputs_fingerprint(params=section(args.params, "model", "pretrain"),
                                         files=(Path(args.shards) / "manifest.json",),
                                         records=train_set.records)
        resume = resume_allowed(states, fingerprint) if main_process else True  # rank 0 decides and broadcasts
        result = train(model, train_set, p.train, out_dir=states, model_path=Path(args.out) / "model.pt",
                       resume=resume, val_set=val_set,
                       on_epoch_end=(lambda epoch, m: run.log_metrics(m, step=epoch)) if run else None)
        if run is None:
            return 0
        write_training_report(result.history, steps=result.step, out_dir=args.out, metrics_path=args.metrics,
                              curve_path=args.curve, run=run, **missing)
        write_json_atomic(Path(args.out) / "classes.json", source.classes)
        run.log_artifact(Path(args.out) / "classes.json")
        # The model, with a signature, registered as a new version of <registered_model> (loading never unpickles);
        # the evaluate stage gives it @champion or @challenger once its top-1 is known.
        log_model(result.weights, classes=source.classes,
                  sampling=params.model.sampling(fps=params.decode.frames.fps, test_clips=params.evaluate.test_clips),
                  transform=params.evaluate.transform, decode=params.decode.frames,
                  registered_name=params.tracking.registered_model, preset=params.model.preset)
    return 0


if __name__ == "__main__":
    run_stage(main)
