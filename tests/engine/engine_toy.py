"""A tiny two-pathway model and in-memory datasets that follow the data contract, for the engine tests.

Also a command line (``python engine_toy.py OUT ...``) that trains them, so tests can run training in a
subprocess (to SIGKILL / SIGTERM it) or under torchrun.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from slowfast.config import from_mapping
from slowfast.engine import EvalConfig, TrainConfig, TrainingInterrupted, evaluate, train, write_scores
from slowfast.engine.distributed import init_distributed
from slowfast.utils.io import atomic_path

ALPHA, SLOW_T, SIZE, CHANNELS = 2, 2, 4, 3


class TinyNet(nn.Module):
    """Per pathway: 1×1×1 conv (+ optional BN), ReLU, global average pool; concat, dropout, fc (the paper's head)."""

    def __init__(self, num_classes: int = 3, *, bn: bool = True, dropout: float = 0.5):
        super().__init__()
        norm = nn.BatchNorm3d if bn else lambda _: nn.Identity()
        self.pathways = nn.ModuleList(
            nn.Sequential(nn.Conv3d(CHANNELS, 6, 1, bias=not bn), norm(6), nn.ReLU()) for _ in range(2)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        feats = [p(xi).mean(dim=(2, 3, 4)) for p, xi in zip(self.pathways, x)]
        return self.fc(self.dropout(torch.cat(feats, dim=1)))


class ToyClips(Dataset):
    """Training items: class c has a brightness offset c on channel c % 3, plus noise drawn from (seed, epoch, index).

    ``delay`` seconds per item make a run slow enough to be interrupted; ``nan_from`` poisons every item from that
    index on; ``multilabel`` returns multi-hot labels (class c and c+1).
    """

    def __init__(self, n: int = 16, num_classes: int = 3, *, seed: int = 0, delay: float = 0.0,
                 nan_from: int | None = None, multilabel: bool = False, hold: Path | None = None,
                 checkpoints: Path | None = None):
        self.n, self.num_classes, self.seed, self.delay = n, num_classes, seed, delay
        self.nan_from, self.multilabel = nan_from, multilabel
        self.hold, self.checkpoints = hold, checkpoints
        self.epoch = 0

    def _hold(self) -> None:
        """Once a checkpoint exists: say so in ``hold/holding`` (with this pid) and wait for ``hold/release``, so a
        test can signal a run that is certainly mid-training, after a checkpoint, without timing windows."""
        from slowfast.engine.checkpointing import list_states

        if (self.hold / "release").exists() or not list_states(self.checkpoints):
            return
        (self.hold / "holding").write_text(str(os.getpid()))
        while not (self.hold / "release").exists():
            time.sleep(0.01)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if self.hold is not None:
            self._hold()
        if self.delay:
            time.sleep(self.delay)
        g = torch.Generator().manual_seed(self.seed * 1_000_000 + self.epoch * 1_000 + index)
        label = index % self.num_classes
        fast = torch.randn(CHANNELS, ALPHA * SLOW_T, SIZE, SIZE, generator=g)
        fast[label % CHANNELS] += 1.0 + label
        if self.nan_from is not None and index >= self.nan_from:
            fast[0, 0, 0, 0] = float("nan")
        target = torch.tensor(label)
        if self.multilabel:
            target = torch.zeros(self.num_classes)
            target[[label, (label + 1) % self.num_classes]] = 1.0
        return {"inputs": [fast[:, ::ALPHA].clone(), fast], "label": target, "video_id": f"v{index:03d}",
                "index": index}


class ToyViews(Dataset):
    """Testing items: all ``views`` views of one video together, each input (V, C, T, H, W)."""

    def __init__(self, n: int = 6, views: int = 3, num_classes: int = 3):
        self.n, self.views, self.num_classes = n, views, num_classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(10_000 + index)
        label = index % self.num_classes
        fast = torch.randn(self.views, CHANNELS, ALPHA * SLOW_T, SIZE, SIZE, generator=g)
        fast[:, label % CHANNELS] += 1.0 + label
        return {"inputs": [fast[:, :, ::ALPHA].clone(), fast], "label": torch.tensor(label),
                "video_id": f"video{index}", "index": index}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", default="{}", help="TrainConfig fields as a Python dict literal")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hold", type=Path, help="folder: wait there after the first checkpoint (ToyClips._hold)")
    parser.add_argument("--follow-dvc", action="store_true", help="stop with the dvc above (as stages do)")
    parser.add_argument("--bn", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--val", type=int, default=0, help="validate on ToyViews(VAL); write its final scores")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    if args.follow_dvc:
        from slowfast.utils.lifeline import follow_dvc

        follow_dvc(poll_seconds=0.1)
    config = from_mapping(TrainConfig, ast.literal_eval(args.config))
    torch.manual_seed(0)
    model = TinyNet(bn=bool(args.bn), dropout=args.dropout)
    try:
        val_set = ToyViews(args.val) if args.val else None
        clips = ToyClips(args.n, delay=args.delay, hold=args.hold, checkpoints=args.out / "checkpoints")
        train(model, clips, config, out_dir=args.out, val_set=val_set)
    except TrainingInterrupted as exc:
        logging.getLogger("engine_toy").warning("%s", exc)
        return exc.exit_code
    ctx = init_distributed(config.device)
    if val_set is not None:
        scores = evaluate(model, val_set, EvalConfig(views_per_batch=2), ctx=ctx)
        if ctx.is_main:
            write_scores(scores, args.out / "val_scores.parquet")
    rank = ctx.rank
    with atomic_path(args.out / f"final_rank{rank}.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
