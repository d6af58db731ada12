"""SlowFastConfig and presets: bad configurations fail before any work, naming the key and what is allowed."""

from __future__ import annotations

import pytest

from slowfast.config import ConfigError, from_mapping, to_mapping
from slowfast.models import PRESETS, SlowFastConfig, create_model, get_preset, preset_config


def test_config_round_trips_through_a_plain_mapping():
    for preset in PRESETS.values():
        assert from_mapping(SlowFastConfig, to_mapping(preset.config)) == preset.config


@pytest.mark.parametrize(
    ("mapping", "key", "fragment"),
    [
        ({"width": 64, "beta_inv": 5}, "beta_inv", "must divide"),
        ({"alpha": 0}, "alpha", ">= 1"),
        ({"lateral": "tconv2"}, "lateral", "'ttoc_sum'"),
        ({"arch": "slowest"}, "arch", "'slowfast'"),
        ({"fast_input": "flow"}, "fast_input", "'gray'"),
        ({"alpha": 4, "lateral": "ttoc_sum"}, "lateral", "alpha == beta_inv"),
        ({"res5_dilation": 3}, "res5_dilation", "allowed: 1, 2"),
        ({"fusion_kernel": 4}, "fusion_kernel", "odd"),
        ({"nonlocal_blocks": [6]}, "nonlocal_blocks", "[0, 6)"),
        ({"slow_res4_temporal_blocks": 7}, "slow_res4_temporal_blocks", "between 0"),
        ({"dropout": 1.0}, "dropout", "[0, 1)"),
        ({"arch": "slow", "fast_input": "gray"}, "fast_input", "no Fast pathway"),
        ({"alpha": 2.5}, "alpha", "integer"),
        ({"depth": 50}, "depth", "unknown key"),
    ],
)
def test_bad_config_names_the_key_and_what_is_allowed(mapping, key, fragment):
    with pytest.raises(ConfigError) as err:
        from_mapping(SlowFastConfig, mapping, prefix="model")
    assert err.value.key == f"model.{key}"
    assert fragment in str(err.value)


def test_beta_not_dividing_the_widths_is_refused_but_slow_only_ignores_beta():
    with pytest.raises(ConfigError, match="beta_inv"):
        SlowFastConfig(width=12, beta_inv=8)
    assert SlowFastConfig(arch="slow", width=12, beta_inv=8).width == 12


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        create_model("slowfast_9x9_r50")
    assert err.value.key == "preset"
    assert "slowfast_4x16_r50" in str(err.value) and "slowfast_tiny" in str(err.value)


def test_preset_overrides_are_validated_like_any_mapping():
    assert preset_config("slowfast_tiny", num_classes=7).num_classes == 7
    with pytest.raises(ConfigError, match="num_clases"):
        preset_config("slowfast_tiny", num_clases=7)
    with pytest.raises(ConfigError, match="alpha"):
        preset_config("slowfast_tiny", alpha=0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_metadata_is_consistent_with_its_config(name):
    preset = get_preset(name)
    cfg = preset.config
    assert preset.name == name and preset.frames == cfg.slow_frames
    # The Fast pathway samples every tau/alpha raw frames: that must be a whole stride.
    if cfg.arch != "slow":
        assert preset.tau % cfg.alpha == 0
    assert preset.source
    for key in ("gflops", "params_m", "top1", "top5"):
        value = getattr(preset, key)
        assert value is None or value > 0


def test_tiny_slowfast_keeps_the_4x16_geometry_of_the_synthetic_data():
    fast, slow = get_preset("slowfast_tiny"), get_preset("slow_tiny")
    assert fast.config.fast_frames * (fast.tau // fast.config.alpha) == fast.clip_frames
    assert slow.tau == fast.tau and slow.config.slow_frames == fast.config.slow_frames
