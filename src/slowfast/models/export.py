"""``slowfast export CHECKPOINT OUT --format onnx|torchscript``: a checkpoint as a self-contained inference graph.

What is exported takes one clip, as the served model and ``predict`` prepare it, not the list of pathway tensors::

    classifier:  clip (N, 3, αT, H, W) float32 ──► logits (N, K)  (sigmoid scores for a multi-label model)
    AVA detector: clip (N, 3, αT, H, W), boxes (R, 5) = [batch index, x1, y1, x2, y2] in clip pixels
                                        ──► scores (R, K)  (per-class sigmoids, Sec. 5)

The Slow pathway's T frames are taken from the clip inside the graph (:func:`~slowfast.models.pack_pathways`), so a
consumer feeds the same tensor to every architecture. The batch N (and R) and the spatial size H, W are dynamic;
the number of frames is fixed by the model (the Fast pathway's αT; T for Slow-only).

- ``onnx``: ``torch.onnx.export(dynamo=True)`` (needs the ``onnx`` and ``onnxscript`` packages, the ``export``
  extra). The detector's RoIAlign becomes ONNX ``RoiAlign`` (opset >= 16, ``half_pixel`` = our ``aligned=True``,
  adaptive sampling ratio 0), a standard operator that ONNX Runtime implements.
- ``torchscript``: ``torch.jit.trace``. A detector's file calls the ``slowfast::roi_align`` operator, registered
  by importing this module: load it with ``import slowfast.models.export; torch.jit.load(path)``.

The class names (:func:`~slowfast.models.checkpoint.read_class_names`) and the preprocessing travel with the file:
ONNX ``metadata_props`` / TorchScript extra files ``classes`` and ``preprocessing`` (JSON). After writing, the command
runs the file (ONNX Runtime on CPU for ONNX, if installed) on a random clip against the PyTorch model and reports the
largest difference relative to the largest PyTorch output; above ``--tolerance`` (1e-4) it fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from slowfast.models.slowfast import SlowFast, pack_pathways

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
OPSET = 18
TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------ the RoIAlign op
@torch.library.custom_op("slowfast::roi_align", mutates_args=())
def roi_align_op(features: Tensor, boxes: Tensor, output_h: int, output_w: int, spatial_scale: float,
                 sampling_ratio: int, aligned: bool) -> Tensor:
    """:func:`slowfast.detection.roi_align.roi_align` as one operator, so that exporters see it whole (its
    data-dependent sampling grids cannot be traced) and ONNX can name it ``RoiAlign``."""
    from slowfast.detection.roi_align import roi_align

    return roi_align(features, boxes, (output_h, output_w), spatial_scale=spatial_scale,
                     sampling_ratio=sampling_ratio, aligned=aligned)


@roi_align_op.register_fake
def _roi_align_shape(features: Tensor, boxes: Tensor, output_h: int, output_w: int, spatial_scale: float,
                     sampling_ratio: int, aligned: bool) -> Tensor:
    return features.new_empty((boxes.shape[0], features.shape[1], output_h, output_w))


def _onnx_roi_align(features: Any, boxes: Any, output_h: int, output_w: int, spatial_scale: float,
                    sampling_ratio: int, aligned: bool) -> Any:
    """ONNX ``RoiAlign`` of (K, 5) boxes: columns 1-4 are the RoIs, column 0 the batch indices (as int64)."""
    import onnxscript
    from onnxscript import opset18 as op

    rois = op.Slice(boxes, op.Constant(value_ints=[1]), op.Constant(value_ints=[5]), op.Constant(value_ints=[1]))
    batch = op.Slice(boxes, op.Constant(value_ints=[0]), op.Constant(value_ints=[1]), op.Constant(value_ints=[1]))
    batch = op.Cast(op.Reshape(batch, op.Constant(value_ints=[-1])), to=onnxscript.INT64.dtype)
    return op.RoiAlign(features, rois, batch, coordinate_transformation_mode="half_pixel" if aligned
                       else "output_half_pixel", mode="avg", output_height=output_h, output_width=output_w,
                       sampling_ratio=sampling_ratio, spatial_scale=spatial_scale)


# ------------------------------------------------------------------------------------------- exportable wrappers
class ExportedClassifier(nn.Module):
    """``clip (N, 3, αT, H, W) -> model(pack_pathways(clip))``: the classifier behind one input tensor."""

    def __init__(self, model: SlowFast):
        super().__init__()
        self.model = model.eval()

    def forward(self, clip: Tensor) -> Tensor:
        return self.model(pack_pathways(clip, self.model.config))


class ExportedDetector(nn.Module):
    """``(clip, boxes) -> scores``: an :class:`~slowfast.models.detector.AvaDetector` with its RoIAlign as the
    ``slowfast::roi_align`` operator; the head is the detector's own (temporal mean, RoIAlign, spatial max, fc,
    sigmoid). Boxes are not checked inside the graph: column 0 must hold batch indices in [0, N)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector.eval()

    def forward(self, clip: Tensor, boxes: Tensor) -> Tensor:
        det = self.detector
        features = det.forward_features(pack_pathways(clip, det.config))
        head = det.head
        pooled = [roi_align_op(f.mean(dim=2), boxes, roi.output_size[0], roi.output_size[1], roi.spatial_scale,
                               roi.sampling_ratio, roi.aligned).amax(dim=(2, 3)) for roi, f in zip(head.rois, features)]
        return torch.sigmoid(head.fc(head.dropout(torch.cat(pooled, dim=1))))


def clip_frames(model: SlowFast) -> int:
    """Frames of the clip the exported graph takes: the last pathway's (αT; T for a Slow-only model)."""
    return model.config.pathway_frames(model.config.pathways[-1])


def example_inputs(model: SlowFast, *, size: int, batch: int = 2, boxes: int = 3, seed: int = 0) -> tuple[Tensor, ...]:
    """A random clip (and, for a detector, ``boxes`` random boxes spread over the batch) of the exported shapes."""
    gen = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, model.config.input_channels, clip_frames(model), size, size, generator=gen)
    if not is_detector(model):
        return (clip,)
    corners = torch.rand(boxes, 2, 2, generator=gen) * (size - 1)
    xy1, xy2 = corners.min(dim=1).values, corners.max(dim=1).values + 1
    index = (torch.arange(boxes) % batch).float()[:, None]
    return clip, torch.cat([index, xy1, xy2], dim=1)


def is_detector(model: nn.Module) -> bool:
    from slowfast.models.detector import AvaDetector

    return isinstance(model, AvaDetector)


def exportable(model: SlowFast) -> nn.Module:
    """The one-input (classifier) or clip + boxes (detector) wrapper of ``model``, in eval mode."""
    return (ExportedDetector(model) if is_detector(model) else ExportedClassifier(model)).eval()


# --------------------------------------------------------------------------------------------------- exporting
def export_onnx(model: SlowFast, path: str | os.PathLike[str], *, size: int,
                metadata: dict[str, str] | None = None, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically) with a dynamic batch and spatial size; returns the path."""
    import onnx

    from slowfast.utils.io import atomic_path

    wrapper = exportable(model)
    inputs = example_inputs(model, size=size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    height, width = torch.export.Dim("height", min=32, max=4096), torch.export.Dim("width", min=32, max=4096)
    shapes: dict[str, Any] = {"clip": {0: batch, 3: height, 4: width}}
    names = ["clip"]
    if is_detector(model):
        shapes["boxes"] = {0: torch.export.Dim("boxes", min=1, max=65536)}
        names.append("boxes")
    output = "scores" if model.config.multilabel else "logits"
    with torch.no_grad():
        program = torch.onnx.export(wrapper, inputs, None, input_names=names, output_names=[output],
                                    dynamic_shapes=shapes, dynamo=True, opset_version=opset, optimize=True,
                                    custom_translation_table={torch.ops.slowfast.roi_align.default: _onnx_roi_align},
                                    verbose=False)
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return Path(path)


def export_torchscript(model: SlowFast, path: str | os.PathLike[str], *, size: int,
                       metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` traced to TorchScript at ``path`` (atomically), ``metadata`` as extra files."""
    import warnings

    from slowfast.utils.io import atomic_path

    wrapper = exportable(model)
    with torch.no_grad(), warnings.catch_warnings():
        # The shape checks of the model's forward are Python conditions: true for every traced shape, and warned of.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, example_inputs(model, size=size), check_trace=False)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files=dict(metadata or {}))
    return Path(path)


def run_exported(path: str | os.PathLike[str], fmt: str, inputs: Sequence[Tensor]) -> Tensor:
    """Outputs of the exported file at ``path`` on ``inputs``: ONNX Runtime (CPU) for ONNX, TorchScript otherwise."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(None, feeds)[0])
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return loaded(*inputs)


def relative_difference(got: Tensor, expected: Tensor) -> float:
    """max |got - expected| / max |expected|."""
    return float((got - expected).abs().max() / expected.abs().max().clamp(min=1e-12))


def check_export(model: SlowFast, path: str | os.PathLike[str], fmt: str, *, size: int, batch: int = 3,
                 ) -> float:
    """The exported file's outputs against the PyTorch model's on a random clip of another batch size than the
    traced one (and 5 boxes for a detector): the relative difference."""
    inputs = example_inputs(model, size=size, batch=batch, boxes=5, seed=1)
    with torch.no_grad():
        expected = exportable(model)(*inputs)
    got = run_exported(path, fmt, inputs)
    if got.shape != expected.shape:
        raise ValueError(f"{path}: output shape {tuple(got.shape)}, PyTorch {tuple(expected.shape)}")
    return relative_difference(got, expected)


def load_any(path: str | os.PathLike[str]) -> SlowFast:
    """A classifier (``slowfast/1``) or an AVA detector (``slowfast-ava-detector/1``) checkpoint, in eval mode."""
    from slowfast.models.checkpoint import DETECTOR_FORMAT, load_model, torch_load_weights_only
    from slowfast.models.detector import load_detector

    payload = torch_load_weights_only(path)
    if isinstance(payload, dict) and payload.get("format") == DETECTOR_FORMAT:
        return load_detector(path).eval()
    return load_model(path).eval()


# ---------------------------------------------------------------------------------------------- `slowfast export`
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="a slowfast/1 classifier or slowfast-ava-detector/1 checkpoint")
    parser.add_argument("output", type=Path, help="file to write (.onnx or .pt)")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default) or torchscript")
    parser.add_argument("--size", type=int, help="spatial size of the example clip (default: the model's test size)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (>= 16; default {OPSET})")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="largest relative difference to PyTorch accepted by the check (default 1e-4)")
    parser.add_argument("--no-check", action="store_true", help="skip running the exported file against PyTorch")


def run(args: argparse.Namespace) -> int:
    from slowfast.models.checkpoint import read_checkpoint, read_class_names
    from slowfast.models.checkpoint import DETECTOR_FORMAT, FORMAT
    from slowfast.config import to_mapping
    from slowfast.tracking.models import infer_preprocessing

    if args.size is not None and not 32 <= args.size <= 4096:
        raise ValueError(f"--size: got {args.size}, allowed: 32..4096")
    if args.opset < 16:
        raise ValueError(f"--opset: got {args.opset}, allowed: >= 16 (RoiAlign with half_pixel)")
    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist")
    for noisy in ("onnxscript", "onnx_ir"):  # the ONNX optimizer logs every folded constant at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    model = load_any(args.checkpoint)
    fmt_name = DETECTOR_FORMAT if is_detector(model) else FORMAT
    meta = read_checkpoint(args.checkpoint, expected_format=fmt_name)["meta"]
    preprocessing = infer_preprocessing(model.config, meta)
    size = args.size or preprocessing.transform.test_size
    metadata = {"classes": json.dumps(read_class_names(args.checkpoint, model.config.num_classes)),
                "preprocessing": json.dumps(to_mapping(preprocessing)), "source": args.checkpoint.name}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "onnx":
        export_onnx(model, args.output, size=size, metadata=metadata, opset=args.opset)
    else:
        export_torchscript(model, args.output, size=size, metadata=metadata)
    log.info("wrote %s (%s, %s)", args.output, args.format, "detector" if is_detector(model) else "classifier")
    if args.no_check:
        return 0
    difference = check_export(model, args.output, args.format, size=size)
    print(json.dumps({"output": str(args.output), "format": args.format, "size": size,
                      "relative_difference": difference, "tolerance": args.tolerance}))
    if not difference <= args.tolerance:
        raise ValueError(f"{args.output}: outputs differ from PyTorch by {difference:.2e} (relative), "
                         f"above --tolerance {args.tolerance:g}")
    return 0
