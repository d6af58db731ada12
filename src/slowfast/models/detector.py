"""The AVA action detector of Sec. 5 of the paper: a SlowFast backbone with a RoI head scoring person boxes.

::

    Slow res5 (N, C_s, T, H/16, W/16)  ─ mean over T  ─ RoIAlign 7×7 ─ max over 7×7 ─┐
                                                                                     concat → dropout → fc
    Fast res5 (N, C_f, αT, H/16, W/16) ─ mean over αT ─ RoIAlign 7×7 ─ max over 7×7 ─┘    → (K, classes)

Sec. 5, "Detection architecture": res5 with spatial stride 1 and dilation 2 ("increases the spatial resolution of
res5 by 2×"); each box replicated along time into a 3D RoI; "RoI features by RoIAlign spatially, and global average
pooling temporally", "then max-pooled and fed to a per-class, sigmoid-based classifier". The geometry follows
PySlowFast's ``ResNetRoIHead`` for AVA: temporal average pooling over the whole res5 clip, RoIAlign of resolution 7
with ``sampling_ratio=0`` and ``aligned=True`` at ``spatial_scale = 1/16``, a 7×7 spatial max pool, dropout 0.5.
Scores are sigmoids in eval mode (multi-label); training returns logits for a ``BCEWithLogits`` loss (PySlowFast
applies the sigmoid in training too and uses BCE on probabilities: the same loss, less stable numerically).

The detector is a :class:`~slowfast.models.slowfast.SlowFast` whose ``head`` is the RoI head: its module tree and
state-dict names are the classifier's (``slow``, ``fast``, ``fuse_*``, ``head.fc``), so a Kinetics checkpoint
initialises everything but the head (:func:`detector_from_pretrained`). ``checkpoint.save_model(detector, path)``
writes a detector in the ``slowfast-ava-detector/1`` format; :func:`load_detector` reads it back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from slowfast.config import ConfigError, from_mapping, require
from slowfast.detection.roi_align import RoIAlign

from .checkpoint import DETECTOR_FORMAT, load_state_dict_strict, read_checkpoint
from .config import SlowFastConfig
from .slowfast import FC_INIT_STD, SlowFast
from .transfer import load_backbone

log = logging.getLogger(__name__)

#: RoIAlign output size (PySlowFast ``DETECTION.ROI_XFORM_RESOLUTION``); the spatial max pool covers all of it.
ROI_RESOLUTION = 7
#: stride of the res5 map in input pixels with res5 dilation 2 (conv1 2 · pool1 2 · res3 2 · res4 2).
RES5_STRIDE = 16
#: config fields that belong to the head or to initialisation, free to differ from the pretrained model's.


class RoIHead(nn.Module):
    """Per pathway: temporal mean, RoIAlign 7×7, spatial max; then concat, dropout, fc (Sec. 5).

    ``strides`` are each pathway's res5 stride in input pixels (boxes are in input pixels).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, *, strides: Sequence[int], dropout: float):
        super().__init__()
        self.rois = nn.ModuleList(
            RoIAlign(ROI_RESOLUTION, spatial_scale=1.0 / s, sampling_ratio=0, aligned=True) for s in strides)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(sum(in_channels), num_classes)
        nn.init.normal_(self.fc.weight, std=FC_INIT_STD)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Sequence[Tensor], boxes: Tensor) -> Tensor:
        # The mean over all frames is PySlowFast's AvgPool3d((T, 1, 1)) on a T-frame res5 map.
        pooled = [roi(f.mean(dim=2), boxes).amax(dim=(2, 3)) for roi, f in zip(self.rois, features)]
        logits = self.fc(self.dropout(torch.cat(pooled, dim=1)))
        return logits if self.training else torch.sigmoid(logits)


class AvaDetector(SlowFast):
    """SlowFast (or Slow-only / Fast-only) backbone with dilated res5 and the RoI head of Sec. 5.

    ``forward(inputs, boxes)``: ``inputs`` as for the classifier (list of pathway tensors, Slow first), ``boxes``
    (K, 5) = [batch index, x1, y1, x2, y2] in input pixels (``ava_collate``'s layout); returns (K, num_classes):
    logits in training mode, per-class sigmoid scores in eval mode.
    """

    def __init__(self, config: SlowFastConfig):
        require(config.res5_dilation == 2, "res5_dilation",
                f"the AVA detector pools RoIs from res5 at stride 16 (Sec. 5): needs 2, got {config.res5_dilation}")
        require(config.multilabel, "multilabel", "AVA actions are multi-label (per-class sigmoid): needs true")
        super().__init__(config)
        names = config.pathways
        self.head = RoIHead([getattr(self, p).out_channels for p in names], config.num_classes,
                            strides=[self.res5_stride(p) for p in names], dropout=config.dropout)

    def res5_stride(self, pathway: str) -> int:
        """Input pixels per res5 cell: 16, or 32 for a Fast pathway fed half-resolution frames (Table 5c)."""
        half = pathway == "fast" and self.config.fast_input == "half_res"
        return RES5_STRIDE * (2 if half else 1)

    def forward_head(self, features: Sequence[Tensor], boxes: Tensor) -> Tensor:  # type: ignore[override]
        return self.head(features, boxes)

    def forward(self, inputs: Sequence[Tensor], boxes: Tensor) -> Tensor:  # type: ignore[override]
        # Checked before the backbone runs (RoIAlign checks again, but only after all of it).
        n = inputs[0].shape[0] if isinstance(inputs, (list, tuple)) and inputs else 0
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes must be (K, 5) = [batch index, x1, y1, x2, y2], got {tuple(boxes.shape)}")
        if not bool(((boxes[:, 0] >= 0) & (boxes[:, 0] < n)).all()):
            raise ValueError(f"boxes[:, 0] must be batch indices in [0, {n}) for a batch of {n} clip(s)")
        return self.forward_head(self.forward_features(inputs), boxes)


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError("num_classes", f"must be an integer >= 1, got {num_classes!r}")


def build_detector(config: SlowFastConfig, num_classes: int) -> AvaDetector:
    """A freshly initialised detector of ``config``'s architecture: res5 dilation 2, multi-label, ``num_classes``."""
    _check_num_classes(num_classes)
    return AvaDetector(dataclasses.replace(config, res5_dilation=2, multilabel=True, num_classes=num_classes))


def detector_from_pretrained(model_path: str | os.PathLike[str], num_classes: int, *,
                             config: SlowFastConfig | None = None) -> AvaDetector:
    """A detector whose backbone is the classifier stored at ``model_path`` (a ``slowfast/1`` file: the pretrain
    stage's model.pt) and whose head is new (fc normal std 0.01, bias 0); the classifier's ``head.fc`` is dropped.

    ``config`` is the architecture the detector must have (e.g. the AVA stage's preset; default: the stored one);
    a checkpoint of another architecture is refused, naming its mismatched keys or fields
    (:func:`slowfast.models.transfer.load_backbone`; dilation does not change weight shapes).
    """
    _check_num_classes(num_classes)
    if config is None:
        config = from_mapping(SlowFastConfig, read_checkpoint(model_path)["config"], prefix="config")
    detector = build_detector(config, num_classes)
    load_backbone(detector, model_path)
    return detector


def load_detector(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> AvaDetector:
    """Rebuild the detector stored at ``path`` (weights_only load, strict keys), in eval mode."""
    payload = read_checkpoint(path, map_location=map_location, expected_format=DETECTOR_FORMAT)
    detector = AvaDetector(from_mapping(SlowFastConfig, payload["config"], prefix="config"))
    try:
        load_state_dict_strict(detector, payload["state_dict"])
    except ValueError as exc:
        raise ValueError(f"{path}: weights do not match the stored config: {exc}") from None
    return detector.eval()
