"""Training and evaluation settings: one frozen dataclass per concern, built with ``slowfast.config.from_mapping``.

Defaults are the paper's Kinetics recipe (Sec. 5 "Training" and Appendix A.2): synchronized SGD with momentum 0.9,
weight decay 1e-4, half-period cosine learning rate ``η·0.5·[cos(n/n_max·π)+1]`` after a linear warm-up. The
fine-tuning stages (Charades, AVA) use step-wise decay (``schedule="steps"``, ×0.1 at ``lr_steps``). Dropout
belongs to the model. BN statistics are computed per device batch (plain BatchNorm3d under DDP, no SyncBN), as in
the paper ("BN statistics per 8 clips").

``optimizer="adamw"`` (decoupled weight decay, ``weight_decay`` as its decay coefficient, ``momentum`` unused) is not
the paper's: the embedded synthetic default trains a tiny model from scratch with batch 8 on a CPU, where momentum SGD
was unstable in our measurements (README, "Embedded default").

Run length is given either in ``epochs`` or in ``iterations`` (optimizer steps); ``warmup``, ``lr_steps`` and
``checkpoint_every`` are counted in the same unit. Within an epoch the schedule advances per iteration (fractional
epochs), as in PySlowFast.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from slowfast.config import require


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int = 8  # clips per device ("8 clips per device", Sec. 5); effective = batch_size·accumulate·world
    base_lr: float = 0.1  # η; the paper's 1.6 is for a global batch of 1024 (linear scaling rule)
    optimizer: Literal["sgd", "adamw"] = "sgd"  # the paper's momentum SGD; AdamW for small from-scratch runs
    momentum: float = 0.9
    nesterov: bool = False  # the paper says momentum SGD; (ref) PySlowFast's configs switch Nesterov on
    weight_decay: float = 1e-4
    bn_weight_decay: float = 0.0  # (ref) PySlowFast's BN.WEIGHT_DECAY: no decay on BN scale/shift
    schedule: Literal["cosine", "steps"] = "cosine"
    end_lr: float = 0.0  # cosine end value; the paper's formula reaches 0
    lr_steps: tuple[float, ...] = ()  # "steps": decay points, in the run's unit
    lr_factor: float = 0.1  # "steps": multiplier applied at each step
    warmup: float = 0.0  # linear warm-up length, in the run's unit
    warmup_start_lr: float = 0.01  # (ref) PySlowFast SOLVER.WARMUP_START_LR
    loss: Literal["cross_entropy", "bce"] = "cross_entropy"  # single-label / multi-label (BCE with logits)
    accumulate: int = 1  # micro-batches per optimizer step
    seed: int = 0
    deterministic: bool = True  # torch.use_deterministic_algorithms; needed for bit-identical resume
    checkpoint_every: int | None = None  # in the run's unit; None: at the end of every epoch. Always at the end
    keep_checkpoints: int = 2  # newest training-state files kept (an older one is the fallback if one is damaged)
    val_every: int = 1  # epochs between validations (when a validation set is given)
    num_workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16"] = "none"  # bf16 autocast, GPU only
    channels_last: bool = False  # channels_last_3d memory format (a GPU speed option)

    def __post_init__(self) -> None:
        require(
            (self.epochs is None) != (self.iterations is None),
            "epochs",
            f"exactly one of epochs or iterations must be set, got epochs={self.epochs}, iterations={self.iterations}",
        )
        for key in ("epochs", "iterations"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, f"must be >= 1, got {value}")
        for key in ("batch_size", "accumulate", "checkpoint_every", "keep_checkpoints", "val_every"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, f"must be >= 1, got {value}")
        require(self.base_lr > 0, "base_lr", f"must be > 0, got {self.base_lr}")
        require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(not self.nesterov or (self.momentum > 0 and self.optimizer == "sgd"), "nesterov",
                'needs optimizer "sgd" with momentum > 0')
        for key in ("weight_decay", "bn_weight_decay", "end_lr", "warmup", "warmup_start_lr", "num_workers"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(0 < self.lr_factor <= 1, "lr_factor", f"must be in (0, 1], got {self.lr_factor}")
        require(self.warmup < self.length, "warmup", f"must be shorter than the run ({self.length}), got {self.warmup}")
        require(
            list(self.lr_steps) == sorted(self.lr_steps) and all(0 < s < self.length for s in self.lr_steps),
            "lr_steps",
            f"must be increasing and inside (0, {self.length}), got {list(self.lr_steps)}",
        )
        require(self.schedule == "steps" or not self.lr_steps, "lr_steps", 'only allowed with schedule "steps"')
        require(
            not (self.device == "cpu" and self.amp != "none"),
            "amp",
            f'"{self.amp}" autocast needs a GPU; allowed with device "cpu": "none"',
        )

    @property
    def unit(self) -> str:
        """"epoch" or "iteration": the unit of ``warmup``, ``lr_steps`` and ``checkpoint_every``."""
        return "epoch" if self.epochs is not None else "iteration"

    @property
    def length(self) -> int:
        """Run length in :attr:`unit`."""
        return self.epochs if self.epochs is not None else self.iterations  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Multi-view testing (Sec. 5.1): scores of all views of a video are aggregated into one video score.

    Kinetics: softmax averaged over 10 clips × 3 crops; Charades: sigmoid, max over clips (Sec. 6).
    ``activation="none"`` is for models whose eval-mode output is already a probability.
    """

    aggregate: Literal["mean", "max"] = "mean"
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"
    views_per_batch: int = 8  # views forwarded together (views of several videos share a batch)
    num_workers: int = 0

    def __post_init__(self) -> None:
        require(self.views_per_batch >= 1, "views_per_batch", f"must be >= 1, got {self.views_per_batch}")
        require(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")
