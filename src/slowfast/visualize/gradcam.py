"""Grad-CAM (Selvaraju et al., ICCV 2017) of a SlowFast network, one map per pathway.

For the res5 feature map ``A`` (C, T', H', W') of each pathway and a target logit ``y`` (the top class; for the AVA
detector the sum of each box's top-class logit), the map at time step t is ``relu(Σ_c w_ct A_ct)`` with
``w_ct = mean_{h,w} ∂y/∂A_cthw``: weights per channel *and time step*, as PySlowFast's visualiser computes them, so a
pathway that sees an action only in some frames lights up only there. Each map is resized (trilinear) to its
pathway's input (frames × height × width) and scaled to [0, 1] by its own maximum, so the Slow and Fast panels show
where each pathway looks, not which one looks harder. The model's weights and mode are left as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GradCam(NamedTuple):
    maps: list[Tensor]  # per pathway (Slow first): (N, T_p, H, W) in [0, 1]
    scores: Tensor  # the model's output for the inputs (eval mode), detached


def grad_cam(model: nn.Module, inputs: Sequence[Tensor], *, target: int | Sequence[int] | None = None,
             boxes: Tensor | None = None) -> GradCam:
    """Grad-CAM maps ``(N, T_p, H, W)`` in [0, 1], one per pathway of ``inputs`` (Slow first), for ``target``, and
    the model's scores (one forward and one backward pass).

    ``model`` is a :class:`~slowfast.models.slowfast.SlowFast` (``boxes`` None) or an
    :class:`~slowfast.models.detector.AvaDetector` (``boxes`` (K, 5) as its forward takes them). ``target`` is a
    class index (or one per clip / per box); default: each clip's (each box's) best class.
    """
    was_training = model.training
    model.eval()
    head = model.head
    # The target is the class's logit (a sigmoid score of 1.00 has no gradient left): the head in training mode
    # returns logits, and its dropout stays in eval mode so that nothing is random.
    head.train()
    head.dropout.eval()
    try:
        with torch.enable_grad():
            inputs = [x.detach() for x in inputs]
            features = model.forward_features(inputs)
            for f in features:
                f.retain_grad()
            logits = model.forward_head(features) if boxes is None else model.forward_head(features, boxes)
            if target is None:
                index = logits.argmax(dim=1)
            else:
                index = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(logits.shape[0])
            logits.gather(1, index[:, None]).sum().backward()
    finally:
        model.train(was_training)
    model.zero_grad(set_to_none=True)
    # what the model returns in eval mode: sigmoids for a multi-label classifier and for the AVA detector's RoI head
    scores = torch.sigmoid(logits) if getattr(head, "multilabel", True) else logits
    maps = []
    for x, f in zip(inputs, features):
        weights = f.grad.mean(dim=(3, 4), keepdim=True)  # (N, C, T', 1, 1)
        cam = F.relu((weights * f.detach()).sum(dim=1, keepdim=True))  # (N, 1, T', H', W')
        cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        maps.append(cam / peak)
    return GradCam(maps, scores.detach())
