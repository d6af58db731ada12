"""The ``custom`` and ``ava`` dataset sections of params.yaml: the shipped defaults, and bad values named before work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from slowfast.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_params_keep_the_custom_stages_off_with_an_existing_placeholder_root():
    params = load_params(ROOT / "params.yaml")
    assert params.custom.enabled is False
    assert (ROOT / params.custom.dataset.root).is_dir()  # DVC needs the dependency to exist while off
    assert params.custom.init == "models/pretrain/model.pt" and params.custom.registered_model == "slowfast-custom"
    assert params.ava.root == "data/raw/ava" and params.ava.files.label_map is None  # the official AVA layout


def test_a_bad_custom_value_fails_the_stage_before_any_work_naming_the_key(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["custom"]["finetune"]["train"]["loss"] = "bce"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "stages.finetune_custom", "--raw", str(tmp_path / "nowhere"), "--shards", "x",
         "--pretrained", "x", "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"),
         "--params", str(tmp_path / "params.yaml")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "custom.finetune.train.loss: a folder / list dataset has one label per video" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


def test_an_enabled_custom_stage_on_a_missing_root_fails_in_one_line(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["custom"]["enabled"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "stages.decode", "--dataset", "custom", "--raw", str(tmp_path / "no such folder"),
         "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"), "--params",
         str(tmp_path / "params.yaml")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("decode_custom: dataset root ")
    assert result.stderr.strip().splitlines()[-1].endswith("no such folder is not a directory")
