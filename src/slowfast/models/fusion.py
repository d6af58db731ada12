"""Fast → Slow lateral connections (Sec. 3.4 and Table 5a of the paper).

A lateral sits after pool1, res2, res3 and res4 and turns the Fast features {αT, S², βC} into something the Slow
features {T, S², C} can take:

- ``tconv``: a 3D conv with kernel k×1², 2βC output channels and temporal stride α, then BN and ReLU; concatenated.
- ``tsample``: one of every α frames; concatenated (βC channels).
- ``ttoc_concat`` / ``ttoc_sum``: time-to-channel, reshape {αT, S², βC} → {T, S², αβC}; concatenated or summed.
  Summation needs αβC = C, i.e. α = 1/β (4x16 R50: α = 8, β = 1/8); the config refuses any other pair.
- ``none``: no lateral; the pathways only meet in the head, where their pooled features are concatenated.

When the Fast pathway runs at half spatial resolution (``fast_input="half_res"``, Table 5c) the fused tensor is
enlarged to the Slow map by nearest-neighbour upsampling (our choice: parameter-free, the paper does not say).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SlowFastConfig
from .layers import BN_EPS


class Lateral(nn.Module):
    """Base of the lateral variants: ``forward(slow, fast)`` returns the fused Slow features."""

    #: channels the lateral adds to the Slow pathway (0 when it sums or does nothing).
    extra_channels: int = 0

    def transform(self, fast: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def combine(self, slow: Tensor, fused: Tensor) -> Tensor:
        return torch.cat([slow, fused], dim=1)

    def forward(self, slow: Tensor, fast: Tensor) -> Tensor:
        fused = self.transform(fast)
        if fused.shape[2:] != slow.shape[2:]:
            fused = F.interpolate(fused, size=slow.shape[2:], mode="nearest")
        return self.combine(slow, fused)


class TConvLateral(Lateral):
    """k×1² conv with temporal stride α (2βC channels), BN, ReLU; concatenated onto the Slow features."""

    def __init__(self, fast_channels: int, *, ratio: int, kernel: int, alpha: int):
        super().__init__()
        self.extra_channels = ratio * fast_channels
        self.conv = nn.Conv3d(fast_channels, self.extra_channels, (kernel, 1, 1), stride=(alpha, 1, 1),
                              padding=(kernel // 2, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(self.extra_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def transform(self, fast: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(fast)))


class TSampleLateral(Lateral):
    """Time-strided sampling: keep one of every α Fast frames (βC channels), concatenated."""

    def __init__(self, fast_channels: int, *, alpha: int):
        super().__init__()
        self.alpha = alpha
        self.extra_channels = fast_channels

    def transform(self, fast: Tensor) -> Tensor:
        return fast[:, :, :: self.alpha]


class TimeToChannelLateral(Lateral):
    """Time-to-channel: {αT, S², βC} → {T, S², αβC}; each Slow frame gets its α Fast frames as channels."""

    def __init__(self, fast_channels: int, *, alpha: int, mode: str):
        super().__init__()
        self.alpha = alpha
        self.mode = mode
        self.extra_channels = 0 if mode == "sum" else alpha * fast_channels

    def transform(self, fast: Tensor) -> Tensor:
        n, c, t, h, w = fast.shape
        # (N, C, T, α, H, W) -> (N, C, α, T, H, W) -> (N, Cα, T, H, W): channel index = c·α + frame offset.
        return fast.reshape(n, c, t // self.alpha, self.alpha, h, w).transpose(2, 3).reshape(
            n, c * self.alpha, t // self.alpha, h, w)

    def combine(self, slow: Tensor, fused: Tensor) -> Tensor:
        return slow + fused if self.mode == "sum" else super().combine(slow, fused)


class NoLateral(Lateral):
    """No lateral connection: the Slow features pass unchanged."""

    def forward(self, slow: Tensor, fast: Tensor) -> Tensor:
        return slow


def build_lateral(config: SlowFastConfig, *, fast_channels: int) -> Lateral:
    """The lateral named by ``config.lateral`` for Fast features with ``fast_channels`` channels."""
    kind = config.lateral
    if kind == "tconv":
        return TConvLateral(fast_channels, ratio=config.fusion_channel_ratio, kernel=config.fusion_kernel,
                            alpha=config.alpha)
    if kind == "tsample":
        return TSampleLateral(fast_channels, alpha=config.alpha)
    if kind in ("ttoc_sum", "ttoc_concat"):
        return TimeToChannelLateral(fast_channels, alpha=config.alpha, mode=kind.removeprefix("ttoc_"))
    if kind == "none":
        return NoLateral()
    raise ValueError(f"lateral: unknown kind {kind!r}; allowed: tconv, tsample, ttoc_sum, ttoc_concat, none")
