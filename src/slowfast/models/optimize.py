"""Inference-only speed-ups that keep the model's function: BN folding, channels-last-3d, inference mode.

``optimize_for_inference(model)`` returns a new module (the original is left untouched, so the same weights can be
benchmarked side by side; see ``benchmarks/model.py``). A folded model is for inference only: its BN layers are
gone, so it neither trains nor saves as a checkpoint of this package.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

# (conv, bn) attribute pairs of the modules of layers.py / fusion.py: each BN directly follows its conv.
_PAIRS = (("conv", "bn"), ("conv_a", "bn_a"), ("conv_b", "bn_b"), ("conv_c", "bn_c"), ("out", "bn"))


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> nn.Conv3d:
    """A conv computing ``bn(conv(x))`` with BN in eval mode (running statistics): y = γ(Wx + b − μ)/σ + β."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = copy.deepcopy(conv)
    fused.weight.copy_(conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BN folded into its preceding conv (BN → Identity)."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for conv_name, bn_name in _PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d):
                setattr(module, conv_name, fold_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return model


class InferenceModel(nn.Module):
    """Runs ``model`` under ``torch.inference_mode``, feeding channels-last-3d inputs if the weights are."""

    def __init__(self, model: nn.Module, *, channels_last: bool):
        super().__init__()
        self.model = model
        self.channels_last = channels_last

    def forward(self, x: Sequence[Tensor]) -> Tensor:
        with torch.inference_mode():
            if self.channels_last:
                x = [t.contiguous(memory_format=torch.channels_last_3d) for t in x]
            return self.model(list(x))


def optimize_for_inference(model: nn.Module, *, fold_bn: bool = True, channels_last: bool = False,
                           compile: bool = False) -> InferenceModel:
    """An eval-mode inference copy of ``model``: BN folded, inference mode, optionally channels-last-3d weights and
    ``torch.compile`` (needs a C++ toolchain; compiling takes tens of seconds).

    On the project's CPU, ``benchmarks/model.py`` measured folding and channels-last-3d within ±8% of eager (BN is
    cheap next to the 3D convs) and ``torch.compile`` 7% faster on slowfast_tiny; hence the extras are opt-in.
    """
    model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    if compile:
        model = torch.compile(model)
    return InferenceModel(model, channels_last=channels_last)
