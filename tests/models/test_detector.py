"""The AVA detector of Sec. 5: RoI scores per box from a dilated SlowFast backbone, Kinetics init, its checkpoint."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slowfast.config import ConfigError
from slowfast.data.datasets import AvaDataset, ava_collate
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.sampling import SamplingConfig
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import TransformConfig
from slowfast.models import build_model, create_model, pack_pathways, preset_config
from slowfast.models.checkpoint import DETECTOR_FORMAT, load_model, save_model
from slowfast.models.detector import AvaDetector, RoIHead, build_detector, detector_from_pretrained, load_detector
from tests.data.videos import make_video
from tests.models.small_models import clip, small

SIZE = 64  # input pixels: res5 is 4×4 at stride 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small do not gain from a second intra-op thread; on a loaded machine its spinning costs a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@torch.no_grad()
def _randomised(model):
    """Random BN parameters and statistics and biases on top of the random conv and fc init, so that every tensor
    differs from its default and one lost or mixed up on the way changes the scores."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
            m.running_mean.normal_(0.0, 0.1, generator=gen)
        if getattr(m, "bias", None) is not None:
            m.bias.normal_(0.0, 0.1, generator=gen)
    return model


def _boxes(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_scores_are_one_row_per_box_over_a_batch_of_two():
    detector = build_detector(small(), num_classes=6).eval()
    boxes = _boxes([[0, 0, 0, 63, 63], [0, 8, 8, 30, 40], [1, 20, 4, 60, 50], [1, 0, 0, 16, 16], [0, 40, 40, 64, 64]])
    with torch.no_grad():
        scores = detector(clip(detector.config, size=SIZE), boxes)
        none = detector(clip(detector.config, size=SIZE), boxes[:0])
    assert scores.shape == (5, 6) and none.shape == (0, 6)


def test_a_box_gets_the_same_scores_whatever_other_boxes_are_scored_with_it():
    detector = build_detector(small(), num_classes=6).eval()
    inputs = clip(detector.config, size=SIZE)
    box = [1, 10, 12, 50, 60]
    with torch.no_grad():
        alone = detector(inputs, _boxes([box]))
        crowd = detector(inputs, _boxes([[0, 0, 0, 20, 20], [1, 30, 2, 63, 40], box, [0, 10, 12, 50, 60]]))
    torch.testing.assert_close(crowd[2:3], alone, rtol=0, atol=1e-6)
    # The same box on the other clip of the batch sees other features.
    assert not torch.allclose(crowd[3:4], alone, atol=1e-4)


def test_moving_a_box_onto_an_object_changes_its_scores():
    torch.manual_seed(0)
    config = small(zero_init_residual=False)
    detector = build_detector(config, num_classes=6).eval()
    # A bright square on a flat background, in every frame of both pathways.
    inputs = [torch.zeros(1, 3, config.pathway_frames(p), SIZE, SIZE) for p in config.pathways]
    for x in inputs:
        x[..., 36:60, 36:60] = 2.0
    on_object, beside, elsewhere = [0, 36, 36, 60, 60], [0, 4, 4, 28, 28], [0, 4, 36, 28, 60]
    with torch.no_grad():
        scores = detector(inputs, _boxes([on_object, beside, elsewhere]))
    assert (scores[0] - scores[1]).abs().max() > 1e-3  # far above float noise (~1e-7)
    assert (scores[0] - scores[2]).abs().max() > 1e-2


def test_a_box_over_one_res5_cell_pools_that_cells_temporal_mean_in_each_pathway():
    """The head's geometry (PySlowFast's AVA head): mean over time, aligned RoIAlign 7×7 at 1/16, max over 7×7.
    A box covering exactly one cell samples that cell's centre once (the middle bin); every other sample mixes in
    its zero neighbours, so the max is the cell's value. Unaligned sampling, a mean instead of the max, a maximum
    over time or another scale would each give another number."""
    head = RoIHead([2, 1], num_classes=3, strides=[16, 16], dropout=0.0).train()  # logits out
    with torch.no_grad():
        head.fc.weight.copy_(torch.eye(3))  # logits = the pooled features
        head.fc.bias.zero_()
    slow, fast = torch.zeros(1, 2, 4, 4, 4), torch.zeros(1, 1, 8, 4, 4)
    slow[0, 1, :, 2, 1] = torch.tensor([1.0, 2.0, 3.0, 6.0])  # channel 1, row 2, column 1
    fast[0, 0, :, 2, 1] = torch.arange(8.0)
    cell = _boxes([[0, 16, 32, 32, 48]])  # x from 16 to 32 (column 1), y from 32 to 48 (row 2)
    pooled = head([slow, fast], cell)
    torch.testing.assert_close(pooled, torch.tensor([[0.0, slow[0, 1, :, 2, 1].mean(), fast[0, 0, :, 2, 1].mean()]]))


def test_gradients_reach_the_head_the_laterals_and_both_pathways():
    detector = build_detector(small(), num_classes=6).train()
    boxes = _boxes([[0, 4, 4, 40, 60], [1, 20, 10, 60, 50], [1, 0, 0, 30, 30]])
    logits = detector(clip(detector.config, size=SIZE), boxes)
    labels = torch.zeros_like(logits)
    labels[:, 1] = 1.0
    F.binary_cross_entropy_with_logits(logits, labels).backward()
    for name in ("head.fc.weight", "head.fc.bias", "fuse_pool1.conv.weight", "slow.stem.conv.weight",
                 "fast.stem.conv.weight", "slow.res5.0.bn_c.weight", "fast.res5.0.shortcut.conv.weight"):
        grad = detector.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("overrides", [{}, {"arch": "slow"}, {"arch": "fast"}, {"fast_input": "half_res"}])
def test_res5_map_is_at_stride_16_twice_the_classifiers_with_the_same_weight_shapes(overrides):
    config = small(**overrides)
    classifier, detector = build_model(config), build_detector(config, num_classes=5)
    inputs = clip(config, batch=1, size=SIZE)
    with torch.no_grad():
        wide, narrow = detector.forward_features(inputs), classifier.forward_features(inputs)
    for pathway, roi, f_det, f_cls in zip(config.pathways, detector.head.rois, wide, narrow):
        assert f_det.shape[-2:] == (2 * f_cls.shape[-2], 2 * f_cls.shape[-1])
        # Each pathway's RoIAlign maps input pixels onto its own res5 map: 1/16 (1/32 for half-resolution frames).
        assert roi.spatial_scale == f_det.shape[-1] / SIZE
        assert f_det.shape[2] == config.pathway_frames(pathway)
    assert wide[0].shape[-1] == SIZE // 16
    shapes = {k: v.shape for k, v in classifier.state_dict().items()}
    assert {k: v.shape for k, v in detector.state_dict().items()} == shapes


def test_eval_scores_are_the_sigmoid_of_the_training_logits():
    detector = build_detector(small(dropout=0.0), num_classes=6).eval()
    inputs, boxes = clip(detector.config, size=SIZE), _boxes([[0, 0, 0, 40, 40], [1, 20, 20, 64, 64]])
    with torch.no_grad():
        scores = detector(inputs, boxes)
        detector.head.train()  # backbone BN still in eval: only the head's output changes
        logits = detector(inputs, boxes)
    assert ((scores > 0) & (scores < 1)).all()
    assert ((logits < 0) | (logits > 1)).any()
    torch.testing.assert_close(scores, torch.sigmoid(logits))


def test_kinetics_checkpoint_initialises_every_backbone_weight_and_a_new_head(tmp_path):
    kinetics = _randomised(create_model("slowfast_tiny", num_classes=10))
    path = save_model(kinetics, tmp_path / "model.pt", meta={"preset": "slowfast_tiny"})
    detector = detector_from_pretrained(path, num_classes=4)
    assert isinstance(detector, AvaDetector)
    assert detector.config == dataclasses.replace(kinetics.config, num_classes=4, res5_dilation=2, multilabel=True)
    source, target = kinetics.state_dict(), detector.state_dict()
    backbone = [k for k in source if not k.startswith("head.")]
    assert backbone == [k for k in target if not k.startswith("head.")]
    assert all(torch.equal(target[k], source[k]) for k in backbone)
    fc = detector.head.fc
    assert fc.weight.shape == (4, kinetics.head.fc.in_features)
    assert torch.equal(fc.bias, torch.zeros(4))
    assert 0.008 < fc.weight.std().item() < 0.012  # normal(0, 0.01) over 4 × 640 draws


def test_checkpoint_of_another_architecture_is_refused_naming_what_differs(tmp_path):
    slowfast = preset_config("slowfast_tiny")
    slow_path = save_model(create_model("slow_tiny"), tmp_path / "slow.pt")
    with pytest.raises(ValueError, match=r"slow\.pt: not a backbone for this model: .*"
                                         r"missing key\(s\): \[in fuse_pool1, fuse_res2, fuse_res3, fuse_res4, fast\]"):
        detector_from_pretrained(slow_path, num_classes=4, config=slowfast)
    # Same weight shapes, another frame-rate ratio: the lateral strides would silently differ.
    other_alpha = save_model(build_model(dataclasses.replace(slowfast, alpha=4)), tmp_path / "alpha4.pt")
    with pytest.raises(ValueError, match=r"another architecture: alpha=4 \(wanted 8\)"):
        detector_from_pretrained(other_alpha, num_classes=4, config=slowfast)
    with pytest.raises(ConfigError, match="num_classes"):
        detector_from_pretrained(tmp_path / "absent.pt", num_classes=0)  # checked before the file is read


def test_detector_round_trips_through_its_own_checkpoint_format(tmp_path):
    detector = _randomised(build_detector(small(nonlocal_blocks=(0,)), num_classes=6))
    path = save_model(detector, tmp_path / "detector.pt", meta={"stage": "ava"})
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == DETECTOR_FORMAT
    loaded = load_detector(path)
    assert isinstance(loaded, AvaDetector) and not loaded.training
    assert loaded.config == detector.config
    inputs, boxes = clip(detector.config, size=SIZE), _boxes([[0, 4, 4, 40, 60], [1, 20, 10, 60, 50]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs, boxes), detector.eval()(inputs, boxes), rtol=0, atol=0)
    # Neither loader takes the other's file, although the weights would fit.
    with pytest.raises(ValueError, match=r"'slowfast-ava-detector/1' is not supported; allowed: 'slowfast/1'; "
                                         r"load it with slowfast\.models\.detector\.load_detector"):
        load_model(path)
    with pytest.raises(ValueError, match=r"not supported; allowed: 'slowfast/1'"):
        detector_from_pretrained(path, num_classes=6)
    classifier = save_model(build_model(small()), tmp_path / "classifier.pt")
    with pytest.raises(ValueError, match=r"'slowfast/1' is not supported; allowed: 'slowfast-ava-detector/1'"):
        load_detector(classifier)


def test_invalid_configs_and_boxes_fail_before_the_backbone_runs():
    with pytest.raises(ConfigError, match=r"^num_classes: must be an integer >= 1"):
        build_detector(small(), num_classes=0)
    with pytest.raises(ConfigError, match=r"^res5_dilation: .*needs 2, got 1"):
        AvaDetector(small(multilabel=True))
    with pytest.raises(ConfigError, match=r"^multilabel: "):
        AvaDetector(small(res5_dilation=2))
    detector = build_detector(small(), num_classes=6)
    inputs = clip(detector.config, size=SIZE)
    with pytest.raises(ValueError, match=r"boxes must be \(K, 5\)"):
        detector(inputs, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"batch indices in \[0, 2\)"):
        detector(inputs, _boxes([[0, 0, 0, 8, 8], [2, 0, 0, 8, 8]]))


def test_detector_fits_a_real_ava_batch_from_encoded_video_through_ava_collate(tmp_path):
    """The data contract end to end: AvaDataset items (boxes in input pixels) → ava_collate → detector → BCE."""
    video = make_video(tmp_path / "v.mp4", width=64, height=48, num_frames=60)
    decode_videos({"v": video}, tmp_path / "shards", DecodeConfig(short_side=48), progress=False)
    rows = [("v", 900, 0.1, 0.2, 0.5, 0.9, 1, 0), ("v", 900, 0.5, 0.0, 1.0, 1.0, 2, 1),
            ("v", 901, 0.0, 0.5, 0.5, 1.0, 3, 0), ("v", 901, 0.0, 0.5, 0.5, 1.0, 1, 0)]
    boxes = pd.DataFrame(rows, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "person_id"])
    config = small(zero_init_residual=False, dropout=0.0)
    dataset = AvaDataset(FrameShards(tmp_path / "shards"), boxes, class_ids=[1, 2, 3],
                         sampling=SamplingConfig(slow_frames=2, alpha=4, tau=8, test_clips=1),
                         transform=TransformConfig(train_scale=(48, 56), crop=48, test_size=48),
                         pack=lambda frames: pack_pathways(frames, config), train=False)
    batch = ava_collate([dataset[0], dataset[1]])
    batch["inputs"] = [dataset.normalize(x) for x in batch["inputs"]]  # uint8 clips -> floats, as the engine does
    torch.manual_seed(0)
    detector = build_detector(config, num_classes=3).train()
    optimizer = torch.optim.SGD(detector.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(8):
        logits = detector(batch["inputs"], batch["boxes"])
        assert logits.shape == batch["labels"].shape == (3, 3)
        loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_detector_runs_without_importing_torchvision():
    code = (
        "import sys, torch\n"
        "from slowfast.models.detector import build_detector\n"
        "from slowfast.models import preset_config\n"
        "d = build_detector(preset_config('slow_tiny', depths=[1, 1, 1, 1], width=8), 3).eval()\n"
        "s = d([torch.zeros(1, 3, 4, 32, 32)], torch.tensor([[0., 0., 0., 16., 16.]]))\n"
        "assert s.shape == (1, 3)\n"
        "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
