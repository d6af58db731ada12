"""Cost statistics: GFLOPs (multiply-adds of conv and fc) and parameters match the paper within 2%."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from slowfast.cli import main
from slowfast.models import PRESETS, build_model, count_flops, count_params, get_preset, preset_stats
from slowfast.models.stats import config_stats
from tests.models.small_models import small


@pytest.mark.parametrize("name", ["slowfast_4x16_r50", "slow_4x16_r50", "slowfast_8x8_r101"])
def test_preset_cost_matches_the_paper_within_two_percent(name):
    preset = get_preset(name)
    stats = preset_stats(name, size=256, num_classes=400)
    assert stats["gflops"] == pytest.approx(preset.gflops, rel=0.02)
    assert stats["params"] / 1e6 == pytest.approx(preset.params_m, rel=0.02)


def test_flop_count_of_one_conv_and_one_fc_equals_the_multiply_adds():
    conv = nn.Conv3d(3, 5, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
    fc = nn.Linear(5, 11)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = conv, fc

        def forward(self, xs):
            return self.fc(self.conv(xs[0]).mean(dim=(2, 3, 4)))

    net = Net()
    macs = count_flops(net, [torch.zeros(2, 3, 4, 16, 16)])
    out_positions = 2 * 4 * 8 * 8
    assert macs == out_positions * 5 * (3 * 3 * 7 * 7) + 2 * 5 * 11
    assert count_params(net) == 5 * 3 * 3 * 7 * 7 + 5 * 11 + 11


def test_meta_device_count_equals_a_real_model_count():
    cfg = small(nonlocal_blocks=(0,))
    real = build_model(cfg).eval()
    x = [torch.randn(1, 3, cfg.pathway_frames(p), 64, 64) for p in cfg.pathways]
    stats = config_stats(cfg, size=64)
    assert stats["params"] == count_params(real)
    assert stats["gflops"] * 1e9 == pytest.approx(count_flops(real, x), rel=1e-12)


def test_flops_grow_with_the_lateral_as_in_table_5a():
    g = {k: config_stats(small(lateral=k, width=16, beta_inv=4, alpha=4), size=64)["gflops"]
         for k in ("none", "ttoc_sum", "tsample", "tconv")}
    assert g["ttoc_sum"] == g["none"]  # summation adds no Slow channels
    assert g["none"] < g["tsample"] < g["tconv"]


def test_flops_scale_with_the_view_area():
    a = config_stats(small(), size=64)["gflops"]
    b = config_stats(small(), size=128)["gflops"]
    assert 3.5 < b / a <= 4.0 + 1e-9  # conv cost ∝ area; only the fc is fixed


def test_stats_command_prints_one_json_object(capsys):
    assert main(["stats", "slow_4x16_r50", "--size", "224", "--classes", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["preset"] == "slow_4x16_r50" and out["size"] == 224 and out["num_classes"] == 10
    assert out["frames"] == [4]
    direct = preset_stats("slow_4x16_r50", size=224, num_classes=10)
    assert math.isclose(out["gflops"], direct["gflops"]) and out["params"] == direct["params"]


def test_stats_command_rejects_an_unknown_preset(capsys):
    assert main(["stats", "slowfast_1x1_r7"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_presets_command_lists_every_preset(capsys):
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(PRESETS)
    assert main(["presets"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in PRESETS)
