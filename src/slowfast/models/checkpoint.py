"""This package's model checkpoint: one ``torch.save`` of plain data, readable with ``weights_only=True``.

A file holds ``{"format": "slowfast/1", "config": <SlowFastConfig as a mapping>, "state_dict": {name: tensor},
"meta": {...}}`` and nothing else: tensors, str, int, float, bool, None, lists and dicts. So a reader never runs
code from the file, and :func:`load_model` rebuilds the network from the stored config alone. Training state
(optimizer, epoch, scaler) belongs to the engine's own files; this format is about models.

An AVA detector (``slowfast.models.detector``) has the same module tree apart from its head, so its files carry
their own format string, ``slowfast-ava-detector/1``: neither loader can mistake the other's file for its own.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slowfast.config import from_mapping, to_mapping
from slowfast.models.config import SlowFastConfig
from slowfast.models.slowfast import SlowFast, build_model
from slowfast.utils.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "slowfast/1"
DETECTOR_FORMAT = "slowfast-ava-detector/1"
_LOADERS = {FORMAT: "slowfast.models.load_model", DETECTOR_FORMAT: "slowfast.models.detector.load_detector"}
_PLAIN = (str, int, float, bool, type(None))
_SHOWN = 8  # names listed per kind of mismatch; the count says how many more


def _check_plain(value: Any, key: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` could not read back (or that would hide code)."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{key}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{key}: keys must be strings, got {k!r}")
            _check_plain(item, f"{key}.{k}")
        return
    raise ValueError(f"{key}: {type(value).__name__} is not allowed; use str, int, float, bool, None, lists, dicts")


def save_model(model: SlowFast, path: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (config + weights) and ``meta`` atomically to ``path``; returns the path.

    ``meta`` is free-form provenance (``source``, ``preset``, ``converted_from``, ...) made of plain values only.
    """
    meta = dict(meta or {})
    _check_plain(meta, "meta")
    from slowfast.models.detector import AvaDetector  # the detector module builds on this one

    payload = {
        "format": DETECTOR_FORMAT if isinstance(model, AvaDetector) else FORMAT,
        "config": to_mapping(model.config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    # Through a file object the archive's inner folder is "archive", not the temporary name: equal models give
    # byte-identical files, so re-runs are no-ops for DVC.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    log.info("saved %s (%d tensors) to %s", model.config.arch, len(payload["state_dict"]), path)
    return Path(path)


def torch_load_weights_only(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)``, with refusals and unreadable files as a ValueError naming the file.

    weights_only refuses every global outside torch's small allow-list (tensors, plain containers), so a file
    carrying an arbitrary object is rejected before anything in it runs.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # Keep torch's line naming the refused global; drop its advice to retry with weights_only=False.
        lines = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "WeightsUnpickler" in line]
        reason = lines[0] if lines else "content outside tensors and plain containers"
        raise ValueError(f"{path}: refused by torch.load(weights_only=True): {reason}") from None
    except (RuntimeError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc})") from None


def read_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu", expected_format: str = FORMAT
) -> dict[str, Any]:
    """The validated contents of a file of ``expected_format``: ``format``, ``config``, ``state_dict``, ``meta``."""
    payload = torch_load_weights_only(path, map_location=map_location)
    if not isinstance(payload, dict) or "format" not in payload:
        hint = ""
        if isinstance(payload, dict) and ("model_state" in payload or "blobs" in payload):
            hint = "; it looks like a model-zoo checkpoint: convert it with `slowfast convert`"
        raise ValueError(f"{path}: not a {expected_format} checkpoint (no 'format' key){hint}")
    if payload["format"] != expected_format:
        loader = _LOADERS.get(payload["format"])
        hint = f"; load it with {loader}" if loader else ""
        raise ValueError(f"{path}: format {payload['format']!r} is not supported; allowed: {expected_format!r}{hint}")
    for key in ("config", "state_dict", "meta"):
        if not isinstance(payload.get(key), dict):
            raise ValueError(f"{path}: '{key}' must be a dict, got {type(payload.get(key)).__name__}")
    return payload


def load_model(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> SlowFast:
    """Rebuild the model stored at ``path`` from its config, load its weights strictly, return it in eval mode."""
    payload = read_checkpoint(path, map_location=map_location)
    config = from_mapping(SlowFastConfig, payload["config"], prefix="config")
    model = build_model(config)
    try:
        load_state_dict_strict(model, payload["state_dict"])
    except ValueError as exc:
        raise ValueError(f"{path}: weights do not match the stored config: {exc}") from None
    return model.eval()


def list_keys(names: list[str]) -> str:
    """``names`` in order, cut after a few, with the top-level modules they fall under."""
    modules = list(dict.fromkeys(name.split(".")[0] for name in names))
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return f"[in {', '.join(modules)}] " + ", ".join(names[:_SHOWN]) + more


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Any]) -> None:
    """Load ``state_dict`` into ``model`` only if names and shapes match exactly; never a partial load.

    Raises ValueError naming the unexpected keys, the missing keys and the mis-shaped keys (with both shapes).
    """
    own = model.state_dict()
    not_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    unexpected = [k for k in state_dict if k not in own and k not in not_tensors]
    missing = [k for k in own if k not in state_dict]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if isinstance(state_dict.get(k), torch.Tensor) and state_dict[k].shape != v.shape
    ]
    problems = [
        f"{len(names)} {label} key(s): {list_keys(names)}"
        for label, names in (
            ("non-tensor", not_tensors),
            ("unexpected", unexpected),
            ("missing", missing),
            ("mis-shaped", misshaped),
        )
        if names
    ]
    if problems:
        raise ValueError("state dict does not fit the model: " + "; ".join(problems))
    model.load_state_dict(dict(state_dict), strict=True)


def read_class_names(checkpoint: str | os.PathLike[str], num_classes: int, *,
                     classes_path: str | os.PathLike[str] | None = None) -> list[str]:
    """The class names of the model at ``checkpoint``, output ``i`` first: the one place they are read.

    In order: the names stored in the checkpoint (``meta["classes"]``, written by ``slowfast convert --classes``),
    else ``classes_path`` (default: ``classes.json`` beside the checkpoint; an MLflow model's ``classes``
    artifact), else the class indices as strings (with a warning). A list whose length is not ``num_classes`` is a
    ValueError naming the file. ``predict``, ``demo`` and the served MLflow model all call this function.
    """
    from slowfast.data.labels import read_class_file

    checkpoint = Path(checkpoint)
    payload = torch_load_weights_only(checkpoint) if checkpoint.is_file() else None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    stored = meta.get("classes") if isinstance(meta, dict) else None
    if stored is not None:
        names, source = stored, f"{checkpoint} (meta.classes)"
    else:
        path = Path(classes_path) if classes_path is not None else checkpoint.with_name("classes.json")
        if not path.is_file():
            log.warning("%s holds no class names and %s does not exist: classes are named by their index",
                        checkpoint, path)
            return [str(i) for i in range(num_classes)]
        names, source = read_class_file(path), str(path)
    if not isinstance(names, list) or len(names) != num_classes:
        length = len(names) if isinstance(names, list) else "-"
        raise ValueError(f"{source}: expected a list of {num_classes} class names (the model's outputs), "
                         f"got {type(names).__name__} of length {length}")
    return [str(c) for c in names]
