"""Model-zoo checkpoints convert into models whose logits match the reference implementation's.

The reference is pytorchvideo (installed for tests): its ``create_slowfast`` / ``create_resnet`` networks get random
weights and random BN statistics, and their weights are written in three zoo formats:
- a pytorchvideo hub file (its own state dict under ``model_state``);
- a PySlowFast ``.pyth`` and a Caffe2 ``.pkl``, whose names are emitted here by walking pytorchvideo's module tree
  and spelling each tensor as PySlowFast's modules / Caffe2's blobs call it — independently of the converter's
  regex tables, so a wrong table shows up as different logits or a named key error.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from slowfast.cli import main as cli_main
from slowfast.models.checkpoint import load_model, read_checkpoint
from slowfast.models.convert import convert_checkpoint, read_caffe2_blobs
from slowfast.utils.safe_pickle import ArrayUnpickler
from tests.models.reference_payloads import SideEffect

REDUCED = 26  # a pytorchvideo "model_depth" key registered below for (2, 2, 2, 2) bottlenecks per stage
REDUCED_DEPTHS = (2, 2, 2, 2)
WIDTH = 16  # reduced Slow width (the paper's is 64); the Fast pathway gets WIDTH / 8
SIZE = 64
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def ptv():
    """pytorchvideo's model builders, imported with stub ``torchvision`` modules (only its RoI head needs them)."""
    saved = dict(sys.modules)
    vision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.RoIAlign = None
    vision.ops = ops
    sys.modules.update({"torchvision": vision, "torchvision.ops": ops})
    try:
        with warnings.catch_warnings():  # its layers use torch.jit.script, deprecated in this torch
            warnings.simplefilter("ignore", DeprecationWarning)
            import pytorchvideo.models.resnet as pv_resnet
            import pytorchvideo.models.slowfast as pv_slowfast

        for module in (pv_resnet, pv_slowfast):
            module._MODEL_STAGE_DEPTH[REDUCED] = REDUCED_DEPTHS
        yield types.SimpleNamespace(slowfast=pv_slowfast.create_slowfast, resnet=pv_resnet.create_resnet)
        for module in (pv_resnet, pv_slowfast):
            module._MODEL_STAGE_DEPTH.pop(REDUCED, None)
    finally:
        for name in set(sys.modules) - set(saved):
            del sys.modules[name]
        sys.modules.update(saved)


@torch.no_grad()
def _randomize(net: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics, so that swapping any two same-shaped tensors changes the logits."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
        elif isinstance(m, nn.BatchNorm3d):
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.num_batches_tracked.fill_(7)
        elif isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.05)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.05)
    return net.eval()


def reference_slowfast(ptv, *, depth=REDUCED, width=WIDTH, num_classes=7, seed=0) -> nn.Module:
    """pytorchvideo SlowFast matching our slowfast_8x8_r50 (α = 4, β = 1/8, fusion kernel 7) at ``width``."""
    net = ptv.slowfast(model_depth=depth, model_num_class=num_classes, stem_dim_outs=(width, width // 8),
                       slowfast_channel_reduction_ratio=(8,), slowfast_fusion_conv_kernel_size=(7, 1, 1),
                       slowfast_fusion_conv_stride=(4, 1, 1), head_pool=nn.AdaptiveAvgPool3d)
    return _randomize(net, seed)


def reference_slow(ptv, *, num_classes=5, seed=1) -> nn.Module:
    """pytorchvideo's slow_r50 architecture (create_resnet, conv1 1×7²) at reduced depth and width."""
    net = ptv.resnet(model_depth=REDUCED, model_num_class=num_classes, stem_dim_out=WIDTH,
                     stem_conv_kernel_size=(1, 7, 7), head_pool=nn.AdaptiveAvgPool3d)
    return _randomize(net, seed)


def zoo_names(net: nn.Module) -> list[tuple[str, str | None, torch.Tensor]]:
    """(PySlowFast name, Caffe2 blob name, tensor) for every tensor of a pytorchvideo SlowFast / ResNet.

    Spelled from the reference sources: PySlowFast's VideoModelStem (``s1.pathway{p}_stem.{conv,bn}``), ResStage
    (``s{K}.pathway{p}_res{i}.branch1[_bn]``, ``branch2.{a,b,c}[_bn]``), FuseFastToSlow (``s{K}_fuse.conv_f2s``,
    ``.bn``), ResNetBasicHead (``head.projection``); Caffe2 blobs as c2_model_loading.py reads them.
    """
    out: list[tuple[str, str | None, torch.Tensor]] = []

    def conv(module, ps, c2):
        out.append((f"{ps}.weight", f"{c2}_w", module.weight))

    def bn(module, ps, c2):
        for attr, short in (("weight", "s"), ("bias", "b"), ("running_mean", "rm"), ("running_var", "riv")):
            out.append((f"{ps}.{attr}", f"{c2}_{short}", getattr(module, attr)))
        out.append((f"{ps}.num_batches_tracked", None, module.num_batches_tracked))  # Caffe2 has no such blob

    blocks = net.blocks
    multi = hasattr(blocks[0], "multipathway_blocks")
    paths = (lambda b: list(b.multipathway_blocks)) if multi else (lambda b: [b])
    for p, stem in enumerate(paths(blocks[0])):
        t = "t_" if p else ""
        conv(stem.conv, f"s1.pathway{p}_stem.conv", f"{t}conv1")
        bn(stem.norm, f"s1.pathway{p}_stem.bn", f"{t}res_conv1_bn")
    for stage in range(1, 5):
        for p, path in enumerate(paths(blocks[stage])):
            t = "t_" if p else ""
            for i, block in enumerate(path.res_blocks):
                ps, c2 = f"s{stage + 1}.pathway{p}_res{i}", f"{t}res{stage + 1}_{i}"
                if block.branch1_conv is not None:
                    conv(block.branch1_conv, f"{ps}.branch1", f"{c2}_branch1")
                    bn(block.branch1_norm, f"{ps}.branch1_bn", f"{c2}_branch1_bn")
                for x in "abc":
                    conv(getattr(block.branch2, f"conv_{x}"), f"{ps}.branch2.{x}", f"{c2}_branch2{x}")
                    bn(getattr(block.branch2, f"norm_{x}"), f"{ps}.branch2.{x}_bn", f"{c2}_branch2{x}_bn")
    if multi:
        for stage in range(4):
            fusion = blocks[stage].multipathway_fusion
            if stage == 0:
                c2 = "t_pool1_subsample"
            else:  # Caffe2 names a lateral after the last Fast block it subsamples
                last = len(blocks[stage].multipathway_blocks[1].res_blocks) - 1
                c2 = f"t_res{stage + 1}_{last}_branch2c_bn_subsample"
            conv(fusion.conv_fast_to_slow, f"s{stage + 1}_fuse.conv_f2s", c2)
            bn(fusion.norm, f"s{stage + 1}_fuse.bn", f"{c2}_bn")
    proj = blocks[-1].proj
    out += [("head.projection.weight", "pred_w", proj.weight), ("head.projection.bias", "pred_b", proj.bias)]
    assert len(out) == len(net.state_dict()), "the walk must name every tensor of the reference"
    return out


def write_hub(net: nn.Module, path: Path) -> Path:
    torch.save({"model_state": net.state_dict()}, path)
    return path


def write_pyth(net: nn.Module, path: Path) -> Path:
    """A PySlowFast training checkpoint: weights plus the epoch, optimizer state and config text it also keeps."""
    state = OrderedDict((name, t.detach().clone()) for name, _, t in zoo_names(net))
    optimizer = {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": list(range(3))}]}
    torch.save({"epoch": 196, "model_state": state, "optimizer_state": optimizer,
                "cfg": "MODEL:\n  ARCH: slowfast\n"}, path)
    return path


def write_caffe2(net: nn.Module, path: Path) -> Path:
    """A Caffe2 pickle (protocol 2, as Python 2 wrote it) with momentum and solver blobs beside the weights."""
    blobs = {c2: t.detach().numpy().copy() for _, c2, t in zoo_names(net) if c2 is not None}
    blobs["conv1_w_momentum"] = np.zeros_like(blobs["conv1_w"])
    blobs["lr"] = np.array([0.1], dtype=np.float32)
    blobs["model_iter"] = np.array([1000], dtype=np.int64)
    with open(path, "wb") as fh:
        pickle.dump({"blobs": blobs, "model_name": "slowfast"}, fh, protocol=2)
    return path


def clip(frames: int, alpha: int | None = None, seed: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    slow = torch.randn(1, 3, frames, SIZE, SIZE, generator=gen)
    if alpha is None:
        return [slow]
    return [slow, torch.randn(1, 3, frames * alpha, SIZE, SIZE, generator=gen)]


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


@torch.no_grad()
def assert_same_logits(model: nn.Module, reference: nn.Module, inputs: list[torch.Tensor]) -> None:
    expected = reference([t.clone() for t in inputs]) if len(inputs) > 1 else reference(inputs[0].clone())
    got = model([t.clone() for t in inputs])
    assert got.shape == expected.shape
    assert relative_difference(got, expected) <= TOLERANCE


WRITERS = {"pytorchvideo": write_hub, "pyslowfast": write_pyth, "caffe2": write_caffe2}


@pytest.mark.parametrize("source", sorted(WRITERS))
def test_slowfast_checkpoint_of_every_format_reproduces_reference_logits(ptv, tmp_path, source):
    reference = reference_slowfast(ptv)
    path = WRITERS[source](reference, tmp_path / f"ckpt.{source}")
    model = convert_checkpoint(source, "slowfast_8x8_r50", path, depths=REDUCED_DEPTHS, width=WIDTH)
    assert not model.training
    assert model.config.num_classes == 7  # taken from the checkpoint's classifier
    assert_same_logits(model, reference, clip(8, alpha=4))


@pytest.mark.parametrize("source", sorted(WRITERS))
def test_slow_only_checkpoint_lands_on_the_slow_pathway_with_reference_logits(ptv, tmp_path, source):
    reference = reference_slow(ptv)
    path = WRITERS[source](reference, tmp_path / f"slow.{source}")
    model = convert_checkpoint(source, "slow_8x8_r50", path, depths=REDUCED_DEPTHS, width=WIDTH)
    assert model.config.arch == "slow"
    assert_same_logits(model, reference, clip(8))


def test_full_size_slowfast_8x8_r50_matches_pytorchvideo_slowfast_r50(ptv, tmp_path):
    # pytorchvideo's hub slowfast_r50 is create_slowfast(model_depth=50, fusion kernel 7) with stride α = 4.
    reference = ptv.slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1), head_pool=nn.AdaptiveAvgPool3d)
    reference = _randomize(reference, seed=5)
    model = convert_checkpoint("pytorchvideo", "slowfast_8x8_r50", write_hub(reference, tmp_path / "r50.pyth"))
    assert model.config.num_classes == 400
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert_same_logits(model, reference, clip(4, alpha=4))  # fewer frames than 8x8: same weights, half the cost


def test_pyslowfast_nonlocal_weights_land_after_the_named_res4_block(ptv, tmp_path):
    reference = reference_slowfast(ptv)
    state = OrderedDict((name, t.detach().clone()) for name, _, t in zoo_names(reference))
    channels, inner = WIDTH * 16, WIDTH * 8  # Slow res4 output; PySlowFast's Nonlocal works at half of it
    gen = torch.Generator().manual_seed(9)
    shapes = {"conv_theta": (inner, channels), "conv_phi": (inner, channels), "conv_g": (inner, channels),
              "conv_out": (channels, inner)}
    nl = {}
    for name, (c_out, c_in) in shapes.items():
        nl[f"{name}.weight"] = torch.randn(c_out, c_in, 1, 1, 1, generator=gen)
        nl[f"{name}.bias"] = torch.randn(c_out, generator=gen)
    for param in ("weight", "bias", "running_mean", "running_var"):
        nl[f"bn.{param}"] = torch.rand(channels, generator=gen) + 0.5
    state.update({f"s4.pathway0_nonlocal1.{k}": v for k, v in nl.items()})
    path = tmp_path / "nl.pyth"
    torch.save({"model_state": state}, path)
    model = convert_checkpoint("pyslowfast", "slowfast_8x8_r50", path, depths=REDUCED_DEPTHS, width=WIDTH,
                               nonlocal_blocks=(1,))
    placed = model.slow.res4[1]._modules["nonlocal"].state_dict()
    for key, value in nl.items():
        assert torch.equal(placed[key.removeprefix("conv_")], value), key
    # Without non-local blocks in the preset, the same file is refused and the NL keys are named.
    with pytest.raises(ValueError, match=r"unexpected.*slow\.res4\.1\.nonlocal"):
        convert_checkpoint("pyslowfast", "slowfast_8x8_r50", path, depths=REDUCED_DEPTHS, width=WIDTH)


def test_checkpoint_of_another_architecture_names_the_keys_that_do_not_fit(ptv, tmp_path):
    slowfast_file = write_hub(reference_slowfast(ptv), tmp_path / "sf.pyth")
    with pytest.raises(ValueError, match=r"does not fit preset slow_8x8_r50.*198 unexpected key\(s\): "
                                         r"\[in fast, fuse_pool1, fuse_res2, fuse_res3, fuse_res4\] fast\.stem\.conv"):
        convert_checkpoint("pytorchvideo", "slow_8x8_r50", slowfast_file, depths=REDUCED_DEPTHS, width=WIDTH)
    slow_file = write_hub(reference_slow(ptv), tmp_path / "slow.pyth")
    with pytest.raises(ValueError, match=r"165 missing key\(s\): \[in fuse_pool1, fuse_res2, fuse_res3, fuse_res4, "
                                         r"fast\]"):
        convert_checkpoint("pytorchvideo", "slowfast_8x8_r50", slow_file, depths=REDUCED_DEPTHS, width=WIDTH)
    # Same names, other widths: both shapes are named.
    with pytest.raises(ValueError, match=r"mis-shaped key\(s\): .* fuse_pool1\.conv\.weight \(4, 2, 7, 1, 1\) "
                                         r"vs model \(8, 4, 7, 1, 1\)"):
        convert_checkpoint("pytorchvideo", "slowfast_8x8_r50", slowfast_file, depths=REDUCED_DEPTHS, width=32)


def test_unknown_and_missing_foreign_keys_are_named(ptv, tmp_path):
    state = reference_slowfast(ptv).state_dict()
    state["blocks.2.multipathway_blocks.0.res_blocks.0.branch3_conv.weight"] = torch.zeros(1)
    unknown = tmp_path / "unknown.pyth"
    torch.save({"model_state": state}, unknown)
    with pytest.raises(ValueError, match=r"unknown pytorchvideo key.*branch3_conv"):
        convert_checkpoint("pytorchvideo", "slowfast_8x8_r50", unknown, depths=REDUCED_DEPTHS, width=WIDTH)
    del state["blocks.2.multipathway_blocks.0.res_blocks.0.branch3_conv.weight"]
    del state["blocks.1.multipathway_blocks.1.res_blocks.1.branch2.norm_b.running_var"]
    missing = tmp_path / "missing.pyth"
    torch.save({"model_state": state}, missing)
    with pytest.raises(ValueError, match=r"1 missing key\(s\): \[in fast\] fast\.res2\.1\.bn_b\.running_var"):
        convert_checkpoint("pytorchvideo", "slowfast_8x8_r50", missing, depths=REDUCED_DEPTHS, width=WIDTH)


def test_caffe2_pickle_reaching_for_a_callable_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"blobs": {"conv1_w": SideEffect(marker)}}, protocol=2))
    with pytest.raises(ValueError, match=r"refused global '(posix|os)\.system'"):
        read_caffe2_blobs(evil)
    with pytest.raises(ValueError, match=r"refused global"):
        convert_checkpoint("caffe2", "slow_tiny", evil)
    assert not marker.exists()


def test_array_unpickler_reads_arrays_dicts_and_scalars_only(tmp_path):
    data = {"blobs": OrderedDict(a=np.arange(6, dtype=np.float32).reshape(2, 3)), "n": 3, "s": "x", "f": [1.5]}
    for protocol in (2, 5):
        loaded = ArrayUnpickler(io.BytesIO(pickle.dumps(data, protocol=protocol))).load()
        assert np.array_equal(loaded["blobs"]["a"], data["blobs"]["a"]) and loaded["f"] == [1.5]
    with pytest.raises(pickle.UnpicklingError, match=r"refused global '(__builtin__|builtins)\.set'"):
        ArrayUnpickler(io.BytesIO(pickle.dumps({1, 2}, protocol=2))).load()


def test_pyth_holding_an_arbitrary_object_is_refused_by_weights_only_loading(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pyth"
    torch.save({"model_state": {}, "extra": SideEffect(marker)}, path)
    with pytest.raises(ValueError, match=r"refused by torch\.load\(weights_only=True\): .*GLOBAL (posix|os)\.system"):
        convert_checkpoint("pyslowfast", "slow_tiny", path)
    assert not marker.exists()


def test_bad_source_preset_or_override_fails_before_reading(tmp_path):
    absent = tmp_path / "absent.pyth"
    with pytest.raises(ValueError, match=r"source: got 'mmaction', allowed: pyslowfast, pytorchvideo, caffe2"):
        convert_checkpoint("mmaction", "slow_tiny", absent)
    with pytest.raises(ValueError, match=r"preset.*'slowfast_r50'.*allowed:"):
        convert_checkpoint("pytorchvideo", "slowfast_r50", absent)
    with pytest.raises(ValueError, match=r"alpha"):
        convert_checkpoint("pytorchvideo", "slow_tiny", absent, alpha=0)
    with pytest.raises(FileNotFoundError, match="absent.pyth"):
        convert_checkpoint("pytorchvideo", "slow_tiny", absent)


def test_cli_convert_writes_a_loadable_checkpoint_with_provenance(ptv, tmp_path, capsys):
    reference = reference_slowfast(ptv)
    src = write_caffe2(reference, tmp_path / "SLOWFAST_8x8_R50.pkl")
    out = tmp_path / "out" / "model.pt"
    argv = ["convert", "--from", "caffe2", "--preset", "slowfast_8x8_r50", "--set", "depths=[2,2,2,2]",
            "--set", f"width={WIDTH}", str(src), str(out)]
    assert cli_main(argv) == 0
    first = out.read_bytes()
    assert cli_main(argv) == 0 and out.read_bytes() == first  # a re-run rewrites the same file
    payload = read_checkpoint(out)
    assert payload["meta"]["converted_from"] == "caffe2"
    assert payload["meta"]["source_file"] == "SLOWFAST_8x8_R50.pkl"
    assert payload["meta"]["preset"] == "slowfast_8x8_r50"
    assert_same_logits(load_model(out), reference, clip(8, alpha=4))
    # Errors are one line naming the problem, exit status 2, and no output file.
    bad = tmp_path / "bad.pkl"
    assert cli_main(["convert", "--from", "caffe2", "--preset", "slow_8x8_r50", str(src), str(bad)]) == 2
    assert "unexpected" in capsys.readouterr().err
    assert not bad.exists()


def test_caffe2_conversion_of_a_torch_zip_says_it_is_a_torch_checkpoint(tmp_path, capsys):
    path = tmp_path / "model.pyth"
    torch.save({"model_state": {"w": torch.zeros(2)}}, path)
    code = cli_main(["convert", "--from", "caffe2", "--preset", "slowfast_tiny", str(path), str(tmp_path / "o.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"slowfast convert: error: {path}: a PyTorch checkpoint (torch.save zip), not a Caffe2 pickle; "
                   "use --from pyslowfast or --from pytorchvideo"]
    assert not (tmp_path / "o.pt").exists()
