"""`slowfast params`: the paper's recipe per dataset, scaled linearly to the run's global batch, validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slowfast.cli import main as cli_main
from slowfast.params import load_params

REPO = Path(__file__).resolve().parents[1]
RECIPES = [REPO / "params" / f"{name}.yaml" for name in ("kinetics400", "charades", "ava")]


def _write(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "params.yaml"
    code = cli_main(["params", *map(str, RECIPES), "--base", str(REPO / "params.yaml"), "--out", str(out), *args])
    return code, out


def test_at_the_papers_128_gpus_the_recipe_is_the_papers_numbers(tmp_path):
    code, out = _write(tmp_path, "--gpus", "128")
    assert code == 0
    p = load_params(out)  # the stages' own validation
    train = p.pretrain.train
    assert (train.optimizer, train.momentum, train.weight_decay) == ("sgd", 0.9, 1e-4)
    assert train.batch_size * 128 == 1024 and train.base_lr == pytest.approx(1.6)
    assert train.iterations == 60_000 and train.warmup == 8000  # 256 epochs of 240k videos; 8k warm-up
    assert p.model.preset == "slowfast_4x16_r50" and p.decode.frames.short_side == 256
    assert p.pretrain.transform.train_scale == (256, 320) and p.pretrain.transform.crop == 224
    assert p.ava.finetune.train.iterations == 14_000 and p.ava.finetune.train.warmup == 1000
    assert p.ava.finetune.train.weight_decay == pytest.approx(1e-7) and p.ava.video_start_sec == 0
    assert p.download.manifest == "manifests/paper.yaml"
    assert "_recipe" not in yaml.safe_load(out.read_text())


def test_eight_gpus_scale_learning_rate_down_and_the_schedule_up_linearly(tmp_path):
    code, out = _write(tmp_path, "--gpus", "8")
    assert code == 0
    p = load_params(out)
    assert p.pretrain.train.base_lr == pytest.approx(1.6 * 64 / 1024)
    assert p.pretrain.train.iterations == 60_000 * 16 and p.pretrain.train.warmup == 8000 * 16
    assert p.pretrain.train.checkpoint_every == 1000 * 16
    charades = p.charades.finetune.train  # the paper's batch 16 is 2 clips x 8 GPUs: unchanged
    assert (charades.base_lr, charades.iterations, tuple(charades.lr_steps)) == (0.0375, 24_000, (16_000, 20_000))
    ava = p.ava.finetune.train
    assert ava.base_lr == pytest.approx(0.1) and ava.iterations == 14_000 * 16 and ava.warmup == 16_000


def test_models_with_more_than_four_slow_frames_train_196_epochs(tmp_path):
    code, out = _write(tmp_path, "--gpus", "128", "--set", "model.preset=slowfast_8x8_r50")
    assert code == 0
    assert load_params(out).pretrain.train.iterations == round(196 * 240_000 / 1024)


def test_an_invalid_value_fails_naming_the_key_and_writes_nothing(tmp_path, capsys):
    code, out = _write(tmp_path, "--set", "pretrain.train.momentum=1.5")
    assert code == 2 and not out.exists()
    assert "momentum" in capsys.readouterr().err
    code, out = _write(tmp_path, "--gpus", "0")
    assert code == 2 and not out.exists()


def test_the_written_file_runs_as_params_yaml_with_comments_saying_how_it_was_made(tmp_path):
    code, out = _write(tmp_path, "--gpus", "16")
    assert code == 0
    assert out.read_text().startswith("# Written by `slowfast params ")
    p = load_params(out)
    assert p.tracking.experiment == "slowfast"  # sections the recipes leave alone come from the base file
    assert p.synthetic.kinetics.num_classes == 10


def test_applying_the_recipes_again_to_their_own_output_changes_nothing(tmp_path):
    code, first = _write(tmp_path, "--gpus", "8")
    assert code == 0
    again = tmp_path / "again.yaml"
    assert cli_main(["params", *map(str, RECIPES), "--base", str(first), "--out", str(again), "--gpus", "8"]) == 0
    assert yaml.safe_load(again.read_text()) == yaml.safe_load(first.read_text())
