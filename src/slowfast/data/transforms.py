"""Spatial views of a clip (paper §4): training jitter/crop/flip, 3-crop testing, full-frame AVA inference.

A :class:`View` is a square or rectangular box of the stored frames, the size it is resized to and a flip flag, so
the same view moves the pixels (:func:`apply_view`) and the AVA boxes (:func:`view_boxes`).

* Training (:func:`random_view`): the short side is scaled to a random integer in ``train_scale`` ([256, 320]),
  then a random ``crop``² (224²) square is taken and flipped horizontally with probability 1/2. It is computed as
  the equivalent crop of the stored frame (side ``round(crop / scale)``) resized to ``crop``², which saves resizing
  the whole frame; the scale is thus exact up to that rounding.
* Testing (:func:`crop_views`): short side scaled to ``test_size`` (256) and ``test_crops`` squares of that side
  along the long side (left/top, centre, right/bottom); one crop is the centre one.
* AVA inference (:func:`full_view`): the whole frame with its short side scaled to ``test_size``.

Views stay uint8 (values 0..255), channels-first ``(3, T, H, W)`` in shape: normalising is the engine's job, on
its device (:func:`normalize`: ``(x / 255 - mean) / std``, 0.45 / 0.225), so a loader moves a quarter of the bytes of
floats and does no float arithmetic. A view is stored in the resize's channels-last memory order (``T, H, W, 3``;
:func:`stack_clips` batches such clips without reordering bytes and :func:`normalize` makes them contiguous floats).
Resizing is bilinear with ``align_corners=False`` as in PySlowFast, done on the uint8 crop only (results rounded to
whole levels, at most 1/255 from a float resize) because that is 5-8× faster on CPU (benchmarks/loader.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from slowfast.config import require


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    train_scale: tuple[int, int] = (256, 320)
    crop: int = 224
    flip: bool = True
    test_size: int = 256
    test_crops: int = 3
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)

    def __post_init__(self) -> None:
        lo, hi = self.train_scale
        require(0 < lo <= hi, "train_scale", f"got {self.train_scale}, allowed: 0 < min <= max")
        require(0 < self.crop <= lo, "crop", f"got {self.crop}, allowed: 1..train_scale min ({lo})")
        require(self.test_size > 0, "test_size", f"got {self.test_size}, allowed: > 0")
        require(self.test_crops in (1, 3), "test_crops", f"got {self.test_crops}, allowed: 1 or 3")
        require(all(s > 0 for s in self.std), "std", f"got {self.std}, allowed: positive values")


@dataclasses.dataclass(frozen=True)
class View:
    """Box ``(x0, y0, w, h)`` of the stored frame (pixels), resized to ``out`` = (height, width), maybe flipped."""

    x0: int
    y0: int
    w: int
    h: int
    out: tuple[int, int]
    flip: bool = False


def random_view(height: int, width: int, config: TransformConfig, generator: torch.Generator) -> View:
    """Training view: jittered scale, random ``crop``² square, random horizontal flip."""
    lo, hi = config.train_scale
    scale = int(torch.randint(lo, hi + 1, (1,), generator=generator)) / min(height, width)
    side = min(round(config.crop / scale), height, width)
    x0 = int(torch.randint(0, width - side + 1, (1,), generator=generator))
    y0 = int(torch.randint(0, height - side + 1, (1,), generator=generator))
    flip = config.flip and bool(torch.rand((), generator=generator) < 0.5)
    return View(x0, y0, side, side, (config.crop, config.crop), flip)


def crop_views(height: int, width: int, config: TransformConfig) -> list[View]:
    """Testing views: ``test_crops`` squares of the short side along the long side, resized to ``test_size``²."""
    side = min(height, width)
    out = (config.test_size, config.test_size)
    spare_x, spare_y = width - side, height - side
    fractions = (0.0, 0.5, 1.0) if config.test_crops == 3 else (0.5,)
    return [View(int(spare_x * f), int(spare_y * f), side, side, out) for f in fractions]


def full_view(height: int, width: int, size: int) -> View:
    """The whole frame with its short side scaled to ``size`` (AVA inference)."""
    scale = size / min(height, width)
    return View(0, 0, width, height, (round(height * scale), round(width * scale)))


def apply_view(frames: np.ndarray, view: View) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` frames -> uint8 ``(3, T, out_h, out_w)`` in ``T, H, W, 3`` memory order (sharing
    ``frames``' memory only when the view is the whole frame at its own size)."""
    crop = torch.from_numpy(frames)[:, view.y0 : view.y0 + view.h, view.x0 : view.x0 + view.w]  # any strides
    # Flipping before the resize is the same (bilinear with align_corners=False is mirror-symmetric) and cheaper;
    # the resize then reads a compact crop, and a view never keeps whole frames alive.
    crop = crop.flip(2) if view.flip else crop.contiguous()
    x = crop.permute(0, 3, 1, 2)  # (T, 3, h, w) in channels-last memory: torch's fast uint8 resize path
    if (view.h, view.w) != view.out:
        x = F.interpolate(x, size=view.out, mode="bilinear", align_corners=False, antialias=False)
    return x.permute(1, 0, 2, 3)


def normalize(clips: torch.Tensor, config: TransformConfig) -> torch.Tensor:
    """uint8 clips ``(..., 3, T, H, W)`` (any memory order) -> contiguous float32 ``(x / 255 - mean) / std``, on the
    clips' device. The engine applies it to each pathway of a batch after moving it to the device."""
    if clips.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 clips (values 0..255), got {clips.dtype}")
    out = torch.empty(clips.shape, dtype=torch.float32, device=clips.device)
    out.copy_(clips)  # one pass: uint8 -> float and to contiguous channels-first
    std = torch.tensor(config.std, dtype=torch.float32, device=clips.device).view(3, 1, 1, 1)
    mean = torch.tensor(config.mean, dtype=torch.float32, device=clips.device).view(3, 1, 1, 1)
    return out.mul_(1.0 / (255.0 * std)).sub_(mean / std)


def stack_clips(clips: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` of ``(3, T, H, W)`` clips that keeps :func:`apply_view`'s ``T, H, W, 3`` memory order: a
    plain copy of each clip instead of a byte-by-byte reordering (the batch is ``(N, 3, T, H, W)`` in
    channels_last_3d memory). Clips in any other order are stacked as ``torch.stack`` does."""
    if all(c.dim() == 4 and c.permute(1, 2, 3, 0).is_contiguous() for c in clips):
        return torch.stack([c.permute(1, 2, 3, 0) for c in clips]).permute(0, 4, 1, 2, 3)
    return torch.stack(list(clips))


def view_boxes(boxes: np.ndarray, height: int, width: int, view: View) -> np.ndarray:
    """Normalised ``(B, 4)`` x1,y1,x2,y2 boxes of the stored frame -> pixel boxes of the view's output, clipped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out_h, out_w = view.out
    sx, sy = out_w / view.w, out_h / view.h
    px = np.empty_like(boxes)
    px[:, [0, 2]] = (boxes[:, [0, 2]] * width - view.x0) * sx
    px[:, [1, 3]] = (boxes[:, [1, 3]] * height - view.y0) * sy
    if view.flip:
        px[:, [0, 2]] = out_w - px[:, [2, 0]]
    px[:, [0, 2]] = px[:, [0, 2]].clip(0, out_w)
    px[:, [1, 3]] = px[:, [1, 3]].clip(0, out_h)
    return px.astype(np.float32)
