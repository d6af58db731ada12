"""Multi-view testing: every view of a video through the model, one aggregated score vector per video.

Sec. 5.1: "we uniformly sample 10 clips from a video along its temporal axis. For each clip, we scale the shorter
spatial side to 256 pixels and take 3 crops of 256×256 ... We average the softmax scores for prediction." For
Charades (Sec. 6) the sigmoid scores of the clips are max-pooled instead.

A testing item carries all views of one video (each input (V, C, T, H, W)); a training-style item (C, T, H, W) is a
single view; uint8 clips are normalised on the device by the dataset's ``normalize`` (:func:`model_inputs`). Views
are forwarded ``views_per_batch`` at a time, views of consecutive videos sharing a batch, so the cost does not
depend on how views are split among videos. Under torchrun each process scores every world_size-th video and the
results are gathered on all processes, in dataset order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from slowfast.engine.config import EvalConfig
from slowfast.engine.distributed import DistContext, all_gather
from slowfast.metrics.charades import mean_average_precision
from slowfast.metrics.classification import classification_summary
from slowfast.utils.io import atomic_path


@dataclasses.dataclass
class VideoScores:
    """Aggregated scores of ``len(video_ids)`` videos; ``labels`` is (N,) int64, (N, K) multi-hot, or None."""

    video_ids: list[str]
    scores: np.ndarray  # (N, K) float32
    labels: np.ndarray | None

    def summary(self) -> dict[str, float]:
        """top-1 / top-5, plus mean per-class accuracy (single-label) or Charades mAP (multi-label); needs labels."""
        if self.labels is None:
            raise ValueError("these scores carry no labels (an unlabelled split): nothing to compare against")
        summary = classification_summary(self.scores, self.labels)
        if self.labels.ndim == 2:
            summary["map"] = mean_average_precision(self.scores, self.labels)[0]
        return summary


class _Aggregator:
    """Per-video running mean or max of activated view scores."""

    def __init__(self, config: EvalConfig):
        self.config = config
        self.reduced: list[torch.Tensor | None] = []
        self.counts: list[int] = []

    def add_video(self) -> int:
        self.reduced.append(None)
        self.counts.append(0)
        return len(self.reduced) - 1

    def add_views(self, slot: int, logits: torch.Tensor) -> None:
        scores = logits.float()
        if self.config.activation == "softmax":
            scores = scores.softmax(dim=1)
        elif self.config.activation == "sigmoid":
            scores = scores.sigmoid()
        part = scores.sum(0) if self.config.aggregate == "mean" else scores.amax(0)
        prev = self.reduced[slot]
        if prev is not None:
            part = prev + part if self.config.aggregate == "mean" else torch.maximum(prev, part)
        self.reduced[slot] = part
        self.counts[slot] += scores.shape[0]

    def result(self) -> np.ndarray:
        rows = [r / c if self.config.aggregate == "mean" else r for r, c in zip(self.reduced, self.counts)]
        return torch.stack(rows).cpu().numpy() if rows else np.zeros((0, 0), np.float32)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def model_inputs(dataset: Dataset, inputs: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """A batch's pathways moved to ``device`` and, when the dataset has ``normalize`` (the clip datasets, whose clips
    are uint8), normalised there: the float conversion runs on the device, not in the loader."""
    moved = [x.to(device, non_blocking=True) for x in inputs]
    normalize = getattr(dataset, "normalize", None)
    return moved if normalize is None else [normalize(x) for x in moved]


def evaluate(
    model: nn.Module, dataset: Dataset, config: EvalConfig | None = None, *, ctx: DistContext | None = None
) -> VideoScores:
    """Score every video of ``dataset`` (all its views) with ``model`` in eval mode; the model's mode is restored.

    Under torchrun pass ``ctx=slowfast.engine.distributed.init_distributed(...)`` (model on ``ctx.device``): every
    process then returns all videos' scores; write them with :func:`write_scores` on ``ctx.is_main`` only.
    """
    config = config or EvalConfig()
    ctx = ctx or DistContext(device=_model_device(model))
    indices = list(range(ctx.rank, len(dataset), ctx.world_size))  # type: ignore[arg-type]
    loader = DataLoader(
        dataset,
        batch_size=None,
        sampler=indices,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(0),  # never draw from (and so never disturb) the global RNG
    )
    agg = _Aggregator(config)
    ids: list[str] = []
    labels: list[np.ndarray] = []
    pending: list[tuple[int, list[torch.Tensor]]] = []  # (video slot, view slices) of the batch being filled

    def flush() -> None:
        inputs = [torch.cat([views[p] for _, views in pending]) for p in range(len(pending[0][1]))]
        logits = model(model_inputs(dataset, inputs, ctx.device))
        start = 0
        for slot, views in pending:
            n = views[0].shape[0]
            agg.add_views(slot, logits[start : start + n])
            start += n
        pending.clear()

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            filled = 0
            for item in loader:
                slot = agg.add_video()
                ids.append(str(item["video_id"]))
                if "label" in item:
                    labels.append(np.asarray(item["label"]))
                views = [x if x.dim() == 5 else x.unsqueeze(0) for x in item["inputs"]]
                total, start = views[0].shape[0], 0
                while start < total:
                    take = min(total - start, config.views_per_batch - filled)
                    pending.append((slot, [v[start : start + take] for v in views]))
                    start, filled = start + take, filled + take
                    if filled == config.views_per_batch:
                        flush()
                        filled = 0
            if pending:
                flush()
    finally:
        model.train(was_training)

    parts = all_gather((indices, ids, agg.result(), labels), ctx)
    order = np.argsort(np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts]), kind="stable")
    all_ids = [vid for p in parts for vid in p[1]]
    nonempty = [p[2] for p in parts if len(p[1])]
    scores = np.concatenate(nonempty)[order].astype(np.float32) if nonempty else np.zeros((0, 0), np.float32)
    all_labels = [lab for p in parts for lab in p[3]]
    has_labels = bool(all_ids) and len(all_labels) == len(all_ids)
    return VideoScores(
        video_ids=[all_ids[i] for i in order],
        scores=scores,
        labels=np.stack(all_labels)[order] if has_labels else None,
    )


def write_scores(result: VideoScores, path: str | os.PathLike[str]) -> None:
    """Per-video scores as Parquet (atomically): ``video_id``, ``scores`` (list of K floats), and ``label``
    (class index) or ``labels`` (list of K multi-hot floats) when known."""
    table: dict[str, Any] = {"video_id": result.video_ids, "scores": list(result.scores.astype(np.float32))}
    if result.labels is not None:
        if result.labels.ndim == 1:
            table["label"] = result.labels.astype(np.int64)
        else:
            table["labels"] = list(result.labels.astype(np.float32))
    with atomic_path(path) as tmp:
        pd.DataFrame(table).to_parquet(tmp, index=False)


def read_scores(path: str | os.PathLike[str]) -> VideoScores:
    """The inverse of :func:`write_scores`."""
    df = pd.read_parquet(path)
    labels = None
    if "label" in df:
        labels = df["label"].to_numpy(np.int64)
    elif "labels" in df:
        labels = np.stack(df["labels"].to_list()).astype(np.float32)
    scores = np.stack(df["scores"].to_list()).astype(np.float32) if len(df) else np.zeros((0, 0), np.float32)
    return VideoScores(video_ids=df["video_id"].astype(str).tolist(), scores=scores, labels=labels)
