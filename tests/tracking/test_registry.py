"""The registry rule, as a user meets it: @champion moves only to a version that beats it on top-1 on the same
evaluation data; any other new version is @challenger; `predict --model` says which version and preset it uses."""

from __future__ import annotations

import json

import mlflow
import pytest

from slowfast.cli import main
from slowfast.data.decode import DecodeConfig
from slowfast.tracking.models import (
    REGISTERED_MODEL_DESCRIPTION,
    TAG_CHECKPOINT,
    TAG_EVAL_DATA,
    TAG_GIT_COMMIT,
    TAG_PRESET,
    assign_alias,
    file_sha256,
    find_version,
    log_model,
)
from tests.data.videos import make_video
from tests.engine.test_predict import CLASSES, TINY_SAMPLING, TINY_TRANSFORM, make_checkpoint

NAME = "slowfast-registry-test"


@pytest.fixture
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)

    def register(seed: int, preset: str):
        checkpoint = make_checkpoint(tmp_path / f"ckpt{seed}", seed=seed)
        with mlflow.start_run():
            log_model(checkpoint, classes=CLASSES, sampling=TINY_SAMPLING, transform=TINY_TRANSFORM,
                      decode=DecodeConfig(short_side=64), registered_name=NAME, preset=preset)
        version = find_version(NAME, checkpoint)
        assert version is not None and version.tags[TAG_CHECKPOINT] == file_sha256(checkpoint)
        return version.version

    return uri, register


def _aliases(uri):
    return {a: v for a, v in mlflow.MlflowClient(tracking_uri=uri).get_registered_model(NAME).aliases.items()}


def test_a_lower_scoring_slow_only_version_is_challenger_and_the_champion_stays(registry, tmp_path, capsys):
    uri, register = registry
    slowfast = register(0, "slowfast_tiny")
    assert assign_alias(NAME, slowfast, metrics={"top1": 0.94, "top5": 1.0}, metric="top1", eval_data="A") == "champion"
    slow = register(1, "slow_tiny")
    assert assign_alias(NAME, slow, metrics={"top1": 0.74, "top5": 0.98}, metric="top1", eval_data="A") == "challenger"
    assert _aliases(uri) == {"champion": slowfast, "challenger": slow}

    client = mlflow.MlflowClient(tracking_uri=uri)
    tags = client.get_model_version(NAME, slow).tags
    assert tags[TAG_PRESET] == "slow_tiny" and tags[TAG_EVAL_DATA] == "A" and tags["metric.top1"] == "0.74"
    assert tags[TAG_GIT_COMMIT]  # the commit checked out, or "unknown" outside git
    assert client.get_registered_model(NAME).description == REGISTERED_MODEL_DESCRIPTION

    # predict, as a user runs it, names the version and preset behind the alias
    video = make_video(tmp_path / "clip.mp4", width=64, height=48, num_frames=90)
    assert main(["predict", "--model", f"models:/{NAME}@champion", "--tracking-uri", uri, str(video), "--json",
                 "--clips", "1", "--top", "1"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["model_version"] == f"{NAME} version {slowfast} (@champion), preset slowfast_tiny"


def test_a_better_version_on_other_data_is_challenger_on_the_same_data_champion(registry):
    uri, register = registry
    first = register(0, "slowfast_tiny")
    assign_alias(NAME, first, metrics={"top1": 0.9}, metric="top1", eval_data="A")
    other_data = register(1, "slowfast_tiny")
    assert assign_alias(NAME, other_data, metrics={"top1": 0.99}, metric="top1", eval_data="B") == "challenger"
    assert _aliases(uri)["champion"] == first
    tie = register(2, "slowfast_tiny")
    assert assign_alias(NAME, tie, metrics={"top1": 0.9}, metric="top1", eval_data="A") == "challenger"
    better = register(3, "slowfast_tiny")
    assert assign_alias(NAME, better, metrics={"top1": 0.95}, metric="top1", eval_data="A") == "champion"
    assert _aliases(uri) == {"champion": better, "challenger": first}  # the champion it beat is the runner-up
    # re-evaluating the champion keeps it champion
    assert assign_alias(NAME, better, metrics={"top1": 0.95}, metric="top1", eval_data="A") == "champion"
