"""A compact person detector that proposes the actor boxes of AVA (paper Sec. 5, "Person detector").

The paper's proposals come from a Faster R-CNN (ResNeXt-101-FPN) fine-tuned on AVA, keeping person boxes with score
> 0.8 (93.9 AP@50; recall 91.1%, precision 90.7% at that threshold). Real-AVA users import those published boxes
(:mod:`slowfast.detection.proposals`); this module is the stand-in that trains in about a minute on two CPU cores
for the embedded synthetic AVA-like data, and is evaluated the same way (AP@0.5 by the project's AVA evaluator,
recall and precision of the boxes kept at the score threshold).

It is a single-stage, anchor-free detector in the manner of FCOS (Tian et al., ICCV 2019), on one output stride::

    image (3, H, W) ──> backbone: stages of [3×3 conv-BN-ReLU] × 2, the first of each stage strided 2 until
                        the output stride is reached, dilated (2, 4, ...) after that to keep growing the receptive field
                    ──> head: 3×3 conv-BN-ReLU ──> 1×1 conv ──> per location: objectness logit,
                                                                 (l, t, r, b) distances to the box sides

A location (the centre of an output cell) is a positive for a box when it lies inside the box and within
``center_radius`` strides of its centre ("centre sampling"); a location claimed by several boxes regresses the
smallest. Losses: sigmoid focal loss on objectness over all locations, GIoU loss on the positives' boxes, both
normalised by the number of positives. The score of a box is its location's objectness probability, so the
paper's fixed threshold (0.8) keeps its meaning; duplicates are removed by NMS. FCOS's centre-ness factor is left
out of the score: a small box's best location is rarely centred to better than half a stride, and the factor would
hold true boxes under any fixed threshold.

Trained on the AVA-like train split alone (8 movies, so 8 backgrounds) it does not generalise to unseen movies;
pre-trained on :func:`render_person_scenes` (as the paper's detector was on COCO), then fine-tuned on the split, it
does.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from slowfast.config import from_mapping, require, to_mapping
from slowfast.data.synthetic.render import Track, draw_frames, random_background, random_sprite, sprite_box
from slowfast.detection.nms import box_iou, nms
from slowfast.metrics.ava import evaluate_ava
from slowfast.models.checkpoint import torch_load_weights_only
from slowfast.utils.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "slowfast-person-detector/1"
# Frames are normalised as the video models' inputs (PySlowFast's mean 0.45, std 0.225).
_MEAN, _STD = 0.45, 0.225

ImageBatch = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class PersonDetectorConfig:
    """Architecture and inference settings of :class:`PersonDetector`.

    ``input_size`` is (height, width): every image is resized to it (boxes are normalised, so they do not change).
    ``widths`` are the backbone stages' channels; ``stride`` (a power of two, at most ``2 ** len(widths)``) is the
    output stride. ``score_threshold`` is the paper's 0.8; ``nms_iou`` the IoU above which a lower-scored box is a
    duplicate; at most ``max_detections`` boxes per image, chosen among the ``pre_nms_top_k`` best locations.
    """

    input_size: tuple[int, int] = (96, 128)
    widths: tuple[int, ...] = (16, 32, 32)
    stride: int = 4
    head_width: int = 32
    center_radius: float = 1.5
    score_threshold: float = 0.8
    nms_iou: float = 0.5
    max_detections: int = 50
    pre_nms_top_k: int = 200

    def __post_init__(self) -> None:
        require(
            len(self.input_size) == 2 and min(self.input_size) >= 16,
            "input_size",
            f"must be (height, width) with both >= 16, got {self.input_size!r}",
        )
        require(len(self.widths) >= 1 and min(self.widths) >= 1, "widths", "must be one or more positive channels")
        require(
            self.stride >= 2 and self.stride & (self.stride - 1) == 0 and self.stride <= 2 ** len(self.widths),
            "stride",
            f"must be a power of two in [2, {2 ** len(self.widths)}] (2 ** number of stages), got {self.stride}",
        )
        require(
            all(size % self.stride == 0 for size in self.input_size),
            "input_size",
            f"both sides must be multiples of stride {self.stride}, got {self.input_size!r}",
        )
        require(self.head_width >= 1, "head_width", f"must be >= 1, got {self.head_width}")
        require(self.center_radius > 0, "center_radius", f"must be > 0, got {self.center_radius}")
        require(0.0 <= self.score_threshold < 1.0, "score_threshold", f"must be in [0, 1), got {self.score_threshold}")
        require(0.0 < self.nms_iou <= 1.0, "nms_iou", f"must be in (0, 1], got {self.nms_iou}")
        require(self.max_detections >= 1, "max_detections", f"must be >= 1, got {self.max_detections}")
        require(
            self.pre_nms_top_k >= self.max_detections,
            "pre_nms_top_k",
            f"must be >= max_detections ({self.max_detections}), got {self.pre_nms_top_k}",
        )


@dataclass(frozen=True)
class PersonTrainConfig:
    """Optimisation of :func:`train_person_detector`: AdamW, linear warm-up then half-period cosine decay.

    Augmentation: horizontal flip with probability 0.5 (``flip``) and a random zoom in ``scale_jitter`` (< 1 zooms
    out, padding with black) with a random placement; boxes left less than ``min_visible`` inside are dropped.
    ``focal_alpha`` / ``focal_gamma`` are the focal loss's. The defaults (0.5, 0) make it plain binary
    cross-entropy: focusing (gamma > 0) ranks as well but pulls true persons' scores below the paper's fixed 0.8
    threshold (on the synthetic data, gamma 1 cut recall at 0.8 from ~0.83 to ~0.74 at equal AP).
    ``box_weight`` weighs the GIoU loss.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    flip: bool = True
    scale_jitter: tuple[float, float] = (0.8, 1.25)
    min_visible: float = 0.4
    focal_alpha: float = 0.5
    focal_gamma: float = 0.0
    box_weight: float = 1.0

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")
        low, high = self.scale_jitter
        require(0.0 < low <= high, "scale_jitter", f"must be (low, high) with 0 < low <= high, got {self.scale_jitter}")
        require(0.0 < self.min_visible <= 1.0, "min_visible", f"must be in (0, 1], got {self.min_visible}")
        require(0.0 < self.focal_alpha < 1.0, "focal_alpha", f"must be in (0, 1), got {self.focal_alpha}")
        require(self.focal_gamma >= 0, "focal_gamma", f"must be >= 0, got {self.focal_gamma}")
        require(self.box_weight > 0, "box_weight", f"must be > 0, got {self.box_weight}")


def _conv_bn_relu(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PersonDetector(nn.Module):
    """Backbone + head of the module docstring; ``forward`` gives per-location objectness logits and boxes."""

    def __init__(self, config: PersonDetectorConfig):
        super().__init__()
        self.config = config
        strided = int(math.log2(config.stride))
        stages, cin = [], 3
        for i, width in enumerate(config.widths):
            if i < strided:
                first = _conv_bn_relu(cin, width, stride=2)
                dilation = 1
            else:
                dilation = 2 ** (i - strided + 1)
                first = _conv_bn_relu(cin, width, dilation=dilation)
            stages.append(nn.Sequential(first, _conv_bn_relu(width, width, dilation=dilation)))
            cin = width
        self.backbone = nn.Sequential(*stages)
        self.head = _conv_bn_relu(cin, config.head_width)
        self.objectness = nn.Conv2d(config.head_width, 1, 1)
        self.box = nn.Conv2d(config.head_width, 4, 1)
        # Focal-loss prior (Lin et al. 2017): every location starts as background with probability 0.99.
        nn.init.constant_(self.objectness.bias, -math.log(99.0))
        nn.init.normal_(self.box.weight, std=0.01)
        nn.init.constant_(self.box.bias, math.log(2.0))

    def locations(self, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
        """(L, 2) pixel (x, y) centres of the output cells for an input of ``height`` × ``width``, row-major."""
        s = self.config.stride
        ys = (torch.arange(height // s, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(width // s, device=device, dtype=torch.float32) + 0.5) * s
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: normalised (N, 3, H, W). Returns objectness logits (N, L) and (l, t, r, b) pixels (N, L, 4)."""
        features = self.head(self.backbone(x))
        logits = self.objectness(features).flatten(1)
        # exp keeps distances positive; clamp keeps an early, wild step from overflowing.
        ltrb = torch.exp(self.box(features).clamp(max=8.0)) * self.config.stride
        return logits, ltrb.flatten(2).transpose(1, 2)


def build_person_detector(config: PersonDetectorConfig | None = None) -> PersonDetector:
    """The detector of ``config`` (defaults if None), freshly initialised from torch's global generator."""
    return PersonDetector(config or PersonDetectorConfig())


# ---------------------------------------------------------------------------------------------------------------
# Inputs and targets.


def _prepare_images(images: ImageBatch, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> normalised float (N, 3, *size), resized bilinearly."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images: expected uint8 (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return (x - _MEAN) / _STD


def _pad_boxes(boxes: Sequence[np.ndarray], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (K_i, 4) normalised boxes -> (N, K, 4) float and a (N, K) validity mask."""
    if len(boxes) != n:
        raise ValueError(f"boxes: expected one array per image ({n}), got {len(boxes)}")
    arrays = [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in boxes]
    for i, b in enumerate(arrays):
        if b.size and (not np.isfinite(b).all() or (b < 0).any() or (b > 1).any() or (b[:, 2:] < b[:, :2]).any()):
            raise ValueError(f"boxes[{i}]: boxes must be normalised x1, y1, x2, y2 in [0, 1] with x1 <= x2, y1 <= y2")
    k = max([len(b) for b in arrays] + [1])
    padded = torch.zeros(n, k, 4)
    valid = torch.zeros(n, k, dtype=torch.bool)
    for i, b in enumerate(arrays):
        padded[i, : len(b)] = torch.from_numpy(b)
        valid[i, : len(b)] = True
    return padded, valid


def _augment(
    x: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, config: PersonTrainConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random zoom, placement and horizontal flip of a batch in one ``grid_sample``; boxes follow.

    In normalised coordinates u in [-1, 1], output u maps to input ``flip / scale * u + shift``; a box side maps back
    by the inverse. Boxes less than ``min_visible`` inside the new frame are dropped (they no longer look like one).
    """
    n = x.shape[0]
    low, high = config.scale_jitter
    scale = torch.exp(torch.empty(n).uniform_(math.log(low), math.log(high), generator=generator))
    room = (1.0 - 1.0 / scale).abs()
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * room[:, None]
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if config.flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Padding with the normalised value of black, as a zoomed-out camera frame would show.
    out = F.grid_sample(x + _MEAN / _STD, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out - _MEAN / _STD

    u = boxes * 2 - 1  # (N, K, 4) as x1, y1, x2, y2
    ux = (u[..., 0::2] - shift[:, None, 0:1]) * (scale * flip)[:, None, None]
    uy = (u[..., 1::2] - shift[:, None, 1:2]) * scale[:, None, None]
    ux = torch.sort(ux, dim=-1).values  # a flip swaps the left and right sides
    moved = torch.stack([ux[..., 0], uy[..., 0], ux[..., 1], uy[..., 1]], dim=-1) * 0.5 + 0.5
    clipped = moved.clamp(0.0, 1.0)
    visible = _area(clipped) >= config.min_visible * _area(moved).clamp(min=1e-12)
    return out, clipped, valid & visible & (_area(clipped) > 0)


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _targets(
    locations: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, config: PersonDetectorConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS assignment with centre sampling: (N, L) positive mask and (N, L, 4) target distances in pixels.

    ``boxes`` (N, K, 4) are in pixels. A location is a candidate for a box if it is inside it and within
    ``center_radius`` strides of its centre; among candidate boxes the smallest wins.
    """
    cx, cy = locations[:, 0], locations[:, 1]  # (L,)
    x1, y1, x2, y2 = (boxes[..., i, None] for i in range(4))  # (N, K, 1)
    ltrb = torch.stack([cx - x1, cy - y1, x2 - cx, y2 - cy], dim=-1)  # (N, K, L, 4)
    radius = config.center_radius * config.stride
    near = ((cx - (x1 + x2) / 2).abs() < radius) & ((cy - (y1 + y2) / 2).abs() < radius)
    candidate = (ltrb.min(dim=-1).values > 0) & near & valid[..., None]
    area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)
    area = torch.where(candidate, area, torch.full_like(area, math.inf))
    smallest, owner = area.min(dim=1)  # (N, L)
    index = owner[:, None, :, None].expand(-1, 1, -1, 4)
    return torch.isfinite(smallest), torch.gather(ltrb, 1, index).squeeze(1)


def _giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − GIoU of boxes given as (l, t, r, b) distances from the same point (Rezatofighi et al., CVPR 2019)."""
    area_p = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    area_t = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    inner = torch.minimum(pred, target)
    outer = torch.maximum(pred, target)
    intersection = (inner[:, 0] + inner[:, 2]) * (inner[:, 1] + inner[:, 3])
    union = area_p + area_t - intersection
    enclosing = (outer[:, 0] + outer[:, 2]) * (outer[:, 1] + outer[:, 3])
    giou = intersection / union - (enclosing - union) / enclosing
    return 1.0 - giou


def detection_loss(
    model: PersonDetector, x: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, config: PersonTrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal objectness loss + weighted GIoU box loss of a batch (``boxes`` normalised, (N, K, 4))."""
    logits, ltrb = model(x)
    height, width = x.shape[-2:]
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype)
    positive, target = _targets(model.locations(height, width), boxes * scale, valid, model.config)
    num_pos = max(float(positive.sum()), 1.0)
    objectness = sigmoid_focal_loss(logits, positive.float(), config.focal_alpha, config.focal_gamma)
    objectness = objectness.sum() / num_pos
    box = _giou_loss(ltrb[positive], target[positive]).sum() / num_pos
    total = objectness + config.box_weight * box
    return total, {"objectness": objectness.item(), "box": box.item()}


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise sigmoid focal loss (Lin et al., ICCV 2017): ``-α_t (1 - p_t)^γ log p_t``."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * ce


def render_person_scenes(
    n: int, *, seed: int, height: int, width: int, actors: tuple[int, int] = (1, 3)
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``n`` still frames in the look of the synthetic AVA-like movies, with every actor's visible box.

    Each frame has its own random background and ``actors`` (inclusive range) random sprites at random places,
    sizes and angles, drawn by :mod:`slowfast.data.synthetic.render`. They play the part COCO plays for the paper's
    detector (pre-trained there, fine-tuned on AVA): the AVA-like train split has a handful of movies, i.e. a
    handful of backgrounds, too few to learn what an actor looks like on an unseen one. Returns uint8
    (n, height, width, 3) frames and per frame a (K, 4) array of normalised x1, y1, x2, y2.
    """
    require(n >= 1, "n", f"must be >= 1, got {n}")
    require(1 <= actors[0] <= actors[1], "actors", f"must be (low, high) with 1 <= low <= high, got {actors}")
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for _ in range(n):
        background = random_background(rng, height, width)
        tracks = []
        for _ in range(int(rng.integers(actors[0], actors[1] + 1))):
            sprite = random_sprite(rng, short_side=min(height, width), background=background)
            centre = rng.uniform(0.15, 0.85, size=2) * (width, height)  # mostly inside, as the movies' actors
            pose = [*centre, rng.uniform(-0.3, 0.3), rng.uniform(0.0, 2 * math.pi)]
            tracks.append(Track(sprite, np.array([pose])))
        images.append(next(draw_frames(background, tracks, 1)))
        visible = [sprite_box(track, 0, height, width) for track in tracks]
        boxes.append(np.array([b for b in visible if b is not None], dtype=np.float32).reshape(-1, 4))
    return np.stack(images), boxes


# ---------------------------------------------------------------------------------------------------------------
# Training and inference.


def train_person_detector(
    model: PersonDetector,
    images: ImageBatch,
    boxes: Sequence[np.ndarray],
    config: PersonTrainConfig,
    *,
    seed: int,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> PersonDetector:
    """Train ``model`` in place on ``images`` (uint8 (N, H, W, 3)) with their person ``boxes`` (per image a (K, 4)
    array of normalised x1, y1, x2, y2; K may be 0); returns it in eval mode.

    Deterministic given the model's initial weights and ``seed``: batch order and augmentation are drawn from a
    ``torch.Generator`` seeded with it. ``on_epoch_end(epoch, losses)`` gets the epoch's mean losses.
    """
    x_all = _prepare_images(images, model.config.input_size)
    boxes_all, valid_all = _pad_boxes(boxes, x_all.shape[0])
    generator = torch.Generator().manual_seed(seed)
    n = x_all.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, round(config.warmup_fraction * total))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total)),
    )
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        sums: dict[str, float] = {}
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            x, b, v = _augment(x_all[index], boxes_all[index], valid_all[index], config, generator)
            loss, parts = detection_loss(model, x, b, v, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            for key, value in {"loss": loss.item(), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value * len(index) / n
        log.debug("person detector epoch %d: %s", epoch, sums)
        if on_epoch_end is not None:
            on_epoch_end(epoch, sums)
    return model.eval()


@torch.no_grad()
def detect_persons(
    model: PersonDetector,
    images: ImageBatch,
    *,
    score_threshold: float | None = None,
    batch_size: int = 32,
) -> list[np.ndarray]:
    """Person boxes of each image as a (K, 5) float32 array ``[x1, y1, x2, y2, score]`` (normalised, by decreasing
    score): locations scoring above ``score_threshold`` (default: the config's 0.8), NMS at ``config.nms_iou``,
    at most ``config.max_detections``."""
    config = model.config
    threshold = config.score_threshold if score_threshold is None else score_threshold
    require(0.0 <= threshold < 1.0, "score_threshold", f"must be in [0, 1), got {threshold}")
    require(batch_size >= 1, "batch_size", f"must be >= 1, got {batch_size}")
    height, width = config.input_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    was_training = model.training
    model.eval()
    results = []
    for start in range(0, len(images), batch_size):
        x = _prepare_images(images[start : start + batch_size], config.input_size)
        logits, ltrb = model(x)
        locations = model.locations(height, width)
        corners = torch.cat([locations - ltrb[..., :2], locations + ltrb[..., 2:]], dim=-1) / scale
        for scores, boxes in zip(torch.sigmoid(logits), corners.clamp(0.0, 1.0)):
            keep = torch.nonzero(scores > threshold).squeeze(1)
            keep = keep[scores[keep].argsort(descending=True)[: config.pre_nms_top_k]]
            kept = keep[nms(boxes[keep], scores[keep], config.nms_iou)[: config.max_detections]]
            results.append(torch.cat([boxes[kept], scores[kept, None]], dim=1).numpy().astype(np.float32))
    model.train(was_training)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Evaluation.


def person_detection_metrics(
    detections: Sequence[np.ndarray],
    groundtruth: Sequence[np.ndarray],
    *,
    iou: float = 0.5,
    score_threshold: float = 0.8,
) -> dict[str, float]:
    """AP@``iou`` of all ``detections`` and recall / precision of those scoring above ``score_threshold``.

    ``detections[i]`` is image i's (K, 5) ``[x1, y1, x2, y2, score]``, ``groundtruth[i]`` its (M, 4) boxes. AP is
    the AVA evaluator's (:func:`slowfast.metrics.ava.evaluate_ava`, one class "person", no per-image cap), so the
    project has a single AP implementation; recall and precision use the same matching rule (by decreasing score,
    each box takes its highest-IoU ground truth and is a true positive if that IoU reaches ``iou`` and it was free).
    """
    require(len(detections) == len(groundtruth), "detections", "needs one array per ground-truth image")
    require(0.0 < iou <= 1.0, "iou", f"must be in (0, 1], got {iou}")
    dets = [np.asarray(d, dtype=np.float64).reshape(-1, 5) for d in detections]
    gts = [np.asarray(g, dtype=np.float64).reshape(-1, 4) for g in groundtruth]

    def frame(arrays: list[np.ndarray], last: str) -> pd.DataFrame:
        image = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
        rows = np.concatenate(arrays) if arrays else np.zeros((0, 5 if last == "score" else 4))
        df = pd.DataFrame({"video_id": "image", "timestamp": image.astype(np.int64)})
        for i, column in enumerate(("x1", "y1", "x2", "y2")):
            df[column] = rows[:, i] if len(rows) else np.zeros(0)
        df["action_id"] = 1
        df[last] = rows[:, 4] if last == "score" else np.arange(len(rows))
        return df

    result = evaluate_ava(frame(gts, "person_id"), frame(dets, "score"), {1: "person"}, max_per_keyframe=0, iou=iou)
    true_positives = kept_total = 0
    for det, gt in zip(dets, gts):
        det = det[det[:, 4] > score_threshold]
        det = det[np.argsort(-det[:, 4], kind="stable")]
        kept_total += len(det)
        if not len(det) or not len(gt):
            continue
        overlaps = torch.nan_to_num(box_iou(torch.from_numpy(det[:, :4]), torch.from_numpy(gt))).numpy()
        taken = np.zeros(len(gt), dtype=bool)
        for row in overlaps:
            best = int(np.argmax(row))
            if row[best] >= iou and not taken[best]:
                taken[best] = True
        true_positives += int(taken.sum())
    num_gt = sum(len(g) for g in gts)
    return {
        f"ap{round(iou * 100)}": float(result.map),
        "recall": true_positives / num_gt if num_gt else math.nan,
        "precision": true_positives / kept_total if kept_total else math.nan,
        "num_groundtruth": float(num_gt),
        "num_detections": float(kept_total),
    }


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints.


def save_person_detector(model: PersonDetector, path: str | os.PathLike[str]) -> Path:
    """Write ``{"format", "config", "state_dict"}`` (plain data and tensors) atomically; returns the path."""
    payload = {
        "format": FORMAT,
        "config": to_mapping(model.config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    # Through a file object the archive's inner folder is "archive", not the random temporary name: the same
    # weights give a byte-identical file, run after run.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    return Path(path)


def load_person_detector(path: str | os.PathLike[str]) -> PersonDetector:
    """Rebuild a detector from :func:`save_person_detector`'s file, read with ``torch.load(weights_only=True)``."""
    payload = torch_load_weights_only(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a person-detector checkpoint (expected format {FORMAT!r})")
    model = build_person_detector(from_mapping(PersonDetectorConfig, payload["config"], prefix="config"))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the stored config: {exc}") from None
    return model.eval()
