"""Initialising a model for a new task from a pretrained one: the backbone is copied, the head is new.

Fine-tuning (Sec. 6, Charades) and the AVA detector (Sec. 5) start from the Kinetics model this way: every backbone
weight of the stored classifier must fit the new model exactly, only the classification head (``head.*``) is left
out, and the stored architecture must equal the new one apart from the fields that only shape the head.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from torch import nn

from slowfast.config import from_mapping
from slowfast.models.checkpoint import load_state_dict_strict, read_checkpoint
from slowfast.models.config import SlowFastConfig

log = logging.getLogger(__name__)

#: config fields that may differ between a pretrained classifier and a model initialised from it
HEAD_FIELDS = ("num_classes", "dropout", "multilabel", "res5_dilation", "zero_init_residual")


def load_backbone(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Copy every weight of the classifier stored at ``path`` into ``model`` except its head (``head.*``).

    Strict: a missing, unexpected or mis-shaped backbone key, or a stored architecture that differs from
    ``model.config`` outside :data:`HEAD_FIELDS`, is a ValueError naming them. Returns ``model``.
    """
    payload = read_checkpoint(path)
    stored = from_mapping(SlowFastConfig, payload["config"], prefix="config")
    wanted: SlowFastConfig = model.config
    backbone = {k: v for k, v in payload["state_dict"].items() if not k.startswith("head.")}
    fresh_head = {k: v for k, v in model.state_dict().items() if k.startswith("head.")}
    try:
        load_state_dict_strict(model, {**backbone, **fresh_head})
    except ValueError as exc:
        raise ValueError(f"{path}: not a backbone for this model: {exc}") from None
    # Same shapes can still be another network (e.g. another α: the lateral strides would silently differ).
    differences = [f"{f.name}={getattr(stored, f.name)!r} (wanted {getattr(wanted, f.name)!r})"
                   for f in dataclasses.fields(SlowFastConfig)
                   if f.name not in HEAD_FIELDS and getattr(stored, f.name) != getattr(wanted, f.name)]
    if differences:
        raise ValueError(f"{path}: was trained with another architecture: {'; '.join(differences)}")
    log.info("initialised %s from the backbone in %s (new head)", type(model).__name__, path)
    return model
