"""Fine-tuning starts from the pretrained backbone with a new head (Sec. 6), refusing any other network."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from slowfast.models import build_model, create_model
from slowfast.models.checkpoint import save_model
from slowfast.models.presets import preset_config
from slowfast.models.transfer import load_backbone


def test_backbone_weights_are_copied_exactly_and_the_head_is_new(tmp_path):
    pretrained = create_model("slowfast_tiny", num_classes=10)
    path = save_model(pretrained, tmp_path / "kinetics.pt")
    config = dataclasses.replace(preset_config("slowfast_tiny", num_classes=5), multilabel=True)
    model = build_model(config)
    fresh_head = model.head.fc.weight.detach().clone()
    load_backbone(model, path)
    for name, tensor in model.state_dict().items():
        if name.startswith("head."):
            continue
        assert torch.equal(tensor, pretrained.state_dict()[name]), name
    assert model.head.fc.weight.shape == (5, pretrained.head.fc.in_features)
    assert torch.equal(model.head.fc.weight, fresh_head)


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    path = save_model(create_model("slow_tiny", num_classes=10), tmp_path / "slow.pt")
    with pytest.raises(ValueError, match=r"not a backbone for this model: .*missing key"):
        load_backbone(create_model("slowfast_tiny", num_classes=3), path)
    other = save_model(create_model("slowfast_tiny", num_classes=3, fusion_kernel=3), tmp_path / "k3.pt")
    with pytest.raises(ValueError, match=r"not a backbone|another architecture"):
        load_backbone(create_model("slowfast_tiny", num_classes=3), other)
