"""The training loop: the paper's recipe, exact resume, SIGTERM checkpointing and non-finite-loss guards.

``train`` works with any ``nn.Module`` mapping a list of pathway tensors ``[slow, fast]`` (each (N, C, T, H, W))
to logits, and any Dataset whose items follow the data contract (``{"inputs": [...], "label": ..., ...}``, with
``set_epoch(epoch)`` when its randomness is per epoch, ``normalize`` when its clips are uint8 — applied on the
device — and ``collate`` to batch items otherwise than ``default_collate``). In one process or under torchrun (see
``distributed``).

Reproducibility: with ``deterministic=True`` a run that is killed at any point (even SIGKILL) and started again
with ``resume=True`` ends with bit-identical weights and metrics (apart from ``clips_per_s``) to one that was never
interrupted. That rests on: a fixed seed; the epoch permutation a function of (seed, epoch); data randomness a
function of (seed, epoch, index) through ``dataset.set_epoch``; checkpoints only at optimizer-step boundaries that
store the RNG states, the position inside the epoch and the partial metric sums; and loaders that never draw from
the global RNG (they get their own seeded generator).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from slowfast.config import ConfigError, to_mapping
from slowfast.engine import checkpointing, distributed
from slowfast.engine.config import EvalConfig, TrainConfig
from slowfast.engine.evaluate import evaluate, model_inputs
from slowfast.engine.schedule import learning_rate
from slowfast.metrics.classification import top_k_hits
from slowfast.models.checkpoint import save_model
from slowfast.utils.io import write_text_atomic

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: "try again later" — resuming continues the run


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived: the current step was finished and a checkpoint written; exit with :attr:`exit_code`."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, step: int, checkpoint: Path | None):
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(f"training interrupted by SIGTERM after step {step}; resume from {checkpoint}")


@dataclasses.dataclass
class TrainResult:
    model: nn.Module  # the trained model (not the DDP wrapper)
    history: list[dict[str, float]]  # one record per epoch, as in metrics.jsonl
    step: int  # optimizer steps done
    checkpoint: Path | None  # the final training state (rank 0; None on other ranks)
    weights: Path | None  # the final model file written with slowfast.models.checkpoint.save_model, if any


class _StopFlag:
    """Set by SIGTERM; the loop checks it after each optimizer step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: finishing the current step, then writing a checkpoint")
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _configure_determinism(config: TrainConfig) -> None:
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch's global generators. Stages call it before building a model, whose initial
    weights are drawn from torch's global generator: without it they differ from run to run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (or AdamW); BN/GN/LN parameters get ``bn_weight_decay``, all others ``weight_decay``."""
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in norm_ids], "weight_decay": config.weight_decay},
        {"params": [p for p in params if id(p) in norm_ids], "weight_decay": config.bn_weight_decay},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.base_lr)
    return torch.optim.SGD(groups, lr=config.base_lr, momentum=config.momentum, nesterov=config.nesterov)


def _loss(config: TrainConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if config.loss == "cross_entropy":
        return F.cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def _validation_config(model: nn.Module, config: TrainConfig) -> EvalConfig:
    """Kinetics-style (softmax, mean over views) for single-label training, Charades-style (sigmoid, max) for BCE.

    A multi-label SlowFast head already returns sigmoid scores in eval mode (``model.config.multilabel``).
    """
    if config.loss == "cross_entropy":
        return EvalConfig(aggregate="mean", activation="softmax", num_workers=config.num_workers)
    sigmoid_head = bool(getattr(getattr(model, "config", None), "multilabel", False))
    return EvalConfig(aggregate="max", activation="none" if sigmoid_head else "sigmoid", num_workers=config.num_workers)


def _save_final_weights(model: nn.Module, path: Path, meta: dict[str, Any]) -> Path | None:
    """The trained model in the model-file format (slowfast.models.checkpoint), for models that carry a config."""
    if not hasattr(model, "config"):
        log.info("model has no .config: only the training state holds its weights")
        return None
    return save_model(model, path, meta=meta)  # type: ignore[arg-type]


def train(
    model: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    *,
    out_dir: str | os.PathLike[str],
    val_set: Dataset | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    resume: bool = True,
    model_path: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_set`` as ``config`` says; files go to ``out_dir`` (rank 0 only).

    Writes ``out_dir/checkpoints/state_<step>.pt`` (every ``checkpoint_every`` units, or at each epoch's end, and
    at the end),
    ``out_dir/metrics.jsonl`` (one JSON record per epoch: epoch, step, loss, lr, train_top1, [val_top1, and
    val_map for multi-label data], clips_per_s; rewritten whole, so re-runs leave it consistent with the state)
    and the final model at ``model_path`` (default ``out_dir/model.pt``). A pipeline stage keeps ``out_dir`` (the
    resumable states) apart from ``model_path`` (the stage's cached DVC output), so DVC can restore a model from its
    run cache without the checkpoints, and remove it before a re-run without losing them.
    ``on_epoch_end(epoch, metrics)`` is called on rank 0 after each epoch's record is written.
    With ``resume`` the newest readable state in ``out_dir/checkpoints`` is continued; without, earlier states
    there are deleted and the run starts over (seeding ``random``, numpy and torch from ``config.seed``; the model's
    initial weights are the caller's).

    Raises :class:`TrainingInterrupted` after SIGTERM (checkpoint written), and ``FloatingPointError`` naming the
    epoch, iteration and value when a loss is NaN or infinite (before that step's update).
    """
    ctx = distributed.init_distributed(config.device)
    if config.amp != "none" and ctx.device.type != "cuda":
        raise ConfigError("amp", f'"{config.amp}" autocast needs a GPU, the run uses {ctx.device}; allowed: "none"')
    _configure_determinism(config)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"

    per_step = config.batch_size * config.accumulate
    steps_per_epoch = len(train_set) // ctx.world_size // per_step  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ConfigError(
            "batch_size",
            f"one optimizer step needs batch_size·accumulate·world_size = {per_step * ctx.world_size} clips, "
            f"the training set has {len(train_set)}",  # type: ignore[arg-type]
        )
    total_steps = config.epochs * steps_per_epoch if config.epochs is not None else config.iterations
    assert total_steps is not None

    model.to(ctx.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    optimizer = build_optimizer(model, config)

    if not resume and ctx.is_main:
        for stale in checkpointing.list_states(ckpt_dir):  # an earlier run's states would outrank this run's
            log.warning("resume=False: removing %s of an earlier run", stale)
            stale.unlink()
    loaded = checkpointing.load_latest_state(ckpt_dir) if resume and ctx.is_main else None
    loaded = distributed.broadcast_object(loaded, ctx)  # rank 0's state reaches every process (no shared disk needed)
    if loaded is None:
        seed_everything(config.seed)
        step, epoch, position, history = 0, 0, 0, []
        sums = torch.zeros(3, dtype=torch.float64)  # loss·clips, top-1 hits, clips of the current epoch
    else:
        state, path = loaded
        if state["config"] != to_mapping(config):
            log.warning("resuming %s with a changed configuration: %s -> %s", path, state["config"], to_mapping(config))
        if state["world_size"] != ctx.world_size:
            log.warning("resuming %s, written by %d processes, with %d: the clip order of the rest of the epoch "
                        "differs from an uninterrupted run", path, state["world_size"], ctx.world_size)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpointing.set_rng_state(state["rng"])
        step, epoch, position = state["step"], state["epoch"], state["position"]
        history, sums = list(state["history"]), state["sums"].clone()
        log.info("resumed from %s: epoch %d, step %d of %d", path, epoch, step, total_steps)

    net = distributed.wrap_model(model, ctx)
    autocast = torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=config.amp == "bf16")
    eval_config = _validation_config(model, config)
    last_checkpoint: Path | None = None
    lr = learning_rate(config, 0.0) if loaded is None else loaded[0]["scheduler"]["lr"]

    def progress() -> float:
        return epoch + position / steps_per_epoch if config.unit == "epoch" else float(step)

    def save() -> None:
        nonlocal last_checkpoint
        if not ctx.is_main:
            return
        state = {
            "step": step,
            "epoch": epoch,
            "position": position,
            "sums": sums,
            "history": history,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {"schedule": config.schedule, "unit": config.unit, "progress": progress(), "lr": lr},
            "rng": checkpointing.rng_state(),
            "config": to_mapping(config),
            "world_size": ctx.world_size,
        }
        last_checkpoint = checkpointing.save_state(ckpt_dir, state, keep=config.keep_checkpoints)
        log.info("checkpoint %s (epoch %d, step %d)", last_checkpoint, epoch, step)

    def interrupt() -> NoReturn:
        save()
        log.warning("stopped by SIGTERM after step %d; checkpoint %s", step, last_checkpoint)
        raise TrainingInterrupted(step, last_checkpoint)

    def write_metrics() -> None:
        if ctx.is_main:
            write_text_atomic(out_dir / "metrics.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))

    every = config.checkpoint_every  # None: at epoch ends only
    write_metrics()
    with _StopFlag() as stop:
        while step < total_steps:
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)
            indices = distributed.epoch_indices(train_set, epoch=epoch, seed=config.seed, ctx=ctx)
            indices = indices[position * per_step : steps_per_epoch * per_step]
            loader = DataLoader(
                train_set,
                batch_size=config.batch_size,
                sampler=indices,
                num_workers=config.num_workers,
                pin_memory=ctx.device.type == "cuda",
                drop_last=True,
                generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch),
                collate_fn=getattr(train_set, "collate", None),  # e.g. AVA: a variable number of boxes per clip
            )
            net.train()
            started, clips_here, micro = time.perf_counter(), 0, 0
            for batch in loader:
                inputs = model_inputs(train_set, batch["inputs"], ctx.device)
                if config.channels_last:
                    inputs = [x.contiguous(memory_format=torch.channels_last_3d) for x in inputs]
                # A detection batch (AVA) scores boxes: net(inputs, boxes) -> one row of logits per box.
                boxes = batch["boxes"].to(ctx.device, non_blocking=True) if "boxes" in batch else None
                labels = batch["labels" if boxes is not None else "label"].to(ctx.device, non_blocking=True)
                micro += 1
                syncs = micro % config.accumulate == 0
                with contextlib.nullcontext() if syncs or not ctx.distributed else net.no_sync():
                    with autocast:
                        logits = net(inputs) if boxes is None else net(inputs, boxes)
                    loss = _loss(config, logits.float(), labels)
                    value = loss.item()
                    # Every process learns whether any one saw a bad loss or a SIGTERM, so all stop together.
                    flags = torch.tensor([float(not math.isfinite(value)), float(stop.requested)])
                    distributed.all_reduce(flags, ctx, op="max")
                    if flags[0] > 0:
                        raise FloatingPointError(
                            f"non-finite training loss at epoch {epoch + 1}, iteration {step + 1} "
                            f"(this process's loss: {value}); stopped before the optimizer step"
                        )
                    (loss / config.accumulate).backward()
                n = labels.shape[0]
                hits = int(top_k_hits(logits.detach(), labels, 1).sum())
                sums += torch.tensor([value * n, hits, n], dtype=torch.float64)
                clips_here += inputs[0].shape[0]
                if not syncs:
                    continue
                lr = learning_rate(config, progress())
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step, position = step + 1, position + 1
                if step >= total_steps:
                    break
                if flags[1] > 0:
                    interrupt()
                if config.unit == "iteration" and every and step % every == 0 and position < steps_per_epoch:
                    save()

            # End of an epoch (or of the run, part-way through one in iteration mode).
            finished = step >= total_steps
            elapsed = time.perf_counter() - started
            totals = distributed.all_reduce(sums.clone(), ctx)
            record: dict[str, float] = {
                "epoch": epoch + 1,
                "step": step,
                "loss": float(totals[0] / totals[2]),
                "lr": lr,
                "train_top1": float(totals[1] / totals[2]),
            }
            if clips_here:  # none when a run stopped right at the end of an epoch resumes
                record["clips_per_s"] = clips_here * ctx.world_size / elapsed
            if val_set is not None and ((epoch + 1) % config.val_every == 0 or finished):
                distributed.broadcast_buffers(model, ctx)
                summary = evaluate(model, val_set, eval_config, ctx=ctx).summary()
                record["val_top1"] = summary["top1"]
                if "map" in summary:  # multi-label (Charades): the paper's metric
                    record["val_map"] = summary["map"]
            history.append(record)
            if ctx.is_main:
                log.info("epoch %d: %s", epoch + 1, record)
            epoch, position = epoch + 1, 0
            sums = torch.zeros(3, dtype=torch.float64)
            if finished or every is None or (epoch if config.unit == "epoch" else step) % every == 0:
                save()
            write_metrics()
            if on_epoch_end is not None and ctx.is_main:
                on_epoch_end(epoch, record)
            if not finished and distributed.all_reduce(torch.tensor([float(stop.requested)]), ctx, op="max")[0] > 0:
                interrupt()  # SIGTERM during validation or the epoch's bookkeeping

    weights = None
    if ctx.is_main:
        # No timings in the file: the same training gives a byte-identical model file (a no-op for DVC).
        final = {k: v for k, v in history[-1].items() if k != "clips_per_s"} if history else {}
        meta = {"steps": step, "epochs": epoch, "train_config": to_mapping(config), "final_metrics": final}
        weights = _save_final_weights(model, Path(model_path) if model_path else out_dir / "model.pt", meta)
        if last_checkpoint is None:  # resumed a finished run: nothing new was written
            found = checkpointing.list_states(ckpt_dir)
            last_checkpoint = found[0] if found else None
    distributed.barrier(ctx)
    return TrainResult(model=model, history=history, step=step, checkpoint=last_checkpoint, weights=weights)
