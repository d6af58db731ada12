"""``slowfast predict VIDEO``: the top classes of one video, with the multi-view protocol of the evaluate stage.

    slowfast predict clip.mp4 --checkpoint models/pretrain/model.pt
    slowfast predict clip.mp4 --model models:/slowfast-kinetics@champion --json

The video goes through exactly what the evaluate stage does (Sec. 5.1: ``clips`` clips uniformly spaced in time ×
``crops`` crops of the short side, softmax scores averaged): it is decoded with
:func:`slowfast.data.decode.decode_videos` into a temporary frame-shard folder (deleted afterwards) and scored by
:func:`slowfast.engine.evaluate.evaluate` over a one-video :class:`~slowfast.data.datasets.KineticsDataset`. Going
through the shards rather than a second in-memory decoder is deliberate: the frames are byte-identical to the ones
the model was trained and evaluated on (same resampling rule, same JPEG round trip), memory stays bounded for long
videos, and decode failures come with the decoder's reasons; no line of the protocol exists twice.

Sampling (T, α, τ, fps) and the test size come from the model: the ``preprocessing`` stored with an MLflow model, a
``preprocessing.json`` beside a checkpoint, or the checkpoint's preset (:func:`slowfast.tracking.models.resolve_model`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from slowfast.data.datasets import KineticsDataset
from slowfast.data.decode import decode_videos
from slowfast.data.shards import FrameShards
from slowfast.engine.config import EvalConfig
from slowfast.engine.evaluate import evaluate
from slowfast.models import SlowFast, pack_pathways
from slowfast.tracking.models import Preprocessing, describe_model, resolve_model
from slowfast.tracking.runs import TrackingUnavailableError, tracking_uri

log = logging.getLogger(__name__)


def predict_video(
    video: str | os.PathLike[str],
    model: SlowFast,
    preprocessing: Preprocessing,
    *,
    clips: int = 10,
    crops: int = 3,
    fps: float | None = None,
    short_side: int | None = None,
    views_per_batch: int = 10,
) -> np.ndarray:
    """Scores ``(num_classes,)`` of ``video``: softmax averaged over ``clips × crops`` views (sigmoid max-pooled over
    views for a multi-label model, as Charades). ``fps`` / ``short_side`` override the decoding of
    ``preprocessing``. A missing file is a FileNotFoundError, an undecodable one a ValueError with the reason."""
    pre = preprocessing
    sampling = dataclasses.replace(pre.sampling, test_clips=clips)
    transform = dataclasses.replace(pre.transform, test_crops=crops)
    decode = dataclasses.replace(pre.decode, fps=fps or pre.decode.fps, short_side=short_side or pre.decode.short_side)
    multilabel = model.config.multilabel
    config = EvalConfig(aggregate="max" if multilabel else "mean", activation="none" if multilabel else "softmax",
                        views_per_batch=views_per_batch)
    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"video {video} does not exist")
    with tempfile.TemporaryDirectory(prefix="slowfast-predict-") as tmp:
        report = decode_videos({"video": video}, tmp, decode, progress=False)
        if report.failures:
            raise ValueError(f"video {video} cannot be decoded: {report.failures[0]['reason']}")
        dataset = KineticsDataset(FrameShards(tmp), [("video", 0)], sampling=sampling, transform=transform,
                                  pack=functools.partial(pack_pathways, config=model.config), train=False)
        return evaluate(model, dataset, config).scores[0]


def top_classes(scores: np.ndarray, classes: list[str], k: int) -> list[dict[str, float | str]]:
    """The ``k`` best classes, best first (ties: lower index first)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"class": classes[i], "score": float(scores[i])} for i in order]


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a video file (any format FFmpeg reads)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a slowfast/1 checkpoint (class names: stored in it by "
                        "`slowfast convert --classes`, else classes.json beside it)")
    source.add_argument("--model", help="an MLflow model URI: models:/NAME@ALIAS, models:/NAME/VERSION, "
                        "runs:/RUN_ID/model")
    parser.add_argument("--tracking-uri",
                        help="MLflow store of --model (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--top", type=int, default=5, help="classes to show")
    parser.add_argument("--clips", type=int, default=10, help="clips uniformly spaced in time (paper: 10)")
    parser.add_argument("--crops", type=int, default=3, help="crops of the short side per clip: 1 or 3 (paper: 3)")
    parser.add_argument("--fps", type=float, help="decoding frame rate (default: the model's, 30)")
    parser.add_argument("--short-side", type=int, help="decoded short side in pixels (default: the model's test size)")


def _check_args(args: argparse.Namespace) -> None:
    """Flag values checked before any work, the message naming the flag and what is allowed."""
    checks = [
        ("--top", args.top, args.top >= 1, ">= 1"),
        ("--clips", args.clips, args.clips >= 1, ">= 1"),
        ("--crops", args.crops, args.crops in (1, 3), "1 or 3"),
        ("--fps", args.fps, args.fps is None or 0 < args.fps <= 1000, "0 < fps <= 1000"),
        ("--short-side", args.short_side, args.short_side is None or 8 <= args.short_side <= 4096, "8..4096"),
    ]
    for flag, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{flag}: got {value}, allowed: {allowed}")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    if not args.video.is_file():
        raise FileNotFoundError(f"video {args.video} does not exist")
    described = None
    if args.model:
        uri = args.tracking_uri or tracking_uri(".")
        try:
            resolved = resolve_model(args.model, tracking_uri=uri)
        except TrackingUnavailableError as exc:
            raise ValueError(str(exc)) from None
        described = describe_model(str(args.model), tracking_uri=uri)
    else:
        resolved = resolve_model(args.checkpoint)
    model, classes, pre = resolved
    scores = predict_video(args.video, model, pre, clips=args.clips, crops=args.crops, fps=args.fps,
                           short_side=args.short_side)
    top = top_classes(scores, classes, args.top)
    views = args.clips * args.crops
    if args.json:
        print(json.dumps({"video": str(args.video), "model": str(args.model or args.checkpoint),
                          **({"model_version": described} if described else {}), "views": views, "top": top}))
        return 0
    print(f"{args.video}: {views} views ({args.clips} clips x {args.crops} crops), {args.model or args.checkpoint}"
          + (f" = {described}" if described else ""))
    width = max(len("class"), *(len(str(t["class"])) for t in top))
    print(f"{'rank':>4}  {'class':<{width}}  score")
    for rank, item in enumerate(top, 1):
        print(f"{rank:>4}  {item['class']:<{width}}  {item['score']:.4f}")
    return 0
