"""Inference helpers: BN folding and channels-last give the same outputs as the eager model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slowfast.models import build_model
from slowfast.models.optimize import fold_batchnorm, optimize_for_inference
from tests.models.small_models import clip, small


def _with_random_bn_statistics(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("lateral", ["tconv", "ttoc_sum"])
def test_bn_folding_keeps_the_outputs_up_to_float_error(lateral):
    cfg = small(lateral=lateral, depths=(1, 1, 2, 1), nonlocal_blocks=(1,))
    model = _with_random_bn_statistics(build_model(cfg))
    x = clip(cfg)
    folded = fold_batchnorm(model)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm3d) for m in model.modules())  # the original is untouched
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())


@pytest.mark.parametrize("options", [{}, {"channels_last": True}, {"fold_bn": False}])
def test_optimized_inference_model_matches_eager(options):
    cfg = small()
    model = _with_random_bn_statistics(build_model(cfg))
    x = clip(cfg)
    fast = optimize_for_inference(model, **options)
    with torch.no_grad():
        ref = model(x)
    out = fast(x)
    assert out.is_inference()
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
