"""`slowfast predict`: multi-view scores of one real encoded video, equal to the evaluate stage's protocol."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slowfast.cli import main
from slowfast.data.datasets import KineticsDataset
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.sampling import SamplingConfig
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import TransformConfig
from slowfast.engine.evaluate import evaluate
from slowfast.models import create_model, pack_pathways
from slowfast.models.checkpoint import save_model
from tests.data.videos import make_video

CLASSES = ["waving", "jumping", "sitting"]
# The slowfast_tiny preset's geometry and test size, written out here so that the test checks predict's inference.
TINY_SAMPLING = SamplingConfig(slow_frames=4, alpha=8, tau=16, fps=30.0, test_clips=10)
TINY_TRANSFORM = TransformConfig(train_scale=(64, 80), crop=64, test_size=64, test_crops=3)


def make_checkpoint(directory: Path, *, seed: int = 0, classes: list[str] | None = CLASSES) -> Path:
    """A random slowfast_tiny with a wide fc (so the scores are far from uniform), and classes.json beside it."""
    torch.manual_seed(seed)
    model = create_model("slowfast_tiny", num_classes=3)
    torch.nn.init.normal_(model.head.fc.weight, std=2.0)
    directory.mkdir(parents=True, exist_ok=True)
    path = save_model(model, directory / "model.pt")
    if classes is not None:
        (directory / "classes.json").write_text(json.dumps(classes))
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    video = make_video(root / "clip.mp4", width=64, height=48, num_frames=90)
    return make_checkpoint(root / "ckpt"), video


def predict_json(capsys, *args: str) -> dict:
    assert main(["predict", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_is_the_evaluate_engine_on_the_evaluate_stage_views(assets, capsys, tmp_path):
    checkpoint, video = assets
    out = predict_json(capsys, video, "--checkpoint", checkpoint, "--top", "3")
    scores = {t["class"]: t["score"] for t in out["top"]}
    assert out["views"] == 30 and set(scores) == set(CLASSES)
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert [t["score"] for t in out["top"]] == sorted(scores.values(), reverse=True)

    # Reference: the evaluate stage's route (decode to shards, testing dataset, evaluate engine), geometry by hand.
    decode_videos({"v": video}, tmp_path / "shards", DecodeConfig(short_side=64), progress=False)
    from slowfast.models import load_model

    model = load_model(checkpoint)
    dataset = KineticsDataset(FrameShards(tmp_path / "shards"), [("v", 0)], sampling=TINY_SAMPLING,
                              transform=TINY_TRANSFORM, pack=functools.partial(pack_pathways, config=model.config),
                              train=False)
    assert dataset[0]["inputs"][1].shape == (30, 3, 32, 64, 64)
    expected = evaluate(model, dataset).scores[0]
    assert [t["class"] for t in out["top"]] == [CLASSES[i] for i in np.argsort(-expected)]
    np.testing.assert_allclose([scores[c] for c in CLASSES], expected, atol=1e-6)


def test_fewer_views_still_give_a_distribution_and_the_table_lists_the_top_classes(assets, capsys):
    checkpoint, video = assets
    one = predict_json(capsys, video, "--checkpoint", checkpoint, "--clips", "2", "--crops", "1", "--top", "3")
    assert one["views"] == 2
    assert sum(t["score"] for t in one["top"]) == pytest.approx(1.0, abs=1e-5)
    assert main(["predict", str(video), "--checkpoint", str(checkpoint), "--top", "2", "--clips", "2",
                 "--crops", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and "2 views" in lines[0]
    assert [line.split()[1] for line in lines[2:]] == [t["class"] for t in one["top"][:2]]


def test_missing_classes_json_names_the_classes_by_index(tmp_path, assets, capsys):
    _, video = assets
    checkpoint = make_checkpoint(tmp_path / "bare", classes=None)
    out = predict_json(capsys, video, "--checkpoint", checkpoint, "--clips", "1", "--crops", "1", "--top", "3")
    assert sorted(t["class"] for t in out["top"]) == ["0", "1", "2"]


@pytest.mark.parametrize("flags, message", [
    (["--clips", "0"], "--clips: got 0, allowed: >= 1"),
    (["--crops", "2"], "--crops: got 2, allowed: 1 or 3"),
    (["--top", "0"], "--top: got 0"),
    (["--short-side", "4"], "--short-side: got 4, allowed: 8..4096"),
])
def test_invalid_flags_fail_before_any_work_naming_the_flag(assets, capsys, flags, message):
    _, video = assets
    # The checkpoint does not exist: the flag error must come first.
    assert main(["predict", str(video), "--checkpoint", "missing.pt", *flags]) == 2
    assert message in capsys.readouterr().err


def test_unreadable_inputs_are_clear_errors(tmp_path, assets, capsys):
    checkpoint, video = assets
    assert main(["predict", str(tmp_path / "none.mp4"), "--checkpoint", str(checkpoint)]) == 2
    assert "none.mp4 does not exist" in capsys.readouterr().err

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["predict", str(corrupt), "--checkpoint", str(checkpoint)]) == 2
    assert "corrupt.mp4 cannot be decoded: cannot open as a media file" in capsys.readouterr().err

    assert main(["predict", str(video), "--checkpoint", str(tmp_path / "gone.pt")]) == 2
    assert "checkpoint" in (err := capsys.readouterr().err) and "gone.pt does not exist" in err

    not_ours = tmp_path / "weights.pt"
    torch.save({"model_state": {}}, not_ours)
    assert main(["predict", str(video), "--checkpoint", str(not_ours)]) == 2
    assert "convert it with `slowfast convert`" in capsys.readouterr().err


def test_unreachable_tracking_server_or_missing_store_is_a_clear_error(assets, capsys, tmp_path):
    from tests.conftest import free_port

    _, video = assets
    store = tmp_path / "none.db"
    assert main(["predict", str(video), "--model", "models:/sf@champion", "--tracking-uri", f"sqlite:///{store}"]) == 2
    assert f"{store} does not exist" in capsys.readouterr().err and not store.exists()
    server = f"http://127.0.0.1:{free_port()}"
    assert main(["predict", str(video), "--model", "models:/sf@champion", "--tracking-uri", server]) == 2
    assert f"MLflow tracking server {server}" in (err := capsys.readouterr().err) and "cannot be reached" in err
