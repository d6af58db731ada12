"""Model cost as the paper reports it: GFLOPs (= 10⁹ multiply-adds) of one view, and parameters.

Multiply-adds of every conv and fc layer are counted, plus the two affinity products of each non-local block
(θᵀφ and its product with g); BN, ReLU, pooling and additions are not counted (as in the paper's tables).
Counting runs the model on the ``meta`` device: shapes propagate, nothing is computed, so R101 costs nothing.
``slowfast stats PRESET [--size 256] [--classes 400]`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import torch
from torch import Tensor, nn

from .config import SlowFastConfig
from .layers import NonLocal
from .presets import get_preset, preset_config
from .slowfast import build_model


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters."""
    return sum(p.numel() for p in model.parameters())


def example_inputs(config: SlowFastConfig, *, size: int, batch: int = 1, device: str | torch.device = "cpu",
                   ) -> list[Tensor]:
    """Zero clips of the shapes the model expects: Slow (N, C, T, size, size), Fast (N, C, αT, size, size)."""
    return [torch.zeros(batch, config.input_channels, config.pathway_frames(p), size, size, device=device)
            for p in config.pathways]


def _conv_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
    return output.numel() * per_output


def _linear_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    return output.numel() * module.in_features


def _nonlocal_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    n, _, t, h, w = inputs[0].shape
    pool = module.pool.kernel_size if isinstance(module.pool, nn.MaxPool3d) else (1, 1, 1)
    keys = math.prod(d // k for d, k in zip((t, h, w), pool))
    return 2 * n * t * h * w * keys * module.inner  # θᵀφ and (θᵀφ)·g


_COUNTERS = {nn.Conv3d: _conv_macs, nn.Linear: _linear_macs, NonLocal: _nonlocal_macs}


def count_flops(model: nn.Module, inputs: list[Tensor]) -> int:
    """Multiply-adds of one forward pass of ``model`` on ``inputs`` (conv, fc and non-local products)."""
    total = 0

    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += _COUNTERS[type(module)](module, args, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in _COUNTERS]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def config_stats(config: SlowFastConfig, *, size: int = 256) -> dict[str, Any]:
    """GFLOPs of one ``size``² view and parameters of a model built from ``config``, counted on ``meta``."""
    with torch.device("meta"):
        model = build_model(config).eval()
        inputs = example_inputs(config, size=size, device="meta")
    return {"gflops": count_flops(model, inputs) / 1e9, "params": count_params(model),
            "frames": [config.pathway_frames(p) for p in config.pathways], "size": size}


def preset_stats(name: str, *, size: int = 256, num_classes: int | None = None) -> dict[str, Any]:
    """:func:`config_stats` of a preset, next to the paper's numbers for it."""
    preset = get_preset(name)
    overrides = {} if num_classes is None else {"num_classes": num_classes}
    config = preset_config(name, **overrides)
    stats = config_stats(config, size=size)
    return {"preset": name, **stats, "params_m": stats["params"] / 1e6, "num_classes": config.num_classes,
            "paper_gflops": preset.gflops, "paper_params_m": preset.params_m}


# -- `slowfast stats` --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="preset name (see `slowfast presets`)")
    parser.add_argument("--size", type=int, default=256, help="spatial size of the view (default 256)")
    parser.add_argument("--classes", type=int, default=None, help="number of classes (default: the preset's)")


def run(args: argparse.Namespace) -> int:
    if args.size < 32:
        raise ValueError(f"--size: must be >= 32 (five stride-2 stages), got {args.size}")
    print(json.dumps(preset_stats(args.preset, size=args.size, num_classes=args.classes)))
    return 0
