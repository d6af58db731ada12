r"""Multi-process training with torch.distributed + DistributedDataParallel, configured by torchrun.

The paper trains with synchronized SGD on 128 GPUs, 8 clips per GPU, BN statistics per GPU (Sec. 5). Here each
process holds one model replica (DDP averages gradients), draws its share of every epoch's permutation through a
seeded ``DistributedSampler``, and keeps plain per-process BatchNorm. Only rank 0 writes files.

Launch (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT):

    # one machine, 2 processes (gloo on CPU, NCCL on GPUs: one GPU per process)
    torchrun --standalone --nproc_per_node 2 TRAIN_SCRIPT [ARGS...]
    # two machines with 4 GPUs each; run on both, NODE_RANK = 0 on the host at MASTER_ADDR, 1 on the other
    torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 4 \
             --master_addr $MASTER_ADDR --master_port 29500 TRAIN_SCRIPT [ARGS...]

(``torchrun`` is ``python -m torch.distributed.run``; TRAIN_SCRIPT calls ``slowfast.engine.train``.) Without those
variables everything runs in one process. Resuming needs the checkpoints only on rank 0's machine: rank 0 reads the
state and broadcasts it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from slowfast.config import ConfigError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` processes, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, metrics and score files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` → the process's GPU if CUDA is available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", '"cuda" requested but no GPU is available; allowed here: "auto", "cpu"')
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group described by torchrun's environment (idempotent); one process if it is absent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size <= 1:
        return DistContext(device=dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", timeout=datetime.timedelta(minutes=30))
        log.info("joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP around ``model`` in a multi-process run (replicas start from rank 0's weights); else ``model`` itself."""
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def epoch_indices(dataset: Dataset, *, epoch: int, seed: int, ctx: DistContext, shuffle: bool = True) -> list[int]:
    """This process's sample indices for ``epoch``: one seeded permutation per epoch, dealt round-robin to ranks.

    The permutation depends only on (seed, epoch), not on the number of processes, so batch k of a single-process
    run with batch B·W holds the same samples as batch k of all W processes with batch B together.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def all_reduce(tensor: torch.Tensor, ctx: DistContext, op: str = "sum") -> torch.Tensor:
    """Sum (or max) ``tensor`` over all processes, in place; a no-op in a single process."""
    if ctx.distributed:
        reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op]
        if ctx.device.type == "cuda":
            moved = tensor.to(ctx.device)
            dist.all_reduce(moved, op=reduce_op)
            tensor.copy_(moved.cpu())
        else:
            dist.all_reduce(tensor, op=reduce_op)
    return tensor


def all_gather(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's ``obj`` (picklable, produced by this program), in rank order."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` (picklable, produced by this program) on every process."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def broadcast_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BN running statistics) to every process, e.g. before a distributed evaluation."""
    if ctx.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
