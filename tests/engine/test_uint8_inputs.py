"""The clip datasets hand uint8 clips to the engine, which normalises them on its device: training, evaluation and
AVA detection give exactly what they gave when the loader normalised (same values, same float operations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

from slowfast.data.datasets import AvaDataset, KineticsDataset
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.sampling import SamplingConfig
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import TransformConfig
from slowfast.engine import EvalConfig, TrainConfig, evaluate, train
from slowfast.engine.detect import detect_actions
from slowfast.models import pack_pathways
from slowfast.models.detector import build_detector
from tests.data.videos import make_video
from tests.engine.engine_toy import TinyNet
from tests.models.small_models import small

SAMPLING = SamplingConfig(slow_frames=2, alpha=4, tau=8, test_clips=2)
TRANSFORM = TransformConfig(train_scale=(48, 60), crop=40, test_size=48)


def pack(clip: torch.Tensor) -> list[torch.Tensor]:
    return [clip[:, ::4], clip]


class LoaderNormalised(Dataset):
    """The same items with the inputs normalised in the loader, as the datasets did before (no ``normalize``)."""

    def __init__(self, base):
        self.base, self.collate = base, base.collate
        self.keyframes = getattr(base, "keyframes", None)  # AVA: detect_actions reads the boxes' coordinates

    def set_epoch(self, epoch):
        self.base.set_epoch(epoch)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        item = self.base[index]
        item["inputs"] = [self.base.normalize(x) for x in item["inputs"]]
        return item


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("uint8")
    sources = {f"v{i}": make_video(root / f"v{i}.mp4", width=64, height=48, num_frames=60) for i in range(2)}
    decode_videos(sources, root / "out", DecodeConfig(short_side=48), progress=False)
    return FrameShards(root / "out")


def kinetics(shards, train):
    return KineticsDataset(shards, [("v0", 0), ("v1", 1)] * 2, sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                           train=train, seed=3)


def test_training_and_validation_on_uint8_clips_equal_loader_normalised_floats(shards, tmp_path):
    assert kinetics(shards, True)[0]["inputs"][1].dtype == torch.uint8
    runs = []
    for name, wrap in (("device", lambda ds: ds), ("loader", LoaderNormalised)):
        torch.manual_seed(0)
        model = TinyNet(num_classes=2)
        config = TrainConfig(epochs=2, batch_size=2, base_lr=0.5)
        result = train(model, wrap(kinetics(shards, True)), config, out_dir=tmp_path / name,
                       val_set=wrap(kinetics(shards, False)))
        scores = evaluate(model, wrap(kinetics(shards, False)), EvalConfig(views_per_batch=4)).scores
        runs.append((model.state_dict(), result.history, scores))
    (weights, history, scores), (weights_ref, history_ref, scores_ref) = runs
    assert not torch.equal(weights["fc.weight"], TinyNet(num_classes=2).fc.weight)  # it did train
    for key, value in weights_ref.items():
        assert torch.equal(weights[key], value), key
    assert [{k: v for k, v in r.items() if k != "clips_per_s"} for r in history] == \
        [{k: v for k, v in r.items() if k != "clips_per_s"} for r in history_ref]
    np.testing.assert_array_equal(scores, scores_ref)


def test_ava_detection_on_uint8_clips_equals_loader_normalised_floats(shards):
    rows = [("v0", 900, 0.1, 0.2, 0.5, 0.9, 1, 0), ("v0", 900, 0.5, 0.0, 1.0, 1.0, 2, 1),
            ("v1", 901, 0.0, 0.5, 0.5, 1.0, 3, 0)]
    boxes = pd.DataFrame(rows, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "person_id"])
    config = small()
    dataset = AvaDataset(shards, boxes, class_ids=[1, 2, 3], sampling=SAMPLING, transform=TRANSFORM,
                         pack=lambda clip: pack_pathways(clip, config), train=False)
    torch.manual_seed(0)
    detector = build_detector(config, num_classes=3)
    on_device = detect_actions(detector, dataset, [1, 2, 3], batch_size=2)
    in_loader = detect_actions(detector, LoaderNormalised(dataset), [1, 2, 3], batch_size=2)
    assert len(on_device) == 3 * 3
    pd.testing.assert_frame_equal(on_device, in_loader, check_exact=True)
