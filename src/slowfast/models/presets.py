"""Named model presets with their metadata, ``create_model`` and the ``slowfast presets`` command.

Each preset carries the numbers the paper (or, marked "ref", the reference model zoos) reports for it, so docs and
tests read them from here instead of repeating them. ``gflops`` is the paper's cost of one 256² view; measure ours
with ``slowfast stats PRESET``. A ``None`` is a number the paper does not give.

Tiny presets (CPU, the embedded default pipeline): the synthetic datasets have classes that differ only in the
temporal frequency of a motion, sampled at 30 fps with the paper's 4x16 geometry (a 64-frame window). So the tiny
models keep that geometry — the Slow pathway T = 4 frames at τ = 16 (1.875 Hz sampling, which aliases the fast
motions), the Fast pathway α·T = 32 frames at stride 2 — and shrink only capacity: one bottleneck per stage,
Slow width 16 (res5 out 512 channels), β = 1/4 so that the Fast pathway keeps 4..128 channels rather than the 2..64
of β = 1/8. ``slow_tiny`` is the same Slow pathway alone (same large τ), ``fast_tiny`` the Fast pathway alone.
Their residual branches start from the usual initialisation, not zero-initialised final BNs: with one block per stage
a zero-initialised branch leaves only the 1×1 projections at the start, and in our measurement (rising vs falling
objects, AdamW) that took about twice as many steps to learn.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from slowfast.config import ConfigError, from_mapping, to_mapping

from .config import R101_DEPTHS, SlowFastConfig
from .slowfast import SlowFast, build_model


@dataclass(frozen=True)
class Preset:
    """A named configuration plus what is known about it."""

    name: str
    config: SlowFastConfig
    #: τ, the Slow pathway's temporal stride in raw frames (the Fast pathway's is τ/α).
    tau: int
    dataset: str = "Kinetics-400"
    train_crop: int = 224
    test_crop: int = 256
    #: paper GFLOPs of one test view (multiply-adds, 256² spatial); None when the paper gives none.
    gflops: float | None = None
    params_m: float | None = None
    top1: float | None = None
    top5: float | None = None
    source: str = ""
    notes: str = ""

    @property
    def frames(self) -> int:
        """T, the Slow pathway's frames (the "T" of "T×τ")."""
        return self.config.slow_frames

    @property
    def clip_frames(self) -> int:
        """Raw frames spanned by one clip: T·τ."""
        return self.config.slow_frames * self.tau

    def summary(self) -> dict[str, Any]:
        cfg = self.config
        two, fast = cfg.arch == "slowfast", cfg.arch != "slow"
        return {
            "name": self.name, "arch": cfg.arch, "depths": list(cfg.depths), "T": cfg.slow_frames, "tau": self.tau,
            "frames": "/".join(str(cfg.pathway_frames(p)) for p in cfg.pathways),
            "alpha": cfg.alpha if fast else None, "beta_inv": cfg.beta_inv if fast else None,
            "lateral": cfg.lateral if two else None, "dataset": self.dataset,
            "train_crop": self.train_crop, "test_crop": self.test_crop, "gflops": self.gflops,
            "params_m": self.params_m, "top1": self.top1, "top5": self.top5, "source": self.source,
            "notes": self.notes,
        }


def _preset(name: str, tau: int, **kw: Any) -> Preset:
    meta = {k: kw.pop(k) for k in list(kw) if k in Preset.__dataclass_fields__}
    return Preset(name=name, config=SlowFastConfig(**kw), tau=tau, **meta)


_R101_50_50 = {"depths": R101_DEPTHS, "slow_res4_temporal_blocks": 6, "fast_res4_temporal_blocks": 6}
_TINY = {"depths": (1, 1, 1, 1), "width": 16, "beta_inv": 4, "alpha": 8, "slow_frames": 4,
         "zero_init_residual": False}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    _preset("slowfast_4x16_r50", 16, gflops=36.1, params_m=34.48, top1=75.6, top5=92.1,
            source="paper Table 1, Table 2, Table 5a; PySlowFast SLOWFAST_4x16_R50 (fusion kernel 5)"),
    _preset("slowfast_8x8_r50", 8, alpha=4, slow_frames=8, fusion_kernel=7, gflops=65.7, top1=77.0, top5=92.6,
            source="paper Table 2; PySlowFast SLOWFAST_8x8_R50 and pytorchvideo slowfast_r50 (fusion kernel 7)"),
    _preset("slowfast_8x8_r101", 8, alpha=4, slow_frames=8, **_R101_50_50, gflops=106.0, params_m=53.8,
            top1=78.0, top5=93.3,
            source="paper Table 2; PySlowFast SLOWFAST_8x8_R101_50_50 (temporal kernels in res4 blocks 0-5 only)"),
    _preset("slowfast_16x8_r101", 8, alpha=4, slow_frames=16, **_R101_50_50, gflops=213.0, top1=78.9, top5=93.5,
            source="paper Table 2; PySlowFast SLOWFAST_16x8_R101_50_50"),
    _preset("slowfast_16x8_r101_nl", 8, alpha=4, slow_frames=16, **_R101_50_50, nonlocal_blocks=(6, 13, 20),
            gflops=234.0, top1=79.8, top5=93.9,
            source="paper Table 2; PySlowFast SLOWFAST_NLN_16x8_R101_50_50 (NL after res4 blocks 6, 13, 20)"),
    _preset("slow_4x16_r50", 16, arch="slow", gflops=27.3, params_m=32.45, top1=72.6, top5=90.3,
            source="paper Table 5a (Slow-only); PySlowFast SLOW_4x16_R50"),
    _preset("slow_8x8_r50", 8, arch="slow", slow_frames=8, source="PySlowFast SLOW_8x8_R50 (ref)"),
    _preset("fast_4x16_r50", 16, arch="fast", gflops=6.4, params_m=0.53, top1=51.7, top5=78.5,
            source="paper Table 5a (Fast-only)",
            notes="Fast pathway of Table 1 alone (temporal kernels 5,3,3,3,3); NOTES: 6.90 GFLOPs / 0.62M for it"),
    _preset("slowfast_tiny", 16, **_TINY, dataset="synthetic", train_crop=64, test_crop=64,
            source="this project", notes="CPU preset: 4x16 geometry, 1 block per stage, width 16, beta 1/4"),
    _preset("slow_tiny", 16, arch="slow", **_TINY, dataset="synthetic", train_crop=64, test_crop=64,
            source="this project", notes="Slow pathway of slowfast_tiny alone (T=4, tau=16)"),
    _preset("fast_tiny", 16, arch="fast", **_TINY, dataset="synthetic", train_crop=64, test_crop=64,
            source="this project", notes="Fast pathway of slowfast_tiny alone (32 frames at stride 2)"),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_config(name: str, **overrides: Any) -> SlowFastConfig:
    """The config of preset ``name`` with ``overrides`` (validated like any config mapping)."""
    return from_mapping(SlowFastConfig, {**to_mapping(get_preset(name).config), **overrides})


def create_model(preset: str, **overrides: Any) -> SlowFast:
    """A freshly initialised model of ``preset``, e.g. ``create_model("slowfast_tiny", num_classes=8)``."""
    return build_model(preset_config(preset, **overrides))


# -- `slowfast presets` ------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def run(args: argparse.Namespace) -> int:
    rows = [p.summary() for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ["name", "arch", "T", "tau", "alpha", "beta_inv", "frames", "lateral", "dataset", "gflops", "params_m",
            "top1", "top5"]
    table = [cols] + [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
