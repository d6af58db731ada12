"""Fine-tuning a pretrained model on a classification dataset, and its multi-view evaluation; ``slowfast finetune``.

The pieces the stages ``evaluate``, ``decode_custom``, ``finetune_custom`` and ``evaluate_custom`` are made of, so
that the command below runs exactly what ``dvc repro`` runs:

* :func:`decode_source`: a source's videos into frame shards; the source's failure records (missing files, unknown
  labels, ...) and the decoder's (undecodable, truncated, audio-only files) together;
* :func:`finetune_classifier`: the backbone of a pretrained checkpoint, a new softmax head for the dataset's classes
  (Sec. 6's transfer), trained with a :class:`~slowfast.engine.config.TrainConfig`;
* :func:`evaluate_classifier`: Sec. 5.1's testing (clips × crops, scores averaged): top-1 / top-5, per-class accuracy,
  the confusion matrix, written to a folder.

Short videos: a clip that needs more frames than a video has repeats its first / last frame
(:mod:`slowfast.data.sampling`), so a video of any length -- even a single frame -- is used.

    slowfast finetune --dataset folder:/data/my_videos --init models/pretrain/model.pt --out runs/mine --json
    slowfast predict clip.mp4 --checkpoint runs/mine/model.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slowfast.data.decode import ChunkMapper, DecodeConfig, DecodeReport, decode_videos
from slowfast.data.sampling import SamplingConfig
from slowfast.data.shards import FrameShards
from slowfast.data.sources import CustomDatasetConfig, CustomSource, usable_summary
from slowfast.data.transforms import TransformConfig
from slowfast.engine.config import EvalConfig, TrainConfig
from slowfast.models.config import SlowFastConfig

log = logging.getLogger(__name__)

FAILURES = "failures.json"


def decode_source(source: CustomSource, out_dir: str | os.PathLike[str], frames: DecodeConfig, *, workers: int = 1,
                  progress: bool = True, map_chunks: ChunkMapper | None = None
                  ) -> tuple[DecodeReport, list[dict[str, str]]]:
    """Decode the usable videos of ``source`` into shards under ``out_dir``; returns the decode report and every
    failure record (the source's first, then the decoder's)."""
    report = decode_videos(source.video_paths(), out_dir, frames, workers=workers, progress=progress,
                           map_chunks=map_chunks)
    return report, source.failures() + list(report.failures)


def usable_samples(source: CustomSource, shards: FrameShards) -> dict[str, list[tuple[str, int]]]:
    """``{split: (video_id, label)}`` of the videos present in ``shards``; a ValueError when no training video is
    left, naming the failures."""
    samples = {split: [r for r in source.samples(split) if r[0] in shards] for split in source.SPLITS}
    if not samples["train"]:
        failures = source.failures() + _decode_failures(shards.root)
        raise ValueError(f"{source.root}: no usable training video is left: {usable_summary(failures)}")
    return samples


def _decode_failures(shards_root: Path) -> list[dict[str, str]]:
    path = Path(shards_root) / FAILURES
    return json.loads(path.read_text()) if path.is_file() else []


def finetune_classifier(
    init: str | os.PathLike[str],
    config: SlowFastConfig,
    shards: FrameShards,
    samples: dict[str, list[tuple[str, int]]],
    *,
    sampling: SamplingConfig,
    train_config: TrainConfig,
    transform: TransformConfig,
    out_dir: str | os.PathLike[str],
    val_split: str | None = "val",
    fingerprint: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> Any:
    """Train ``config`` (its ``num_classes`` the dataset's) initialised from the backbone of ``init`` with a new head,
    on ``samples["train"]``, validating on one centre view of ``samples[val_split]`` per epoch. Resumes an
    interrupted run of the same ``fingerprint`` in ``out_dir``. Returns the :class:`~slowfast.engine.train.TrainResult`.
    """
    from slowfast.data.datasets import KineticsDataset
    from slowfast.engine.checkpointing import inputs_fingerprint, resume_allowed
    from slowfast.engine.train import seed_everything, train
    from slowfast.models import build_model, pack_pathways
    from slowfast.models.transfer import load_backbone

    seed_everything(train_config.seed)  # the new head's initial weights: the same on every run
    model = load_backbone(build_model(config), init)
    pack = functools.partial(pack_pathways, config=model.config)
    one_clip = dataclasses.replace(sampling, test_clips=1)
    train_set = KineticsDataset(shards, samples["train"], sampling=one_clip, transform=transform, pack=pack,
                                train=True, seed=train_config.seed)
    val_set = None
    if val_split and samples.get(val_split):
        val_set = KineticsDataset(shards, samples[val_split], sampling=one_clip,
                                  transform=dataclasses.replace(transform, test_crops=1), pack=pack, train=False)
    # Resume only an interrupted run of this very job; new params, data or code start over.
    stamp = inputs_fingerprint(params=fingerprint or {}, files=(Path(shards.root) / "manifest.json", Path(init)),
                               records=train_set.records)
    return train(model, train_set, train_config, out_dir=out_dir, resume=resume_allowed(out_dir, stamp),
                 val_set=val_set, on_epoch_end=on_epoch_end)


def evaluate_classifier(model: Any, dataset: Any, classes: Sequence[str], eval_config: EvalConfig,
                        out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Score every view of every video of ``dataset`` (Sec. 5.1) and write ``scores.parquet``, ``per_class.csv``,
    ``predictions.csv`` (actual / predicted rows, DVC's confusion plot) and ``confusion_matrix.png`` to ``out_dir``.
    Returns top-1, top-5 (k capped at the number of classes), mean class accuracy and the counts."""
    import pandas as pd

    from slowfast.engine.evaluate import evaluate, write_scores
    from slowfast.metrics.classification import confusion_matrix, per_class_accuracy
    from slowfast.tracking.figures import plot_confusion
    from slowfast.utils.io import atomic_path

    out = Path(out_dir)
    scores = evaluate(model, dataset, eval_config)
    summary = scores.summary()
    predictions = scores.scores.argmax(axis=1)
    matrix = confusion_matrix(scores.labels, predictions, len(classes))
    per_class = per_class_accuracy(scores.labels, predictions, len(classes))
    metrics = {"top1": summary["top1"], "top5": summary["top5"],
               "mean_class_accuracy": float(np.nanmean(per_class)) if len(per_class) else float("nan"),
               # the expected top-k of scores that carry no information
               "chance_top1": 1.0 / len(classes), "chance_top5": min(5, len(classes)) / len(classes),
               "videos": len(scores.video_ids),
               "views_per_video": dataset.sampling.test_clips * dataset.transform.test_crops}
    write_scores(scores, out / "scores.parquet")
    with atomic_path(out / "per_class.csv") as tmp:
        pd.DataFrame({"class": list(classes), "accuracy": per_class, "videos": matrix.sum(axis=1)}).to_csv(
            tmp, index=False)
    with atomic_path(out / "predictions.csv") as tmp:
        pd.DataFrame({"video_id": scores.video_ids, "actual": [classes[i] for i in scores.labels],
                      "predicted": [classes[i] for i in predictions]}).to_csv(tmp, index=False)
    plot_confusion(matrix, list(classes), out / "confusion_matrix.png")
    log.info("top-1 %.4f, top-5 %.4f over %d videos", metrics["top1"], metrics["top5"], metrics["videos"])
    return metrics


def multiview_dataset(shards: FrameShards, records: Sequence[tuple[str, int]], *, sampling: SamplingConfig,
                 transform: TransformConfig, config: SlowFastConfig) -> Any:
    """The multi-view testing dataset of ``records`` (every clip × crop of each video together)."""
    from slowfast.data.datasets import KineticsDataset
    from slowfast.models import pack_pathways

    return KineticsDataset(shards, list(records), sampling=sampling, transform=transform,
                           pack=functools.partial(pack_pathways, config=config), train=False)


def write_model_files(out_dir: str | os.PathLike[str], classes: Sequence[str], *, sampling: SamplingConfig,
                      transform: TransformConfig, decode: DecodeConfig) -> None:
    """``classes.json`` and ``preprocessing.json`` beside ``out_dir/model.pt``, so that ``slowfast predict`` reads the
    model as it was trained and evaluated."""
    from slowfast.config import to_mapping
    from slowfast.tracking.models import Preprocessing
    from slowfast.utils.io import write_json_atomic

    write_json_atomic(Path(out_dir) / "classes.json", list(classes))
    write_json_atomic(Path(out_dir) / "preprocessing.json",
                      to_mapping(Preprocessing(sampling=sampling, transform=transform, decode=decode)))


# ------------------------------------------------------------------------------------------------------- CLI
LAYOUTS = ("folder", "mmaction", "pyslowfast")


def dataset_config(spec: str, *, val_list: str | None = None, classes: str | None = None,
                   video_prefix: str = "", val_fraction: float = 0.2, seed: int = 0) -> CustomDatasetConfig:
    """``folder:ROOT``, ``mmaction:LIST`` or ``pyslowfast:CSV`` as a :class:`CustomDatasetConfig`. A list's folder is
    the dataset root (its paths and the other files are relative to it); a PySlowFast ``train.csv`` with a
    ``val.csv`` beside it uses that as the validation list, as PySlowFast's own layout."""
    layout, sep, where = spec.partition(":")
    if not sep or layout not in LAYOUTS or not where:
        raise ValueError(f"--dataset: got {spec!r}, allowed: folder:ROOT, mmaction:LIST or pyslowfast:CSV")
    path = Path(where)
    if layout == "folder":
        if not path.is_dir():
            raise FileNotFoundError(f"--dataset: {path} is not a directory")
        return CustomDatasetConfig(layout="folder", root=str(path), val_list=val_list, val_fraction=val_fraction,
                                   seed=seed)
    if not path.is_file():
        raise FileNotFoundError(f"--dataset: list file {path} does not exist")
    if layout == "pyslowfast" and val_list is None and path.name == "train.csv" and path.with_name("val.csv").is_file():
        val_list = "val.csv"
    return CustomDatasetConfig(layout=layout, root=str(path.parent), train_list=path.name, val_list=val_list,
                               classes=classes, video_prefix=video_prefix, val_fraction=val_fraction, seed=seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="folder:ROOT (ROOT/<class>/<video>), mmaction:LIST "
                        "(<path> <label index> lines) or pyslowfast:CSV (<path> <label> lines)")
    parser.add_argument("--init", required=True, type=Path,
                        help="the pretrained checkpoint (models/pretrain/model.pt, or one of `slowfast convert`)")
    parser.add_argument("--out", required=True, type=Path, help="output folder: model.pt, failures.json, ...")
    parser.add_argument("--epochs", type=int, help="training epochs (default: custom.finetune.train of --params)")
    parser.add_argument("--params", type=Path, help="a params.yaml whose custom, decode sections give the recipe "
                        "(default: the built-in defaults, the paper's 224 crops)")
    parser.add_argument("--val-list", help="validation list / split file, relative to the dataset root")
    parser.add_argument("--classes", help="class-name file of a list dataset, relative to the dataset root")
    parser.add_argument("--video-prefix", default="", help="folder the list's paths are relative to (in the root)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="held-out share without a validation list")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results")


def run(args: argparse.Namespace) -> int:
    from slowfast.config import ConfigError
    from slowfast.models import load_model
    from slowfast.models.checkpoint import read_checkpoint
    from slowfast.params import PipelineParams, load_params
    from slowfast.tracking.models import infer_preprocessing
    from slowfast.utils.io import write_json_atomic

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs: got {args.epochs}, allowed: >= 1")
    if args.workers < 1:
        raise ValueError(f"--workers: got {args.workers}, allowed: >= 1")
    try:
        params = load_params(args.params) if args.params else PipelineParams()
        dataset = dataset_config(args.dataset, val_list=args.val_list, classes=args.classes,
                                 video_prefix=args.video_prefix, val_fraction=args.val_fraction)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if not args.init.is_file():
        raise FileNotFoundError(f"--init: checkpoint {args.init} does not exist")
    stored = read_checkpoint(args.init)
    base = load_model(args.init).config  # the architecture is the checkpoint's; only the head is new
    recipe = params.custom.finetune
    train_config = recipe.train if args.epochs is None else dataclasses.replace(
        recipe.train, epochs=args.epochs, iterations=None,
        lr_steps=tuple(s for s in recipe.train.lr_steps if s < args.epochs))
    sampling = dataclasses.replace(infer_preprocessing(base, stored["meta"]).sampling, fps=params.decode.frames.fps,
                                   test_clips=params.custom.evaluate.test_clips)
    out = Path(args.out)

    source = CustomSource(dataset)
    _, failures = decode_source(source, out / "shards", params.decode.frames, workers=args.workers,
                                     progress=not args.json)
    write_json_atomic(out / FAILURES, failures)
    shards = FrameShards(out / "shards")
    samples = usable_samples(source, shards)
    classes = source.classes
    config = dataclasses.replace(base, num_classes=len(classes), multilabel=False)
    result = finetune_classifier(args.init, config, shards, samples, sampling=sampling, train_config=train_config,
                                 transform=recipe.transform, out_dir=out, val_split=recipe.val_split,
                                 fingerprint={"dataset": dataclasses.asdict(dataset), "train": repr(train_config)})
    write_model_files(out, classes, sampling=sampling, transform=params.custom.evaluate.transform,
                      decode=params.decode.frames)
    e = params.custom.evaluate
    evaluation = {"top1": float("nan"), "top5": float("nan"), "videos": 0}
    if samples[e.split]:
        evaluation = evaluate_classifier(result.model, multiview_dataset(shards, samples[e.split], sampling=sampling,
                                                                    transform=e.transform, config=config),
                                         classes, e.eval, out / "evaluate")
    summary = {"top1": evaluation["top1"], "top5": evaluation["top5"], "classes": len(classes),
               "train_videos": len(samples["train"]), "val_videos": len(samples["val"]), "failures": len(failures),
               "epochs": result.history[-1]["epoch"] if result.history else 0, "model": str(out / "model.pt"),
               "failures_file": str(out / FAILURES)}
    write_json_atomic(out / "results.json", {**summary, **evaluation})
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{len(classes)} classes, {summary['train_videos']} training / {summary['val_videos']} validation "
              f"videos, {len(failures)} failures ({out / FAILURES})")
        print(f"top-1 {summary['top1']:.4f}, top-5 {summary['top5']:.4f}; model {out / 'model.pt'}")
    return 0
