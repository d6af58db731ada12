"""The slowfast/1 checkpoint: plain data, atomic, strict, and never a partial or code-running load."""

from __future__ import annotations

import datetime

import pytest
import torch

import slowfast.models
from slowfast.config import to_mapping
from slowfast.models import create_model
from slowfast.models.checkpoint import FORMAT, load_model, load_state_dict_strict, read_checkpoint, save_model
from tests.models.reference_payloads import SideEffect


@torch.no_grad()
def _trained_like(model):
    """Random weights and BN statistics, so that a round trip that dropped any tensor would change the logits."""
    gen = torch.Generator().manual_seed(0)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.5 + (0.5 if "running_var" in name else 0.0))
    return model.eval()


def _clip(config, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, config.pathway_frames(p), 32, 32, generator=gen) for p in config.pathways]


def test_saved_model_reloads_with_its_config_weights_and_logits(tmp_path):
    model = _trained_like(create_model("slowfast_tiny", num_classes=6, nonlocal_blocks=(0,)))
    path = save_model(model, tmp_path / "m.pt", meta={"source": "test", "preset": "slowfast_tiny"})
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(_clip(model.config)), model(_clip(model.config)))
    assert torch.equal(slowfast.models.load_model(path).head.fc.weight, model.head.fc.weight)


def test_checkpoint_is_plain_data_that_weights_only_loading_reads(tmp_path):
    model = create_model("slow_tiny")
    meta = {"source": "unit", "converted_from": None, "tags": ["a", 1, 2.5, True], "nested": {"k": "v"}}
    path = save_model(model, tmp_path / "m.pt", meta=meta)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert set(payload) == {"format", "config", "state_dict", "meta"}
    assert payload["format"] == FORMAT == "slowfast/1"
    assert payload["config"] == to_mapping(model.config)
    assert payload["meta"] == meta
    assert payload["state_dict"].keys() == model.state_dict().keys()
    # Saving the same model again gives the same bytes (re-runs are no-ops for DVC).
    again = save_model(model, tmp_path / "again.pt", meta=meta)
    assert again.read_bytes() == path.read_bytes()


def test_meta_that_is_not_plain_data_is_refused_and_the_previous_file_kept(tmp_path):
    model = create_model("slow_tiny")
    path = save_model(model, tmp_path / "m.pt", meta={"v": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"meta\.when: datetime is not allowed"):
        save_model(model, path, meta={"when": datetime.datetime(2019, 10, 27)})
    with pytest.raises(ValueError, match=r"meta\.runs\[1\]: set is not allowed"):
        save_model(model, path, meta={"runs": [1, {2}]})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_strict_load_names_unexpected_missing_and_misshaped_keys_and_loads_nothing():
    model = create_model("slowfast_tiny")
    state = {k: v.clone() + 1 for k, v in model.state_dict().items()}
    state["slow.res2.0.extra.weight"] = torch.zeros(3)
    del state["head.fc.bias"]
    state["slow.stem.conv.weight"] = torch.zeros(16, 3, 5, 7, 7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        load_state_dict_strict(model, state)
    message = str(err.value)
    assert "1 unexpected key(s): [in slow] slow.res2.0.extra.weight" in message
    assert "1 missing key(s): [in head] head.fc.bias" in message
    assert "1 mis-shaped key(s): [in slow] slow.stem.conv.weight (16, 3, 5, 7, 7) vs model (16, 3, 1, 7, 7)" in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # no partial load


def test_strict_load_refuses_values_that_are_not_tensors():
    model = create_model("slow_tiny")
    state = dict(model.state_dict(), **{"slow.stem.conv.weight": [0.0]})
    with pytest.raises(ValueError, match=r"1 non-tensor key\(s\): \[in slow\] slow\.stem\.conv\.weight"):
        load_state_dict_strict(model, state)


def test_checkpoint_of_another_architecture_is_a_named_error(tmp_path):
    path = save_model(create_model("slow_tiny"), tmp_path / "slow.pt")
    # Weights of a Slow-only model offered to a SlowFast model: the laterals and the Fast pathway are missing.
    with pytest.raises(ValueError, match=r"missing key\(s\): \[in fuse_pool1, fuse_res2, fuse_res3, fuse_res4, fast\]"):
        load_state_dict_strict(create_model("slowfast_tiny"), read_checkpoint(path)["state_dict"])
    # A file whose stored config no longer describes its weights is refused by load_model too.
    payload = read_checkpoint(path)
    payload["config"]["arch"] = "slowfast"
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    with pytest.raises(ValueError, match=r"edited\.pt: weights do not match the stored config: .*missing key"):
        load_model(edited)


def test_load_model_refuses_an_arbitrary_object_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    model = create_model("slow_tiny")
    torch.save({"format": FORMAT, "config": to_mapping(model.config), "state_dict": model.state_dict(),
                "meta": {"x": SideEffect(marker)}}, path)
    with pytest.raises(ValueError, match=r"evil\.pt: refused by torch\.load\(weights_only=True\): "
                                         r".*GLOBAL (posix|os)\.system"):
        load_model(path)
    assert not marker.exists()


def test_foreign_corrupt_and_unsupported_files_are_explained(tmp_path):
    zoo = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": {"s1.pathway0_stem.conv.weight": torch.zeros(1)}}, zoo)
    with pytest.raises(ValueError, match=r"not a slowfast/1 checkpoint.*convert it with `slowfast convert`"):
        load_model(zoo)
    good = save_model(create_model("slow_tiny"), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"truncated\.pt: not a readable torch checkpoint"):
        load_model(truncated)
    payload = read_checkpoint(good)
    for change, expected in (({"format": "slowfast/2"}, r"format 'slowfast/2' is not supported; allowed: 'slowfast/1'"),
                             ({"state_dict": [1]}, r"'state_dict' must be a dict"),
                             ({"config": {**payload["config"], "bogus": 1}}, r"config\.bogus: unknown key")):
        path = tmp_path / "changed.pt"
        torch.save({**payload, **change}, path)
        with pytest.raises(ValueError, match=expected):
            load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")
