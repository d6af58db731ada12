"""Invalid training settings fail before any work, naming the key and what is allowed."""

from __future__ import annotations

import pytest
import torch

from slowfast.config import ConfigError, from_mapping
from slowfast.engine import EvalConfig, TrainConfig, train
from tests.engine.engine_toy import TinyNet, ToyClips


@pytest.mark.parametrize(
    ("mapping", "key", "message"),
    [
        ({"epochs": 1, "learning_rate": 0.1}, "learning_rate", "allowed keys"),
        ({"epochs": 1, "iterations": 10}, "epochs", "exactly one of epochs or iterations"),
        ({}, "epochs", "exactly one of epochs or iterations"),
        ({"epochs": 0}, "epochs", ">= 1"),
        ({"epochs": 1, "batch_size": 0}, "batch_size", ">= 1"),
        ({"epochs": 1, "batch_size": 2.5}, "batch_size", "integer"),
        ({"epochs": 1, "loss": "mse"}, "loss", "'cross_entropy', 'bce'"),
        ({"epochs": 1, "schedule": "linear"}, "schedule", "'cosine', 'steps'"),
        ({"epochs": 1, "device": "tpu"}, "device", "'auto', 'cpu', 'cuda'"),
        ({"epochs": 1, "amp": "fp16"}, "amp", "'none', 'bf16'"),
        ({"epochs": 1, "device": "cpu", "amp": "bf16"}, "amp", "needs a GPU"),
        ({"epochs": 10, "schedule": "steps", "lr_steps": [8, 4]}, "lr_steps", "increasing"),
        ({"epochs": 10, "schedule": "steps", "lr_steps": [12]}, "lr_steps", "inside"),
        ({"epochs": 10, "lr_steps": [4]}, "lr_steps", 'schedule "steps"'),
        ({"epochs": 10, "warmup": 10}, "warmup", "shorter than the run"),
        ({"epochs": 1, "momentum": 1.0}, "momentum", "[0, 1)"),
        ({"epochs": 1, "accumulate": 0}, "accumulate", ">= 1"),
        ({"epochs": 1, "optimizer": "adam"}, "optimizer", "'sgd', 'adamw'"),
        ({"epochs": 1, "optimizer": "adamw", "nesterov": True}, "nesterov", 'optimizer "sgd"'),
    ],
)
def test_invalid_train_config_names_the_key(mapping, key, message):
    with pytest.raises(ConfigError) as info:
        from_mapping(TrainConfig, mapping, prefix="train")
    assert info.value.key == f"train.{key}"
    assert message in str(info.value)


def test_invalid_eval_config_names_the_key():
    with pytest.raises(ConfigError, match="aggregate.*'mean', 'max'"):
        from_mapping(EvalConfig, {"aggregate": "median"})
    with pytest.raises(ConfigError, match="views_per_batch"):
        EvalConfig(views_per_batch=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal of bf16")
def test_bf16_on_a_cpu_only_machine_fails_before_writing_anything(tmp_path):
    with pytest.raises(ConfigError, match="amp.*needs a GPU"):
        train(TinyNet(), ToyClips(8), TrainConfig(epochs=1, batch_size=4, amp="bf16"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_training_set_smaller_than_one_step_is_a_clear_error(tmp_path):
    config = TrainConfig(epochs=1, batch_size=4, accumulate=2)
    with pytest.raises(ConfigError, match="batch_size.*needs .* = 8 clips, the training set has 6"):
        train(TinyNet(), ToyClips(6), config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
