"""Small SlowFast configurations that run forward and backward in milliseconds on a CPU."""

from __future__ import annotations

import torch

from slowfast.models import SlowFastConfig

LATERALS = ("tconv", "tsample", "ttoc_sum", "ttoc_concat", "none")


def small(**overrides) -> SlowFastConfig:
    """One bottleneck per stage, Slow width 8, α = 1/β = 4 (so every lateral kind is valid), T = 2."""
    base = dict(depths=(1, 1, 1, 1), width=8, alpha=4, beta_inv=4, slow_frames=2, num_classes=5)
    return SlowFastConfig(**{**base, **overrides})


def clip(config: SlowFastConfig, *, batch: int = 2, size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """Random pathway inputs of the right shapes for ``config``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, config.input_channels, config.pathway_frames(p), size, size, generator=g)
            for p in config.pathways]
