"""Non-maximum suppression in plain PyTorch, with torchvision's semantics (used on person boxes before AVA action
classification and on the detector's outputs).

Boxes are (x1, y1, x2, y2) with areas without a +1; a box is suppressed by an earlier-kept box whose IoU with it is
strictly greater than ``iou_threshold``. The kept indices come sorted by decreasing score (stable on ties). When
torchvision is installed its compiled operator is used instead.
"""

from __future__ import annotations

import torch

from slowfast.config import require

try:  # pragma: no cover - torchvision is not a dependency
    from torchvision.ops import batched_nms as _torchvision_batched_nms
    from torchvision.ops import nms as _torchvision_nms
except Exception:  # noqa: BLE001 - absent, or built for another torch
    _torchvision_nms = _torchvision_batched_nms = None


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU (K1, K2) of (x1, y1, x2, y2) boxes; 0 (not NaN, unlike torchvision) for two empty boxes."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))


def _check(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    require(boxes.dim() == 2 and boxes.shape[1] == 4, "boxes", f"must be (K, 4), got shape {tuple(boxes.shape)}")
    require(scores.shape == boxes.shape[:1], "scores", f"must be ({boxes.shape[0]},), got {tuple(scores.shape)}")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes kept by greedy NMS, by decreasing score."""
    _check(boxes, scores)
    if _torchvision_nms is not None:  # pragma: no cover
        return _torchvision_nms(boxes, scores, iou_threshold)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    # One row of IoUs per kept box, against the lower-scored boxes only: O(K) memory.
    for i in range(len(order)):
        if not suppressed[i]:
            suppressed[i + 1 :] |= box_iou(ranked[i : i + 1], ranked[i + 1 :])[0] > iou_threshold
    return order[~suppressed]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS within each category of ``idxs`` independently; kept indices by decreasing score."""
    _check(boxes, scores)
    require(idxs.shape == scores.shape, "idxs", f"must be ({boxes.shape[0]},), got {tuple(idxs.shape)}")
    if _torchvision_batched_nms is not None:  # pragma: no cover
        return _torchvision_batched_nms(boxes, scores, idxs, iou_threshold)
    keep = torch.zeros(len(scores), dtype=torch.bool)
    for category in torch.unique(idxs):
        members = torch.nonzero(idxs == category).squeeze(1)
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.nonzero(keep).squeeze(1)
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]
