"""Model-zoo checkpoints -> this package's format: PySlowFast ``.pyth``, PySlowFast Caffe2 ``.pkl``, pytorchvideo hub.

PySlowFast's parameter names are the common language of the zoos. Caffe2 blob names and pytorchvideo names are
first renamed to them (PySlowFast itself loads Caffe2 blobs that way), then one table renames PySlowFast names
onto this package's module tree::

    caffe2 blobs ─┐
                  ├─> PySlowFast names ──> slow.* / fast.* / fuse_* / head.fc.*
    pytorchvideo ─┘

    s1.pathway{0,1}_stem.{conv,bn}             -> {slow,fast}.stem.{conv,bn}
    s{K}.pathway{p}_res{i}.branch1[_bn]        -> {p}.res{K}.{i}.shortcut.{conv,bn}
    s{K}.pathway{p}_res{i}.branch2.{a,b,c}[_bn] -> {p}.res{K}.{i}.{conv,bn}_{a,b,c}
    s{K}.pathway0_nonlocal{i}.{conv_theta,...,bn} -> slow.res{K}.{i}.nonlocal.{theta,...,bn}
    s{1,2,3,4}_fuse.{conv_f2s,bn}             -> fuse_{pool1,res2,res3,res4}.{conv,bn}
    head.projection                           -> head.fc

Pathway ``p`` is an index into the model's pathways (Slow first), so a single-pathway checkpoint (Slow-only)
lands on the one pathway the preset has. Every file is read without running code from it: ``.pyth`` files with
``torch.load(weights_only=True)``, Caffe2 pickles with :class:`slowfast.utils.safe_pickle.ArrayUnpickler`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slowfast.config import ConfigError
from slowfast.models.checkpoint import list_keys, load_state_dict_strict, save_model, torch_load_weights_only
from slowfast.models.presets import preset_config
from slowfast.models.slowfast import SlowFast, build_model
from slowfast.utils.safe_pickle import load_array_pickle

log = logging.getLogger(__name__)

SOURCES = ("pyslowfast", "pytorchvideo", "caffe2")

# ---------------------------------------------------------------------------------------------------------------
# Renaming tables: (full-match pattern, template). Named groups fill the template (see _rename).

Rules = list[tuple[re.Pattern[str], str]]


def _rules(*pairs: tuple[str, str]) -> Rules:
    return [(re.compile(pattern), template) for pattern, template in pairs]


_BN = r"(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)"

# PySlowFast (slowfast/models/{video_model_builder,stem_helper,resnet_helper,nonlocal_helper,head_helper}.py).
_PS_BLOCK = r"s(?P<res>[2-5])\.pathway(?P<pathway>\d)_res(?P<blk>\d+)"
_PS_NL = r"s(?P<res>[2-5])\.pathway(?P<pathway>\d)_nonlocal(?P<blk>\d+)"
_FROM_PYSLOWFAST = _rules(
    (r"s1\.pathway(?P<pathway>\d)_stem\.conv\.weight", "{pathway}.stem.conv.weight"),
    (rf"s1\.pathway(?P<pathway>\d)_stem\.bn\.{_BN}", "{pathway}.stem.bn.{param}"),
    (rf"{_PS_BLOCK}\.branch1\.weight", "{pathway}.res{res}.{blk}.shortcut.conv.weight"),
    (rf"{_PS_BLOCK}\.branch1_bn\.{_BN}", "{pathway}.res{res}.{blk}.shortcut.bn.{param}"),
    (rf"{_PS_BLOCK}\.branch2\.(?P<x>[abc])\.weight", "{pathway}.res{res}.{blk}.conv_{x}.weight"),
    (rf"{_PS_BLOCK}\.branch2\.(?P<x>[abc])_bn\.{_BN}", "{pathway}.res{res}.{blk}.bn_{x}.{param}"),
    (rf"{_PS_NL}\.conv_(?P<x>theta|phi|g|out)\.(?P<param>weight|bias)",
     "{pathway}.res{res}.{blk}.nonlocal.{x}.{param}"),
    (rf"{_PS_NL}\.bn\.{_BN}", "{pathway}.res{res}.{blk}.nonlocal.bn.{param}"),
    (r"s(?P<fuse>[1-4])_fuse\.conv_f2s\.weight", "{fuse}.conv.weight"),
    (rf"s(?P<fuse>[1-4])_fuse\.bn\.{_BN}", "{fuse}.bn.{param}"),
    (r"head\.projection\.(?P<param>weight|bias)", "head.fc.{param}"),
)

# Caffe2 blobs of the Detectron-era video models, as PySlowFast's slowfast/utils/c2_model_loading.py reads them:
# a "t_" prefix marks the Fast pathway; _w/_b are conv/fc weight/bias; _bn_{s,b,rm,riv} are BN scale, bias,
# running mean and running variance; laterals are named after the Fast layer they subsample.
_C2_PATH = r"(?P<t>t_)?"
_C2_BN = r"_bn_(?P<param>s|b|rm|riv)"
_C2_BLOCK = rf"{_C2_PATH}res(?P<res>[2-5])_(?P<blk>\d+)"
_FROM_CAFFE2 = _rules(
    (rf"{_C2_PATH}conv1_w", "s1.pathway{pathway}_stem.conv.weight"),
    (rf"{_C2_PATH}res_conv1{_C2_BN}", "s1.pathway{pathway}_stem.bn.{param}"),
    (rf"{_C2_BLOCK}_branch1_w", "s{res}.pathway{pathway}_res{blk}.branch1.weight"),
    (rf"{_C2_BLOCK}_branch1{_C2_BN}", "s{res}.pathway{pathway}_res{blk}.branch1_bn.{param}"),
    (rf"{_C2_BLOCK}_branch2(?P<x>[abc])_w", "s{res}.pathway{pathway}_res{blk}.branch2.{x}.weight"),
    (rf"{_C2_BLOCK}_branch2(?P<x>[abc]){_C2_BN}", "s{res}.pathway{pathway}_res{blk}.branch2.{x}_bn.{param}"),
    (r"nonlocal_conv(?P<res>[2-5])_(?P<blk>\d+)_(?P<x>theta|phi|g|out)_(?P<param>w|b)",
     "s{res}.pathway0_nonlocal{blk}.conv_{x}.{param}"),
    (rf"nonlocal_conv(?P<res>[2-5])_(?P<blk>\d+){_C2_BN}", "s{res}.pathway0_nonlocal{blk}.bn.{param}"),
    (r"t_pool1_subsample_w", "s1_fuse.conv_f2s.weight"),
    (rf"t_pool1_subsample{_C2_BN}", "s1_fuse.bn.{param}"),
    (r"t_res(?P<res>[2-4])_\d+_branch2c_bn_subsample_w", "s{res}_fuse.conv_f2s.weight"),
    (rf"t_res(?P<res>[2-4])_\d+_branch2c_bn_subsample{_C2_BN}", "s{res}_fuse.bn.{param}"),
    (r"pred_(?P<param>w|b)", "head.projection.{param}"),
)
_C2_PARAMS = {"w": "weight", "s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
# Solver state saved beside the weights; PySlowFast skips these blobs too.
_C2_SOLVER = re.compile(r".*_momentum|lr|model_iter")

# pytorchvideo: create_slowfast (blocks.k.multipathway_blocks.p...) and create_resnet (blocks.k...); blocks[k]
# holds res(k+1) and the lateral after it (k = 0: stem and the lateral after pool1); the head's "proj" is last.
_PV_PATH = r"(?:multipathway_blocks\.(?P<pathway>\d)\.)?"
_PV_BLOCK = rf"blocks\.(?P<stage>[1-4])\.{_PV_PATH}res_blocks\.(?P<blk>\d+)"
_FROM_PYTORCHVIDEO = _rules(
    (rf"blocks\.0\.{_PV_PATH}conv\.weight", "s1.pathway{pathway}_stem.conv.weight"),
    (rf"blocks\.0\.{_PV_PATH}norm\.{_BN}", "s1.pathway{pathway}_stem.bn.{param}"),
    (rf"{_PV_BLOCK}\.branch1_conv\.weight", "s{res}.pathway{pathway}_res{blk}.branch1.weight"),
    (rf"{_PV_BLOCK}\.branch1_norm\.{_BN}", "s{res}.pathway{pathway}_res{blk}.branch1_bn.{param}"),
    (rf"{_PV_BLOCK}\.branch2\.conv_(?P<x>[abc])\.weight", "s{res}.pathway{pathway}_res{blk}.branch2.{x}.weight"),
    (rf"{_PV_BLOCK}\.branch2\.norm_(?P<x>[abc])\.{_BN}", "s{res}.pathway{pathway}_res{blk}.branch2.{x}_bn.{param}"),
    (r"blocks\.(?P<stage>[0-3])\.multipathway_fusion\.conv_fast_to_slow\.weight", "s{res}_fuse.conv_f2s.weight"),
    (rf"blocks\.(?P<stage>[0-3])\.multipathway_fusion\.norm\.{_BN}", "s{res}_fuse.bn.{param}"),
    (r"blocks\.\d+\.proj\.(?P<param>weight|bias)", "head.projection.{param}"),
)

_TO_PYSLOWFAST = {"pyslowfast": None, "caffe2": _FROM_CAFFE2, "pytorchvideo": _FROM_PYTORCHVIDEO}


def _rename(key: str, rules: Rules, pathways: tuple[str, ...] = ()) -> str | None:
    """The first rule that matches all of ``key`` renames it; None when no rule does."""
    for pattern, template in rules:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        fields = {k: v for k, v in match.groupdict().items() if v is not None}
        fields.setdefault("pathway", "1" if fields.get("t") else "0")
        if "stage" in fields:  # pytorchvideo's blocks[k] is res(k+1) / the lateral numbered k+1
            fields["res"] = int(fields["stage"]) + 1
        if "param" in fields:
            fields["param"] = _C2_PARAMS.get(fields["param"], fields["param"])
        if pathways:
            index = int(fields["pathway"])
            # Past the model's pathways, use the canonical name so the strict load can name them as unexpected.
            names = pathways if index < len(pathways) else ("slow", "fast")
            fields["pathway"] = names[index] if index < len(names) else f"pathway{index}"
        if "fuse" in fields:
            fields["fuse"] = "fuse_pool1" if fields["fuse"] == "1" else f"fuse_res{fields['fuse']}"
        return template.format(**fields)
    return None


def to_pyslowfast_names(source: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a ``source`` state dict (or Caffe2 blobs) to PySlowFast names; unknown keys raise ValueError."""
    rules = _TO_PYSLOWFAST[source]
    renamed: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in state.items():
        name = key if rules is None else _rename(key, rules)
        if name is None or _rename(name, _FROM_PYSLOWFAST) is None:
            unknown.append(key)
        elif name in renamed:
            raise ValueError(f"two {source} keys map onto {name} (one is {key})")
        else:
            renamed[name] = value
    if unknown:
        raise ValueError(f"{len(unknown)} unknown {source} key(s) with no place in the model: {list_keys(unknown)}")
    return renamed


def to_model_names(pyslowfast_state: Mapping[str, Any], pathways: tuple[str, ...]) -> dict[str, Any]:
    """Rename PySlowFast names onto this package's module tree for a model with ``pathways`` (Slow first)."""
    out = {}
    for key, value in pyslowfast_state.items():
        name = _rename(key, _FROM_PYSLOWFAST, pathways)
        if name is None:
            raise ValueError(f"unknown PySlowFast key {key}")
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# Reading the files without running code from them.


def read_caffe2_blobs(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The weight blobs of a Caffe2 ``.pkl`` (``{"blobs": {name: array}, ...}``) as tensors; solver state dropped."""
    if zipfile.is_zipfile(path):  # torch.save's format: the unpickler would only say "persistent id instruction"
        raise ValueError(f"{path}: a PyTorch checkpoint (torch.save zip), not a Caffe2 pickle; "
                         "use --from pyslowfast or --from pytorchvideo")
    data = load_array_pickle(path)  # Caffe2 pickles come from Python 2: read as latin1
    if not isinstance(data, dict) or not isinstance(data.get("blobs"), dict):
        raise ValueError(f"{path}: a Caffe2 checkpoint is a dict with a 'blobs' dict")
    tensors = {}
    for name, blob in data["blobs"].items():
        if _C2_SOLVER.fullmatch(name):
            continue
        if not isinstance(blob, np.ndarray) or blob.dtype.kind not in "fiu":
            raise ValueError(f"{path}: blob {name} is not a numeric array ({type(blob).__name__})")
        tensors[name] = torch.from_numpy(np.array(blob, copy=True))
    return tensors


def read_torch_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The model weights of a PySlowFast / pytorchvideo ``.pyth``: its ``model_state`` (other entries ignored)."""
    payload = torch_load_weights_only(path)
    if isinstance(payload, dict) and "model_state" in payload:
        payload = payload["model_state"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{path}: expected a dict with 'model_state' (a state dict of tensors)")
    return dict(payload)


# ---------------------------------------------------------------------------------------------------------------
# Conversion.


def convert_checkpoint(source: str, preset: str, in_path: str | os.PathLike[str], **overrides: Any) -> SlowFast:
    """Build ``preset`` (with config ``overrides``) and load a model-zoo checkpoint into it, strictly.

    ``num_classes`` is taken from the checkpoint's classifier unless overridden. Unknown, missing or mis-shaped
    keys (e.g. a Slow-only checkpoint given a SlowFast preset) raise ValueError naming them. Returns the model in
    eval mode.
    """
    if source not in SOURCES:
        raise ConfigError("source", f"got {source!r}, allowed: {', '.join(SOURCES)}")
    config = preset_config(preset, **overrides)  # bad preset names and overrides fail before any reading
    if not Path(in_path).is_file():
        raise FileNotFoundError(f"{in_path}: no such checkpoint file")
    raw = read_caffe2_blobs(in_path) if source == "caffe2" else read_torch_state(in_path)
    state = to_pyslowfast_names(source, raw)
    if "head.projection.weight" in state and "num_classes" not in overrides:
        config = dataclasses.replace(config, num_classes=int(state["head.projection.weight"].shape[0]))
    model = build_model(config)
    state = to_model_names(state, config.pathways)
    # Caffe2 and older torch files carry no BN batch counters; they only matter for momentum=None averaging.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    try:
        load_state_dict_strict(model, state)
    except ValueError as exc:
        raise ValueError(f"{in_path} ({source}) does not fit preset {preset}: {exc}") from None
    log.info("converted %d tensors of %s (%s) into %s", len(raw), Path(in_path).name, source, preset)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# `slowfast convert`


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key, tuple(parsed) if isinstance(parsed, list) else parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES, help="checkpoint format")
    parser.add_argument("--preset", required=True, help="model preset the checkpoint was trained as")
    parser.add_argument("--set", dest="overrides", type=_override, action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field of the preset (value parsed as JSON), repeatable")
    parser.add_argument("--classes", help="class names to store in the checkpoint: kinetics400, kinetics600, ava "
                        "(60 classes), ava80, or a file (.json list, .pbtxt, .csv, one name per line); default: the "
                        "package label set with the checkpoint's number of classes, if exactly one has it")
    parser.add_argument("input", type=Path, help="PySlowFast/pytorchvideo .pyth or Caffe2 .pkl")
    parser.add_argument("output", type=Path, help="where to write the slowfast/1 checkpoint")


def class_names_for(spec: str | None, num_classes: int) -> tuple[list[str] | None, str | None]:
    """(names, where from) for ``--classes``: a package label set (``ava`` picks the 60- or 80-class list by
    ``num_classes``), a file, or, without ``spec``, the one label set with ``num_classes`` classes (else None)."""
    from slowfast.data.labels import LABEL_SETS, builtin_classes, infer_label_set, read_class_file

    if spec is None:
        spec = infer_label_set(num_classes)
        if spec is None:
            log.warning("no package label set has %d classes: no class names stored (use --classes FILE)",
                        num_classes)
            return None, None
    if spec == "ava" and num_classes == LABEL_SETS["ava80"][1]:
        spec = "ava80"
    names = builtin_classes(spec) if spec in LABEL_SETS else read_class_file(spec)
    if len(names) != num_classes:
        raise ValueError(f"--classes: {spec} has {len(names)} classes, the checkpoint's classifier {num_classes}")
    return names, spec if spec in LABEL_SETS else Path(spec).name


def run(args: argparse.Namespace) -> int:
    overrides = dict(args.overrides)
    if args.classes is not None and args.classes not in ("kinetics400", "kinetics600", "ava", "ava80") \
            and not Path(args.classes).is_file():
        raise FileNotFoundError(f"--classes: {args.classes!r} is neither a label set (kinetics400, kinetics600, "
                                "ava, ava80) nor an existing file")
    model = convert_checkpoint(args.source, args.preset, args.input, **overrides)
    meta = {"converted_from": args.source, "source_file": args.input.name, "preset": args.preset}
    classes, classes_from = class_names_for(args.classes, model.config.num_classes)
    if classes is not None:
        meta.update(classes=classes, classes_from=classes_from)
    if overrides:
        meta["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    save_model(model, args.output, meta=meta)
    return 0
