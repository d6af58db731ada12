"""``slowfast params``: write ``params.yaml`` for a real dataset with the paper's recipe, scaled to your GPUs.

The recipes live in ``params/<dataset>.yaml``: fragments of ``params.yaml`` holding the paper's numbers *at the
paper's batch size*, plus a ``_recipe`` block (read here, never written out) naming, per training section, the
batch those numbers are for::

    slowfast params params/kinetics400.yaml params/charades.yaml params/ava.yaml --gpus 8

deep-merges the fragments, in order, onto the current ``params.yaml`` (later ones win; ``--set key=value`` last),
applies the linear scaling rule (Goyal et al., the paper's reference [19]) to every section of ``_recipe`` for the
global batch ``gpus × batch_size × accumulate``: learning rate ``base_lr · B / B_ref``, run length, warm-up,
``lr_steps`` and ``checkpoint_every`` (all in iterations) ``· B_ref / B``, so that the schedule covers the same
epochs. Kinetics pretraining runs 256 epochs for T ≤ 4 and 196 for T > 4 (Sec. 5, "Implementation details"): its
``_recipe`` gives both, and the preset's T picks one. The result is validated like any ``params.yaml``
(:func:`slowfast.params.load_params`) and written atomically, so ``dvc repro`` / ``dvc exp run`` then run it and
``dvc params diff`` shows what changed.

Why a command that writes ``params.yaml`` rather than ``dvc exp run -S`` lists: ``dvc.yaml`` reads every number
from ``params.yaml``, and a switch to real data changes ~40 keys across six sections plus values that depend on the
GPU count; one reviewed, committed file is what DVC tracks and compares, and a ``-S`` list that long is not.
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path
from typing import Any

import yaml

from slowfast.config import ConfigError, from_mapping

log = logging.getLogger(__name__)

RECIPE_KEY = "_recipe"
_SCALED_BY_INVERSE = ("iterations", "warmup", "checkpoint_every")


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay``'s values; mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _get(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(dotted, "not found in the merged params")
        node = node[part]
    return node


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"{part!r} is not a section")
    node[parts[-1]] = value


def _slow_frames(raw: dict[str, Any]) -> int:
    from slowfast.params import ModelParams

    model = from_mapping(ModelParams, raw.get("model", {}), prefix="model")
    return model.config(1).slow_frames


def scale_section(train: dict[str, Any], rule: dict[str, Any], *, gpus: int, slow_frames: int, key: str
                  ) -> dict[str, Any]:
    """One training section at the global batch of ``gpus`` devices (see the module docstring)."""
    ref = rule.get("reference_batch")
    if not isinstance(ref, int) or ref < 1:
        raise ConfigError(f"{RECIPE_KEY}.{key}.reference_batch", f"must be an integer >= 1, got {ref!r}")
    batch = gpus * int(train.get("batch_size", 8)) * int(train.get("accumulate", 1))
    factor = batch / ref
    out = dict(train)
    out["base_lr"] = float(f"{train['base_lr'] * factor:.6g}")
    if "epochs_by_t" in rule:  # Kinetics: the run length follows from epochs over the training videos
        videos = rule.get("train_videos")
        if not isinstance(videos, int) or videos < 1:
            raise ConfigError(f"{RECIPE_KEY}.{key}.train_videos", f"must be an integer >= 1, got {videos!r}")
        epochs = rule["epochs_by_t"]["t_le_4" if slow_frames <= 4 else "t_gt_4"]
        out.pop("epochs", None)
        out["iterations"] = max(1, round(epochs * videos / batch))
        reference_iterations = round(epochs * videos / ref)
    else:
        reference_iterations = train["iterations"]
        out["iterations"] = max(1, round(train["iterations"] / factor))
    for name in _SCALED_BY_INVERSE[1:]:
        if train.get(name):
            out[name] = max(1, round(train[name] / factor))
    if train.get("lr_steps"):
        out["lr_steps"] = [max(1, round(s / factor)) for s in train["lr_steps"]]
    log.info("%s: global batch %d (reference %d): base_lr %.4g, %d iterations (%d at the reference batch)",
             key, batch, ref, out["base_lr"], out["iterations"], reference_iterations)
    return out


def build_params(base: dict[str, Any], overlays: list[dict[str, Any]], *, gpus: int,
                 sets: list[tuple[str, Any]] = ()) -> dict[str, Any]:
    """Merge ``overlays`` onto ``base``, apply ``sets``, scale every ``_recipe`` section to ``gpus`` devices and
    validate the whole result; returns the params mapping (without ``_recipe``)."""
    if gpus < 1:
        raise ConfigError("gpus", f"must be >= 1, got {gpus}")
    raw = {k: v for k, v in base.items() if k != RECIPE_KEY}
    rules: dict[str, Any] = {}
    for overlay in overlays:
        recipe = overlay.get(RECIPE_KEY, {}) or {}
        if not isinstance(recipe, dict):
            raise ConfigError(RECIPE_KEY, "must be a mapping of section -> {reference_batch, ...}")
        rules.update(recipe)
        raw = deep_merge(raw, {k: v for k, v in overlay.items() if k != RECIPE_KEY})
    for dotted, value in sets:
        _set(raw, dotted, value)
    slow_frames = _slow_frames(raw)
    for key, rule in rules.items():
        section = _get(raw, key)
        if not isinstance(section, dict) or "base_lr" not in section:
            raise ConfigError(f"{RECIPE_KEY}.{key}", "must name a training section (with base_lr)")
        _set(raw, key, scale_section(section, rule, gpus=gpus, slow_frames=slow_frames, key=key))
    from slowfast.params import PipelineParams

    from_mapping(PipelineParams, raw)  # the same validation as every stage's; ConfigError names the key
    return raw


def _parse_set(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected KEY=VALUE (VALUE is YAML)")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overlays", nargs="+", type=Path, help="recipe files, e.g. params/kinetics400.yaml")
    parser.add_argument("--gpus", type=int, default=8, help="devices of the run (global batch = gpus x batch_size)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key after merging, e.g. model.preset=slowfast_8x8_r50")
    parser.add_argument("--base", type=Path, default=Path("params.yaml"), help="params file to start from")
    parser.add_argument("--out", type=Path, default=Path("params.yaml"), help="where to write ('-' for stdout)")


def run(args: argparse.Namespace) -> int:
    from slowfast.utils.io import write_text_atomic

    base = yaml.safe_load(args.base.read_text()) or {}
    overlays = []
    for path in args.overlays:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of params sections")
        overlays.append(data)
    try:
        raw = build_params(base, overlays, gpus=args.gpus, sets=[_parse_set(s) for s in args.sets])
    except ConfigError as exc:
        raise ValueError(f"{exc} (after merging {', '.join(map(str, args.overlays))})") from None
    header = (f"# Written by `slowfast params {' '.join(map(str, args.overlays))} --gpus {args.gpus}"
              + "".join(f" --set {s}" for s in args.sets) + "`\n# from " + str(args.base)
              + "; the paper's recipe scaled linearly to this global batch (src/slowfast/recipes.py).\n")
    text = header + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=118)
    if str(args.out) == "-":
        print(text, end="")
    else:
        write_text_atomic(args.out, text)
        log.info("wrote %s", args.out)
    return 0


def global_batch(train: dict[str, Any], gpus: int) -> int:
    """Clips per optimizer step of a training section on ``gpus`` devices."""
    return gpus * int(train.get("batch_size", 8)) * int(train.get("accumulate", 1))


__all__ = ["build_params", "deep_merge", "global_batch", "scale_section"]
