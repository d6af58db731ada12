"""The SlowFast network (Sec. 3 of the paper), its Slow-only and Fast-only twins, and input packing.

::

    frames (αT) ──┬── take T ──→ Slow: stem ─[+]─ res2 ─[+]─ res3 ─[+]─ res4 ─[+]─ res5 ─→ pool ─┐
                  │                        ↑          ↑          ↑          ↑                   concat → dropout → fc
                  └───────────→ Fast: stem ─┴─ res2 ───┴─ res3 ───┴─ res4 ───┴─ res5 ─→ pool ─┘

[+] are the Fast → Slow laterals (``fusion.py``) after pool1, res2, res3 and res4. The module tree (state-dict
names) is a contract with the checkpoint converter: ``slow``/``fast`` pathways with ``stem`` and ``res2``..``res5``,
laterals ``fuse_pool1``..``fuse_res4`` and ``head.fc``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SlowFastConfig
from .fusion import build_lateral
from .layers import Bottleneck, NonLocal, Stem

STAGES = ("res2", "res3", "res4", "res5")
FUSIONS = ("fuse_pool1", "fuse_res2", "fuse_res3", "fuse_res4")  # the lateral feeding each stage
FC_INIT_STD = 0.01
# ITU-R BT.601 luma weights, for the gray-scale Fast input of Table 5c.
_LUMA = (0.299, 0.587, 0.114)


class Pathway(nn.Module):
    """One 3D-ResNet pathway (a column of Table 1): ``stem`` then ``res2``..``res5`` of Bottleneck blocks.

    ``extra_channels[k]`` are the channels a lateral concatenates onto the input of stage k (Slow pathway only).
    """

    def __init__(self, config: SlowFastConfig, pathway: str, *, extra_channels: Sequence[int] = (0, 0, 0, 0)):
        super().__init__()
        slow = pathway == "slow"
        kernels = config.slow_temporal_kernels if slow else config.fast_temporal_kernels
        res4_temporal = config.slow_res4_temporal_blocks if slow else config.fast_res4_temporal_blocks
        width = config.pathway_width(pathway)
        stem_in = 1 if (not slow and config.fast_input == "gray") else config.input_channels
        self.stem = Stem(stem_in, width, temporal_kernel=kernels[0])
        c_in = width
        for k, (name, depth) in enumerate(zip(STAGES, config.depths)):
            inner = width * 2**k
            c_out = inner * config.expansion
            dilation = config.res5_dilation if name == "res5" else 1
            stride = 1 if k == 0 or dilation > 1 else 2
            n_temporal = res4_temporal if (name == "res4" and res4_temporal is not None) else depth
            blocks = []
            for i in range(depth):
                nl = None
                if slow and name == "res4" and i in config.nonlocal_blocks:
                    nl = NonLocal(c_out, inner=c_out // 2, pool=config.nonlocal_pool, mode=config.nonlocal_mode)
                blocks.append(Bottleneck(
                    c_in + extra_channels[k] if i == 0 else c_out, c_out, inner=inner,
                    temporal_kernel=kernels[k + 1] if i < n_temporal else 1,
                    spatial_stride=stride if i == 0 else 1, dilation=dilation, nonlocal_block=nl))
            self.add_module(name, nn.Sequential(*blocks))
            c_in = c_out
        self.out_channels = c_in

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for name in STAGES:
            x = getattr(self, name)(x)
        return x


class Head(nn.Module):
    """Global average pool per pathway, concatenation, dropout, fc (Table 1 "head").

    A multi-label head returns per-class sigmoid scores in eval mode; logits are always returned in training.
    """

    def __init__(self, in_features: int, num_classes: int, *, dropout: float, multilabel: bool):
        super().__init__()
        self.multilabel = multilabel
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        pooled = torch.cat([f.mean(dim=(2, 3, 4)) for f in features], dim=1)
        logits = self.fc(self.dropout(pooled))
        return torch.sigmoid(logits) if (self.multilabel and not self.training) else logits


class SlowFast(nn.Module):
    """SlowFast (``arch="slowfast"``), Slow-only (``"slow"``) or Fast-only (``"fast"``) video classifier.

    Input: a list of pathway tensors, Slow first, each (N, C, T, H, W) (Slow T frames, Fast αT frames); see
    :func:`pack_pathways`. Output: logits (N, num_classes) (sigmoid scores for a multi-label model in eval mode).
    """

    def __init__(self, config: SlowFastConfig):
        super().__init__()
        self.config = config
        fast_width = config.pathway_width("fast")
        extra = [0, 0, 0, 0]
        if config.arch == "slowfast":
            # Fast channels entering each lateral: stem width, then each stage's output (× expansion, × 2 per stage).
            fast_channels = [fast_width] + [fast_width * 2**k * config.expansion for k in range(3)]
            for k, (name, c_fast) in enumerate(zip(FUSIONS, fast_channels)):
                lateral = build_lateral(config, fast_channels=c_fast)
                self.add_module(name, lateral)
                extra[k] = lateral.extra_channels
        if "slow" in config.pathways:
            self.slow = Pathway(config, "slow", extra_channels=extra)
        if "fast" in config.pathways:
            self.fast = Pathway(config, "fast")
        features = sum(getattr(self, p).out_channels for p in config.pathways)
        self.head = Head(features, config.num_classes, dropout=config.dropout, multilabel=config.multilabel)
        self.init_weights()

    # -- construction ---------------------------------------------------------------------------------------------
    def init_weights(self) -> None:
        """As the reference implementations: He (fan-out) init for convs, BN weight 1 / bias 0 except the last BN
        of every residual branch (and of every non-local block), which starts at 0 when ``zero_init_residual``;
        fc weights normal with std 0.01, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=FC_INIT_STD)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck) and self.config.zero_init_residual:
                nn.init.zeros_(m.bn_c.weight)
            elif isinstance(m, NonLocal):
                nn.init.zeros_(m.bn.weight)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the fc by a freshly initialised one with ``num_classes`` outputs (fine-tuning)."""
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        old = self.head.fc
        self.head.fc = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        nn.init.normal_(self.head.fc.weight, std=FC_INIT_STD)
        nn.init.zeros_(self.head.fc.bias)

    # -- forward --------------------------------------------------------------------------------------------------
    def _check_inputs(self, x: Sequence[Tensor]) -> list[Tensor]:
        cfg = self.config
        names = cfg.pathways
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            raise ValueError(f"expected a list of {len(names)} pathway tensor(s) ({', '.join(names)}), "
                             f"got {type(x).__name__} of length {len(x) if isinstance(x, (list, tuple)) else '-'}")
        for name, t in zip(names, x):
            if t.dim() != 5 or t.shape[1] != cfg.input_channels:
                raise ValueError(f"{name} pathway input must be (N, {cfg.input_channels}, T, H, W), "
                                 f"got {tuple(t.shape)}")
        if cfg.arch == "slowfast":
            t_slow, t_fast = x[0].shape[2], x[1].shape[2]
            if t_fast != cfg.alpha * t_slow:
                raise ValueError(f"the Fast pathway needs alpha={cfg.alpha} times the Slow frames: got "
                                 f"{t_slow} Slow frames and {t_fast} Fast frames (expected {cfg.alpha * t_slow})")
        return list(x)

    def _fast_input(self, x: Tensor) -> Tensor:
        """The Fast pathway's view of its frames (Table 5c): RGB, gray-scale, time difference or half resolution."""
        kind = self.config.fast_input
        if kind == "gray":
            w = x.new_tensor(_LUMA).view(1, 3, 1, 1, 1)
            return (x * w).sum(dim=1, keepdim=True)
        if kind == "tdiff":
            return torch.diff(x, dim=2, prepend=x[:, :, :1])  # first frame: zero difference
        if kind == "half_res":
            return F.avg_pool3d(x, kernel_size=(1, 2, 2), stride=(1, 2, 2), ceil_mode=True)
        return x

    def forward_features(self, x: Sequence[Tensor]) -> list[Tensor]:
        """res5 features per pathway, Slow first."""
        xs = self._check_inputs(x)
        names = self.config.pathways
        if "fast" in names:
            xs[-1] = self._fast_input(xs[-1])
        pathways = [getattr(self, n) for n in names]
        xs = [p.stem(t) for p, t in zip(pathways, xs)]
        for stage, fusion in zip(STAGES, FUSIONS):
            if self.config.arch == "slowfast":
                xs[0] = getattr(self, fusion)(xs[0], xs[1])
            xs = [getattr(p, stage)(t) for p, t in zip(pathways, xs)]
        return xs

    def forward_head(self, features: Sequence[Tensor]) -> Tensor:
        return self.head(features)

    def forward(self, x: Sequence[Tensor]) -> Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(config: SlowFastConfig) -> SlowFast:
    """A freshly initialised model for ``config``."""
    return SlowFast(config)


def slow_indices(num_frames: int, slow_frames: int) -> Tensor:
    """Frames of an ``num_frames`` clip given to the Slow pathway: linspace(0, n-1, T) rounded down (PySlowFast)."""
    return torch.linspace(0, num_frames - 1, slow_frames).long()


def pack_pathways(frames: Tensor, config: SlowFastConfig) -> list[Tensor]:
    """Split a clip of αT frames, (C, αT, H, W) or (N, C, αT, H, W), into the model's list of pathway inputs.

    The Fast pathway takes every frame; the Slow pathway takes T of them, as PySlowFast does. A Slow-only model
    takes the same T frames (a clip of exactly T frames passes unchanged); a Fast-only model takes all frames.
    """
    if frames.dim() not in (4, 5):
        raise ValueError(f"frames must be (C, T, H, W) or (N, C, T, H, W), got shape {tuple(frames.shape)}")
    time_dim = frames.dim() - 3
    n = frames.shape[time_dim]
    if config.arch == "fast":
        return [frames]
    if n < config.slow_frames:
        raise ValueError(f"a clip of {n} frames is shorter than slow_frames={config.slow_frames}")
    slow = frames if n == config.slow_frames else frames.index_select(
        time_dim, slow_indices(n, config.slow_frames).to(frames.device))
    return [slow] if config.arch == "slow" else [slow, frames]
