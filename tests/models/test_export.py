"""`slowfast export`: ONNX (run in ONNX Runtime on CPU) and TorchScript files give the PyTorch model's outputs.

The exported graphs take one clip (N, 3, αT, H, W) (and boxes for the AVA detector) with a dynamic batch: each test
runs the file at batch sizes other than the traced one and compares with PyTorch (and, for the full-size model,
with the pytorchvideo network the checkpoint was converted from) to 1e-4 of the largest output.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from slowfast.cli import main
from slowfast.models import create_model, pack_pathways
from slowfast.models.checkpoint import save_model
from slowfast.models.convert import convert_checkpoint
from slowfast.models.detector import build_detector
from slowfast.models.presets import preset_config
from tests.models.test_convert import _randomize, ptv, write_hub  # noqa: F401

TOLERANCE = 1e-4


def relative(got: np.ndarray, expected: torch.Tensor) -> float:
    expected = expected.numpy()
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def _clip(model, batch: int, size: int, seed: int = 7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    frames = model.config.pathway_frames(model.config.pathways[-1])
    return torch.randn(batch, 3, frames, size, size, generator=gen)


def _boxes(batch: int, count: int, size: int, seed: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(count, 2, 2, generator=gen) * (size - 1)
    index = torch.randint(0, batch, (count, 1), generator=gen).float()
    return torch.cat([index, xy.min(dim=1).values, xy.max(dim=1).values + 1], dim=1)


def _export(capsys, *args) -> dict:
    assert main(["export", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _session(path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("preset", ["slowfast_tiny", "slow_tiny", "fast_tiny"])
def test_onnx_of_a_tiny_preset_gives_the_pytorch_logits_in_onnxruntime_at_any_batch_and_size(preset, tmp_path,
                                                                                               capsys):
    torch.manual_seed(0)
    model = create_model(preset, num_classes=5).eval()
    nn.init.normal_(model.head.fc.weight, std=1.0)  # far from uniform logits
    checkpoint = save_model(model, tmp_path / "model.pt", meta={"classes": list("abcde")})
    report = _export(capsys, checkpoint, tmp_path / "model.onnx", "--size", "64")
    assert report["relative_difference"] <= TOLERANCE
    session = _session(tmp_path / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["clip"]
    for batch, size in ((1, 64), (4, 96)):
        clip = _clip(model, batch, size)
        got = session.run(None, {"clip": clip.numpy()})[0]
        with torch.no_grad():
            expected = model(pack_pathways(clip, model.config))
        assert got.shape == (batch, 5)
        assert relative(got, expected) <= TOLERANCE
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["classes"]) == list("abcde")
    assert json.loads(props["preprocessing"])["transform"]["test_size"] == 64


@pytest.mark.parametrize("preset", ["slowfast_tiny", "slow_tiny", "fast_tiny"])
def test_torchscript_of_a_tiny_preset_gives_the_pytorch_logits_at_any_batch(preset, tmp_path, capsys):
    torch.manual_seed(1)
    model = create_model(preset, num_classes=4).eval()
    checkpoint = save_model(model, tmp_path / "model.pt")
    _export(capsys, checkpoint, tmp_path / "model.ts", "--format", "torchscript", "--size", "64")
    extra = {"classes": ""}
    loaded = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    assert json.loads(extra["classes"]) == ["0", "1", "2", "3"]
    for batch in (1, 3):
        clip = _clip(model, batch, 64)
        with torch.no_grad():
            assert relative(loaded(clip).numpy(), model(pack_pathways(clip, model.config))) <= TOLERANCE


@pytest.fixture(scope="module")
def detector_checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    detector = build_detector(preset_config("slowfast_tiny"), 6).eval()
    nn.init.normal_(detector.head.fc.weight, std=0.3)
    return detector, save_model(detector, tmp_path_factory.mktemp("det") / "detector.pt")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_ava_detector_takes_a_clip_and_boxes_and_gives_the_pytorch_scores(detector_checkpoint, fmt,
                                                                                     tmp_path, capsys):
    import slowfast.models.export  # noqa: F401 - registers slowfast::roi_align for the TorchScript file

    detector, checkpoint = detector_checkpoint
    out = tmp_path / f"detector.{fmt}"
    report = _export(capsys, checkpoint, out, "--format", fmt, "--size", "64")
    assert report["relative_difference"] <= TOLERANCE
    if fmt == "onnx":
        graph = onnx.load(str(out)).graph
        assert "RoiAlign" in {node.op_type for node in graph.node}  # a standard operator, not a custom one
        assert [i.name for i in graph.input] == ["clip", "boxes"]
        session = _session(out)

        def run(clip, boxes):
            return session.run(None, {"clip": clip.numpy(), "boxes": boxes.numpy()})[0]
    else:
        loaded = torch.jit.load(str(out))

        def run(clip, boxes):
            with torch.no_grad():
                return loaded(clip, boxes).numpy()
    for batch, count, size in ((1, 1, 64), (3, 7, 80)):
        clip, boxes = _clip(detector, batch, size), _boxes(batch, count, size)
        with torch.no_grad():
            expected = detector(pack_pathways(clip, detector.config), boxes)
        got = run(clip, boxes)
        assert got.shape == (count, 6)
        assert relative(got, expected) <= TOLERANCE


def test_full_size_slowfast_8x8_r50_from_pytorchvideo_gives_the_reference_logits_in_onnxruntime(
        ptv, tmp_path, capsys):  # noqa: F811
    # pytorchvideo's slowfast_r50 (the hub model's architecture) with random weights and BN statistics.
    reference = _randomize(ptv.slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1),
                                        head_pool=nn.AdaptiveAvgPool3d), seed=5)
    hub = write_hub(reference, tmp_path / "r50.pyth")
    assert main(["convert", "--from", "pytorchvideo", "--preset", "slowfast_8x8_r50", str(hub),
                 str(tmp_path / "model.pt")]) == 0
    report = _export(capsys, tmp_path / "model.pt", tmp_path / "model.onnx", "--size", "64")
    assert report["relative_difference"] <= TOLERANCE
    model = convert_checkpoint("pytorchvideo", "slowfast_8x8_r50", hub)
    session = _session(tmp_path / "model.onnx")
    for batch in (1, 2):
        clip = _clip(model, batch, 64)
        got = session.run(None, {"clip": clip.numpy()})[0]
        with torch.no_grad():
            expected = reference(pack_pathways(clip, model.config))
        assert got.shape == (batch, 400)
        assert relative(got, expected) <= TOLERANCE


def test_export_of_a_missing_checkpoint_or_a_bad_size_is_one_line_naming_it(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.pt"), str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none.pt"), str(tmp_path / "x.onnx"), "--size", "8"]) == 2
    assert "--size: got 8" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
