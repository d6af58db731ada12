"""RoIAlign (He et al., Mask R-CNN) in plain, vectorised PyTorch: the AVA detector pools 7x7 features per person box
from res5 (paper Sec. 5, "RoIAlign ... on the last feature map of res5").

Semantics are torchvision's ``roi_align`` / detectron2's ``ROIAlign``: with ``aligned=True`` box corners are shifted by
-0.5 pixel so that a box's pixel centres line up with the feature grid; each output bin averages
``sampling_ratio x sampling_ratio`` bilinear samples (adaptive ``ceil(box size / output size)`` per box when
``sampling_ratio <= 0``); samples more than one pixel outside the map are 0 and others are clamped to the border. When
torchvision is installed its compiled operator is used instead (same results); it is not required.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from slowfast.config import require

try:  # pragma: no cover - torchvision is not a dependency
    from torchvision.ops import roi_align as _torchvision_roi_align
except Exception:  # noqa: BLE001 - absent, or built for another torch
    _torchvision_roi_align = None


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _bilinear_taps(
    y: torch.Tensor, x: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The four (pixel index, weight) taps of bilinear samples at (y, x), each (..., 4); weight 0 outside the map."""
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    # Past the last row/column both taps are that row/column, so their weights sum to 1 (torchvision clamps y too).
    y_low = y.floor().long().clamp(max=height - 1)
    x_low = x.floor().long().clamp(max=width - 1)
    y_high = (y_low + 1).clamp(max=height - 1)
    x_high = (x_low + 1).clamp(max=width - 1)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    index = torch.stack(
        [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high], dim=-1
    )
    weight = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], dim=-1).masked_fill(outside[..., None], 0.0)
    return index, weight


def _steps(bins: int, grid: int, like: torch.Tensor) -> torch.Tensor:
    """Sample positions in units of bins: bin ``p`` has ``grid`` samples at ``p + (i + 0.5) / grid``."""
    arange = torch.arange(max(bins, grid), dtype=like.dtype, device=like.device)
    return arange[:bins, None] + (arange[:grid] + 0.5) / grid


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int | tuple[int, int] = 7,
    *,
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> torch.Tensor:
    """Pool ``features`` (N, C, H, W) inside ``boxes`` (K, 5) = [batch index, x1, y1, x2, y2] (input-image pixels,
    scaled by ``spatial_scale`` onto the feature map) into (K, C, out_h, out_w). Differentiable in ``features``."""
    out_h, out_w = _pair(output_size)
    require(features.dim() == 4, "features", f"must be (N, C, H, W), got shape {tuple(features.shape)}")
    require(boxes.dim() == 2 and boxes.shape[1] == 5, "boxes", f"must be (K, 5), got shape {tuple(boxes.shape)}")
    require(out_h > 0 and out_w > 0, "output_size", f"must be positive, got {output_size!r}")
    require(spatial_scale > 0, "spatial_scale", f"must be > 0, got {spatial_scale!r}")
    if _torchvision_roi_align is not None:  # pragma: no cover
        return _torchvision_roi_align(
            features, boxes.to(features.dtype), (out_h, out_w), spatial_scale, sampling_ratio, aligned
        )
    n, c, height, width = features.shape
    k = boxes.shape[0]
    if k:
        require(
            bool((boxes[:, 0] >= 0).all() and (boxes[:, 0] < n).all() and (boxes[:, 0] % 1 == 0).all()),
            "boxes",
            f"column 0 must hold batch indices in [0, {n})",
        )
        require(bool(torch.isfinite(boxes).all()), "boxes", "coordinates must be finite")
    boxes = boxes.to(features.dtype)
    batch = boxes[:, 0].long()
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (boxes[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # legacy mode: boxes are at least one pixel
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    if sampling_ratio > 0:
        grids = torch.full((k, 2), sampling_ratio, dtype=torch.long, device=boxes.device)
    else:
        grids = torch.stack([torch.ceil(roi_h / out_h), torch.ceil(roi_w / out_w)], dim=1).long().clamp(min=0)
    # Pooling is linear in the features: one sparse (output bins x feature pixels) matrix holds every bilinear tap
    # with its 1 / (samples per bin) weight. Boxes sharing a sampling grid build their taps in one vectorised step.
    rows, cols, values = [], [], []
    for gh, gw in torch.unique(grids, dim=0).tolist() if k else []:
        if gh == 0 or gw == 0:
            continue  # an empty box has no samples: its output is 0, as torchvision's
        sel = torch.nonzero((grids[:, 0] == gh) & (grids[:, 1] == gw)).squeeze(1)
        r = len(sel)
        step_y = _steps(out_h, gh, boxes)  # (out_h, gh) sample offsets in bins
        step_x = _steps(out_w, gw, boxes)
        y = y1[sel, None, None] + step_y[None] * bin_h[sel, None, None]  # (r, out_h, gh)
        x = x1[sel, None, None] + step_x[None] * bin_w[sel, None, None]  # (r, out_w, gw)
        shape = (r, out_h, gh, out_w, gw)
        y = y[:, :, :, None, None].expand(shape)
        x = x[:, None, None, :, :].expand(shape)
        index, weight = _bilinear_taps(y, x, height, width)
        index = index + (batch[sel] * height * width).view(r, 1, 1, 1, 1, 1)
        out_bin = (sel * out_h * out_w).view(r, 1, 1) + torch.arange(out_h * out_w, device=sel.device).view(
            1, out_h, out_w
        )
        rows.append(out_bin[:, :, None, :, None, None].expand(*shape, 4).reshape(-1))
        cols.append(index.reshape(-1))
        values.append((weight / (gh * gw)).reshape(-1))
    flat = features.permute(0, 2, 3, 1).reshape(n * height * width, c)
    if rows:
        matrix = torch.sparse_coo_tensor(
            torch.stack([torch.cat(rows), torch.cat(cols)]),
            torch.cat(values),
            (k * out_h * out_w, n * height * width),
            check_invariants=False,  # indices are in range by construction (clamped taps, checked batch indices)
        )
        pooled = torch.sparse.mm(matrix, flat)
    else:
        pooled = flat.new_zeros((k * out_h * out_w, c))
    return pooled.view(k, out_h, out_w, c).permute(0, 3, 1, 2).contiguous()


class RoIAlign(nn.Module):
    """:func:`roi_align` as a module (the AVA head's pooler: 7x7, ``spatial_scale = 1 / 16`` on res5)."""

    def __init__(
        self,
        output_size: int | tuple[int, int] = 7,
        *,
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        aligned: bool = True,
    ):
        super().__init__()
        require(math.isfinite(spatial_scale) and spatial_scale > 0, "spatial_scale", f"must be > 0: {spatial_scale}")
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return roi_align(
            features,
            boxes,
            self.output_size,
            spatial_scale=self.spatial_scale,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
