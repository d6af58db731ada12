"""slowfast.config: the one place that turns mappings into validated dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from slowfast.config import ConfigError, from_mapping, require, to_mapping


@dataclasses.dataclass(frozen=True)
class Inner:
    alpha: int = 8
    kind: Literal["tconv", "none"] = "tconv"

    def __post_init__(self) -> None:
        require(self.alpha >= 1, "alpha", f"must be >= 1, got {self.alpha}")


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = Inner()
    lr: float = 0.1
    steps: tuple[int, ...] = ()


def test_round_trip_through_mapping_is_identity():
    cfg = from_mapping(Outer, {"name": "x", "inner": {"alpha": 4}, "lr": 1, "steps": [3, 5]})
    assert cfg == Outer(name="x", inner=Inner(alpha=4), lr=1.0, steps=(3, 5))
    assert from_mapping(Outer, to_mapping(cfg)) == cfg


def test_unknown_key_is_named_with_its_path_and_the_allowed_keys():
    with pytest.raises(ConfigError, match=r"inner\.alpah: unknown key; allowed keys: alpha, kind"):
        from_mapping(Outer, {"name": "x", "inner": {"alpah": 4}})


def test_literal_error_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"inner\.kind: got 'tsample', allowed: 'tconv', 'none'"):
        from_mapping(Outer, {"name": "x", "inner": {"kind": "tsample"}})


def test_range_check_in_post_init_is_prefixed_with_the_section():
    with pytest.raises(ConfigError, match=r"^inner\.alpha: must be >= 1, got 0"):
        from_mapping(Outer, {"name": "x", "inner": {"alpha": 0}})


@pytest.mark.parametrize(
    "data, key",
    [({"name": 3}, "name"), ({"name": "x", "lr": "fast"}, "lr"), ({"name": "x", "steps": [1, "a"]}, r"steps\[1\]"),
     ({"name": "x", "inner": {"alpha": True}}, r"inner\.alpha"), ({}, "name")],
)
def test_wrong_types_and_missing_keys_are_named(data, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        from_mapping(Outer, data)


def test_top_level_load_model_rebuilds_a_saved_model_in_eval_mode(tmp_path):
    import torch

    import slowfast
    from slowfast.models import create_model
    from slowfast.models.checkpoint import save_model

    model = create_model("slow_tiny", num_classes=3)
    save_model(model, tmp_path / "m.pt")
    loaded = slowfast.load_model(tmp_path / "m.pt")
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
