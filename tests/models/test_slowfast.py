"""The SlowFast network: shapes, frame rates per pathway, laterals, gradients, heads, the module-tree contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slowfast.models import PRESETS, SlowFast, build_model, create_model, example_inputs, pack_pathways
from slowfast.models.layers import Bottleneck, NonLocal
from slowfast.models.slowfast import FUSIONS, STAGES
from tests.models.small_models import LATERALS, clip, small


def _stage_outputs(model: SlowFast, inputs) -> dict[str, torch.Tensor]:
    """Output of the stem and of every stage of every pathway, recorded with forward hooks."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for p in model.config.pathways:
        for name in ("stem", *STAGES):
            module = getattr(getattr(model, p), name)
            handles.append(module.register_forward_hook(
                lambda m, a, out, key=f"{p}.{name}": seen.__setitem__(key, out)))
    try:
        model(inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_maps_a_view_to_one_score_per_class(name):
    # Shapes only: on the meta device nothing is computed, so R101+NL costs nothing.
    with torch.device("meta"):
        model = create_model(name).eval()
        x = example_inputs(model.config, size=64, batch=2, device="meta")
        out = model(x)
        feats = model.forward_features(x)
    cfg = model.config
    assert out.shape == (2, cfg.num_classes)
    assert [f.shape[2] for f in feats] == [cfg.pathway_frames(p) for p in cfg.pathways]
    assert [f.shape[1] for f in feats] == [getattr(model, p).out_channels for p in cfg.pathways]
    assert all(f.shape[3:] == (2, 2) for f in feats)  # 64 / 32


@pytest.mark.parametrize("lateral", LATERALS)
def test_fast_pathway_keeps_alpha_t_frames_and_slow_keeps_t_through_every_stage(lateral):
    cfg = small(lateral=lateral)
    model = build_model(cfg).eval()
    with torch.no_grad():
        seen = _stage_outputs(model, clip(cfg))
    for key, out in seen.items():
        expected = cfg.fast_frames if key.startswith("fast") else cfg.slow_frames
        assert out.shape[2] == expected, key
    # Fast channels are 1/β of the Slow channels at every stage.
    for name in ("stem", *STAGES):
        assert seen[f"slow.{name}"].shape[1] == cfg.beta_inv * seen[f"fast.{name}"].shape[1]


@pytest.mark.parametrize("lateral", LATERALS)
def test_gradients_reach_both_pathways_and_the_laterals(lateral):
    cfg = small(lateral=lateral, zero_init_residual=False)
    model = build_model(cfg).train()
    loss = nn.functional.cross_entropy(model(clip(cfg)), torch.tensor([1, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    lateral_params = [n for n, _ in model.named_parameters() if n.startswith("fuse_")]
    assert bool(lateral_params) == (lateral == "tconv")


@pytest.mark.parametrize("lateral", [k for k in LATERALS if k != "none"])
def test_the_slow_output_depends_on_the_fast_input_only_through_laterals(lateral):
    model = build_model(small(lateral=lateral)).eval()
    slow, fast = clip(model.config)
    with torch.no_grad():
        a = model.forward_features([slow, fast])[0]
        b = model.forward_features([slow, fast.flip(2)])[0]
    assert not torch.allclose(a, b)
    none = build_model(small(lateral="none")).eval()
    with torch.no_grad():
        assert torch.equal(none.forward_features([slow, fast])[0], none.forward_features([slow, fast.flip(2)])[0])


def test_lateral_channels_follow_table_5a():
    c_in = build_model(small(lateral="none")).slow.res2[0].conv_a.in_channels
    fast = small().pathway_width("fast")
    extra = {"tconv": 2 * fast, "tsample": fast, "ttoc_concat": small().alpha * fast, "ttoc_sum": 0, "none": 0}
    for kind, added in extra.items():
        model = build_model(small(lateral=kind))
        assert model.slow.res2[0].conv_a.in_channels == c_in + added, kind
    tconv = build_model(small(fusion_kernel=7)).fuse_res3.conv
    assert tconv.kernel_size == (7, 1, 1) and tconv.stride == (small().alpha, 1, 1)


@pytest.mark.parametrize("kind", ["rgb", "gray", "tdiff", "half_res"])
def test_each_fast_input_variant_runs_and_changes_what_the_fast_stem_sees(kind):
    cfg = small(fast_input=kind)
    model = build_model(cfg).eval()
    x = clip(cfg)
    with torch.no_grad():
        seen = _stage_outputs(model, x)
        out = model(x)
    assert out.shape == (2, cfg.num_classes)
    assert model.fast.stem.conv.in_channels == (1 if kind == "gray" else 3)
    slow_hw, fast_hw = seen["slow.stem"].shape[3:], seen["fast.stem"].shape[3:]
    assert fast_hw == (tuple(s // 2 for s in slow_hw) if kind == "half_res" else slow_hw)
    with torch.no_grad():
        shifted = model([x[0], x[1] + 0.5])  # a constant brightness change of the Fast frames
    # Time differences cancel a constant offset; every other Fast input sees it.
    assert torch.allclose(shifted, out, atol=1e-6) == (kind == "tdiff")


def test_nonlocal_blocks_sit_after_the_chosen_res4_blocks_and_start_as_identity():
    cfg = small(depths=(1, 1, 3, 1), nonlocal_blocks=(0, 2))
    model = build_model(cfg).eval()
    assert [i for i, b in enumerate(model.slow.res4) if "nonlocal" in b._modules] == [0, 2]
    assert not any(isinstance(m, NonLocal) for m in model.fast.modules())
    keys = model.state_dict().keys()
    for part in ("theta", "phi", "g", "out"):
        assert f"slow.res4.2.nonlocal.{part}.bias" in keys
    assert "slow.res4.2.nonlocal.bn.running_mean" in keys
    x = clip(cfg)
    plain = build_model(small(depths=(1, 1, 3, 1))).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".nonlocal." not in k})
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), atol=1e-6)  # zero-initialised residual BN
        for b in (model.slow.res4[0], model.slow.res4[2]):
            b._modules["nonlocal"].bn.weight.fill_(1.0)
        assert not torch.allclose(model(x), plain(x), atol=1e-4)


@pytest.mark.parametrize("mode", ["dot_product", "softmax"])
def test_nonlocal_attends_over_every_position(mode):
    nl = NonLocal(8, inner=4, pool=(1, 1, 1), mode=mode).eval()
    nl.bn.weight.data.fill_(1.0)
    x = torch.randn(1, 8, 2, 4, 4)
    with torch.no_grad():
        base = nl(x)
        y = x.clone()
        y[..., 0, 0, 0] += 5.0  # change one position: every other output position must move
        diff = (nl(y) - base).abs().sum(dim=1).flatten()
    assert (diff[1:] > 0).all()


def test_res5_dilation_doubles_the_res5_map():
    x = clip(small(), size=64)
    maps = {}
    for d in (1, 2):
        with torch.no_grad():
            maps[d] = build_model(small(res5_dilation=d)).eval().forward_features(x)
    for a, b in zip(maps[1], maps[2]):
        assert b.shape[3:] == tuple(2 * s for s in a.shape[3:]) and b.shape[:3] == a.shape[:3]
    conv_b = build_model(small(res5_dilation=2)).slow.res5[0].conv_b
    assert conv_b.dilation == (1, 2, 2) and conv_b.stride == (1, 1, 1)


def test_multilabel_head_returns_sigmoid_scores_in_eval_and_logits_in_training():
    model = build_model(small(multilabel=True, dropout=0.0))
    feats = [torch.randn(2, c, 1, 2, 2) for c in (model.slow.out_channels, model.fast.out_channels)]
    model.head.fc.weight.data.normal_(std=1.0)
    logits = model.train().forward_head(feats)
    scores = model.eval().forward_head(feats)
    assert torch.allclose(scores, torch.sigmoid(logits))
    assert (logits < 0).any()  # logits, not probabilities, in training
    single = build_model(small(dropout=0.0))
    single.head.fc = model.head.fc
    assert torch.allclose(single.eval().forward_head(feats), logits)


def test_fast_input_with_wrong_frame_count_is_a_clear_error_naming_both_counts():
    cfg = small()
    model = build_model(cfg)
    slow, fast = clip(cfg)
    with pytest.raises(ValueError) as err:
        model([slow, fast[:, :, :-1]])
    msg = str(err.value)
    assert f"{cfg.slow_frames} Slow frames" in msg and f"{cfg.fast_frames - 1} Fast frames" in msg
    with pytest.raises(ValueError, match="list of 2 pathway"):
        model([slow])
    with pytest.raises(ValueError, match="input must be"):
        model([slow[:, :1], fast])


def test_module_tree_follows_the_state_dict_contract():
    model = build_model(small(depths=(2, 1, 1, 1)))
    keys = set(model.state_dict())
    for p in ("slow", "fast"):
        assert {f"{p}.stem.conv.weight", f"{p}.stem.bn.running_var"} <= keys
        for stage in STAGES:
            for part in ("conv_a", "conv_b", "conv_c", "bn_a", "bn_b", "bn_c", "shortcut.conv", "shortcut.bn"):
                assert any(k.startswith(f"{p}.{stage}.0.{part}.") for k in keys), (p, stage, part)
        assert not any(k.startswith(f"{p}.res2.1.shortcut") for k in keys)
    for f in FUSIONS:
        assert {f"{f}.conv.weight", f"{f}.bn.weight"} <= keys
    assert {"head.fc.weight", "head.fc.bias"} <= keys
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv3d))
    slow_only = build_model(small(arch="slow"))
    assert not hasattr(slow_only, "fast") and not any(k.startswith("fuse_") for k in slow_only.state_dict())


def test_spatial_stride_sits_on_the_3x3_conv_of_each_stage_first_block():
    model = build_model(small(depths=(2, 2, 2, 2)))
    for p in ("slow", "fast"):
        for k, stage in enumerate(STAGES):
            first = getattr(getattr(model, p), stage)[0]
            stride = (1, 1, 1) if k == 0 else (1, 2, 2)
            assert first.conv_b.stride == stride and first.shortcut.conv.stride == stride
            assert first.conv_a.stride == (1, 1, 1) and first.conv_c.stride == (1, 1, 1)


def test_temporal_kernels_follow_table_1_and_the_r101_50_50_rule():
    model = create_model("slowfast_8x8_r101")
    assert model.slow.stem.conv.kernel_size == (1, 7, 7) and model.fast.stem.conv.kernel_size == (5, 7, 7)
    t = {p: {s: [b.conv_a.kernel_size[0] for b in getattr(getattr(model, p), s)] for s in STAGES}
         for p in ("slow", "fast")}
    assert set(t["slow"]["res2"] + t["slow"]["res3"]) == {1} and set(t["slow"]["res5"]) == {3}
    assert set(t["fast"]["res2"] + t["fast"]["res3"] + t["fast"]["res5"]) == {3}
    for p in ("slow", "fast"):
        assert t[p]["res4"] == [3] * 6 + [1] * 17


def test_initialisation_follows_pyslowfast():
    model = create_model("slowfast_tiny", zero_init_residual=True)
    for m in model.modules():
        if isinstance(m, Bottleneck):
            assert torch.all(m.bn_c.weight == 0) and torch.all(m.bn_a.weight == 1)
    assert 0.008 < model.head.fc.weight.std().item() < 0.012 and torch.all(model.head.fc.bias == 0)
    w = model.slow.res5[0].conv_b.weight
    fan_out = w.shape[0] * w[0, 0].numel()
    assert abs(w.std().item() - (2.0 / fan_out) ** 0.5) < 0.1 * (2.0 / fan_out) ** 0.5


def test_tiny_presets_start_residual_branches_live_and_full_presets_zero_initialised():
    tiny = create_model("slowfast_tiny")
    assert all(torch.all(m.bn_c.weight == 1) for m in tiny.modules() if isinstance(m, Bottleneck))
    full = create_model("slow_4x16_r50")
    assert all(torch.all(m.bn_c.weight == 0) for m in full.modules() if isinstance(m, Bottleneck))


def test_reset_classifier_changes_the_classes_and_the_config():
    model = create_model("slowfast_tiny", num_classes=8)
    model.reset_classifier(3)
    assert model.config.num_classes == 3 and model.head.fc.out_features == 3
    assert model(pack_pathways(torch.randn(1, 3, 32, 32, 32), model.config)).shape == (1, 3)


def test_pack_pathways_gives_slow_the_linspace_frames_and_fast_all_of_them():
    cfg = small(alpha=4, slow_frames=3, beta_inv=4)
    n = cfg.fast_frames  # 12
    frames = torch.arange(n, dtype=torch.float32).view(1, n, 1, 1).expand(3, n, 4, 4)
    slow, fast = pack_pathways(frames, cfg)
    # linspace(0, 11, 3) = 0, 5.5, 11 -> rounded down 0, 5, 11
    assert slow[0, :, 0, 0].tolist() == [0.0, 5.0, 11.0]
    assert torch.equal(fast, frames)
    batched = pack_pathways(frames.unsqueeze(0).repeat(2, 1, 1, 1, 1), cfg)
    assert batched[0][1, 0, :, 0, 0].tolist() == [0.0, 5.0, 11.0] and batched[1].shape[2] == n
    (only_slow,) = pack_pathways(frames, small(arch="slow", slow_frames=3))
    assert only_slow[0, :, 0, 0].tolist() == [0.0, 5.0, 11.0]
    (only_fast,) = pack_pathways(frames, small(arch="fast"))
    assert torch.equal(only_fast, frames)
    with pytest.raises(ValueError, match="shorter than slow_frames"):
        pack_pathways(frames[:, :2], cfg)


@pytest.mark.parametrize("name", ["slowfast_tiny", "slow_tiny", "fast_tiny"])
def test_tiny_presets_train_on_a_packed_clip(name):
    model = create_model(name, num_classes=4).train()
    x = pack_pathways(torch.randn(2, 3, 32, 32, 32), model.config)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    target = torch.tensor([0, 3])
    losses = []
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
