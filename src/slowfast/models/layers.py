"""Building blocks of a pathway: the stem, the bottleneck residual block and the non-local block.

Kernels follow Table 1 of the paper: a pathway is a 3D ResNet whose temporal kernels are chosen per stage and whose
spatial stride sits on the 1×3² conv of a stage's first block; there is no temporal stride anywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BN_EPS = 1e-5


def _conv(c_in: int, c_out: int, kernel: tuple[int, int, int], *, stride: tuple[int, int, int] = (1, 1, 1),
          dilation: int = 1) -> nn.Conv3d:
    """A bias-free Conv3d padded to keep T (and H, W at stride 1): 'same' padding for odd kernels."""
    t, h, w = kernel
    return nn.Conv3d(c_in, c_out, kernel, stride=stride, bias=False, dilation=(1, dilation, dilation),
                     padding=(t // 2, dilation * (h // 2), dilation * (w // 2)))


class ConvBN(nn.Module):
    """Conv3d followed by BatchNorm3d (the projection shortcut of a stage's first block)."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int], *, stride: tuple[int, int, int]):
        super().__init__()
        self.conv = _conv(c_in, c_out, kernel, stride=stride)
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class Stem(ConvBN):
    """conv1 (T×7², spatial stride 2) → BN → ReLU → pool1 (1×3² max-pool, spatial stride 2): Table 1."""

    def __init__(self, c_in: int, c_out: int, *, temporal_kernel: int):
        super().__init__(c_in, c_out, (temporal_kernel, 7, 7), stride=(1, 2, 2))
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu(super().forward(x)))


class NonLocal(nn.Module):
    """Non-local block (Wang et al., CVPR 2018) as used on res4 of the Slow pathway (Sec. 4.1, "+NL").

    ::

        x ─┬─ theta ──────────────┐
           ├─ pool → phi ─ θᵀφ ─ normalise ─┐
           └─ pool → g ──────────────────── · → out → bn ─(+ x)

    ``mode`` "dot_product" divides the affinity by the number of positions, "softmax" scales by the inner width
    and applies a softmax. The residual BN starts at zero, so a freshly added block is the identity.
    """

    def __init__(self, channels: int, *, inner: int, pool: tuple[int, int, int] = (1, 2, 2),
                 mode: str = "dot_product"):
        super().__init__()
        self.mode = mode
        self.inner = inner
        self.theta = nn.Conv3d(channels, inner, 1)
        self.phi = nn.Conv3d(channels, inner, 1)
        self.g = nn.Conv3d(channels, inner, 1)
        self.out = nn.Conv3d(inner, channels, 1)
        self.bn = nn.BatchNorm3d(channels, eps=BN_EPS)
        self.pool = nn.MaxPool3d(pool, stride=pool) if any(p > 1 for p in pool) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        n, _, t, h, w = x.shape
        theta = self.theta(x).flatten(2)  # (N, C', THW)
        pooled = self.pool(x)
        phi = self.phi(pooled).flatten(2)  # (N, C', P)
        g = self.g(pooled).flatten(2)
        affinity = torch.einsum("ncq,ncp->nqp", theta, phi)
        if self.mode == "softmax":
            affinity = torch.softmax(affinity * self.inner**-0.5, dim=2)
        else:
            affinity = affinity / affinity.shape[2]
        y = torch.einsum("nqp,ncp->ncq", affinity, g).reshape(n, self.inner, t, h, w)
        return x + self.bn(self.out(y))


class Bottleneck(nn.Module):
    """Residual bottleneck: T×1² (conv_a) → 1×3² (conv_b, carries stride and dilation) → 1×1² (conv_c).

    ``temporal_kernel`` is the T of conv_a (1 or 3 in Table 1). A projection shortcut (1×1², BN) is used when the
    channels or the spatial size change, i.e. in the first block of every stage. An optional non-local block is
    applied after the residual ReLU.
    """

    def __init__(self, c_in: int, c_out: int, *, inner: int, temporal_kernel: int, spatial_stride: int = 1,
                 dilation: int = 1, nonlocal_block: NonLocal | None = None):
        super().__init__()
        stride = (1, spatial_stride, spatial_stride)
        self.conv_a = _conv(c_in, inner, (temporal_kernel, 1, 1))
        self.bn_a = nn.BatchNorm3d(inner, eps=BN_EPS)
        self.conv_b = _conv(inner, inner, (1, 3, 3), stride=stride, dilation=dilation)
        self.bn_b = nn.BatchNorm3d(inner, eps=BN_EPS)
        self.conv_c = _conv(inner, c_out, (1, 1, 1))
        self.bn_c = nn.BatchNorm3d(c_out, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        if c_in != c_out or spatial_stride != 1:
            self.shortcut = ConvBN(c_in, c_out, (1, 1, 1), stride=stride)
        if nonlocal_block is not None:
            self.add_module("nonlocal", nonlocal_block)  # `nonlocal` is a keyword: no attribute syntax

    def forward(self, x: Tensor) -> Tensor:
        identity = self.shortcut(x) if hasattr(self, "shortcut") else x
        y = self.relu(self.bn_a(self.conv_a(x)))
        y = self.relu(self.bn_b(self.conv_b(y)))
        y = self.relu(self.bn_c(self.conv_c(y)) + identity)
        nl = self._modules.get("nonlocal")
        return y if nl is None else nl(y)
