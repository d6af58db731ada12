"""The engine drives the project's SlowFast model: training, validation and the final model file."""

from __future__ import annotations

import functools

import pytest
import torch

from slowfast.engine import TrainConfig, train
from slowfast.engine.train import _validation_config
from slowfast.models import create_model, load_model, pack_pathways

FRAMES, SIZE, CLASSES = 32, 16, 3  # slowfast_tiny: αT = 8·4 = 32 frames; 16² keeps a CPU step cheap


class PackedClips(torch.utils.data.Dataset):
    """Clips (C, αT, H, W) split into pathways by ``pack`` (as slowfast.data.datasets does); ``views`` > 0 gives
    testing items with that many views."""

    def __init__(self, n, pack, *, views=0, multilabel=False):
        self.n, self.pack, self.views, self.multilabel, self.epoch = n, pack, views, multilabel, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(self.epoch * 1000 + index)
        frames = torch.randn(max(self.views, 1), 3, FRAMES, SIZE, SIZE, generator=g)
        inputs = self.pack(frames) if self.views else self.pack(frames[0])
        label = torch.tensor(index % CLASSES)
        if self.multilabel:
            label = torch.nn.functional.one_hot(label, CLASSES).float()
        return {"inputs": inputs, "label": label, "video_id": f"v{index}", "index": index}


@pytest.mark.parametrize("multilabel", [False, True])
def test_slowfast_tiny_trains_validates_and_saves_a_loadable_model(tmp_path, multilabel):
    torch.manual_seed(0)
    model = create_model("slowfast_tiny", num_classes=CLASSES, multilabel=multilabel)
    pack = functools.partial(pack_pathways, config=model.config)
    config = TrainConfig(epochs=1, batch_size=2, base_lr=0.05, loss="bce" if multilabel else "cross_entropy")
    result = train(model, PackedClips(4, pack, multilabel=multilabel), config, out_dir=tmp_path,
                   val_set=PackedClips(2, pack, views=2, multilabel=multilabel))
    assert result.step == 2 and 0 <= result.history[0]["val_top1"] <= 1
    assert ("val_map" in result.history[0]) == multilabel
    assert result.weights == tmp_path / "model.pt"
    loaded = load_model(result.weights)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    # A multi-label head already returns sigmoid scores in eval mode: validation must not apply a second sigmoid.
    assert _validation_config(model, config).activation == ("none" if multilabel else "softmax")


def test_the_same_training_twice_writes_byte_identical_model_files(tmp_path):
    files = []
    for run in ("a", "b"):
        torch.manual_seed(0)
        model = create_model("slowfast_tiny", num_classes=CLASSES)
        pack = functools.partial(pack_pathways, config=model.config)
        result = train(model, PackedClips(4, pack), TrainConfig(epochs=1, batch_size=2), out_dir=tmp_path / run)
        files.append(result.weights.read_bytes())
    assert files[0] == files[1]
