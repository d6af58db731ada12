"""The person detector learns to find the synthetic actors, deduplicates with NMS, is deterministic, and its
checkpoints load with ``weights_only``; its metrics and augmentation keep their geometric meaning."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
import torch

from slowfast.config import ConfigError, from_mapping
from slowfast.detection.nms import box_iou
from slowfast.detection.person import (
    PersonDetectorConfig,
    PersonTrainConfig,
    _augment,
    build_person_detector,
    detect_persons,
    load_person_detector,
    person_detection_metrics,
    render_person_scenes,
    save_person_detector,
    train_person_detector,
)

HEIGHT, WIDTH = 72, 96
TINY = PersonDetectorConfig(input_size=(HEIGHT, WIDTH), widths=(8, 16, 32), stride=4, head_width=32)


def scenes(seed: int, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    return render_person_scenes(n, seed=seed, height=HEIGHT, width=WIDTH)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Convolutions this small do not gain from a second thread, and on a shared, loaded machine spinning OpenMP
    threads slow training several-fold; one thread keeps the module's runtime predictable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread):
    """The tiny detector trained on 640 frames (about 10-20 s on 2 cores) and 100 held-out frames."""
    images, boxes = scenes(0, 640)
    torch.manual_seed(0)
    model = build_person_detector(TINY)
    losses = []
    train_person_detector(
        model, images, boxes, PersonTrainConfig(epochs=12, batch_size=32), seed=0,
        on_epoch_end=lambda epoch, parts: losses.append(parts["loss"]),
    )
    return model, scenes(1, 100), losses


def test_detector_finds_held_out_actors_with_high_ap_recall_and_precision(trained):
    model, (images, boxes), losses = trained
    assert losses[-1] < 0.7 * losses[0]
    detections = detect_persons(model, images, score_threshold=0.05, batch_size=16)
    metrics = person_detection_metrics(detections, boxes, iou=0.5, score_threshold=0.8)
    assert metrics["num_groundtruth"] == sum(len(b) for b in boxes)
    assert metrics["ap50"] >= 0.8, metrics
    assert metrics["recall"] >= 0.7, metrics
    assert metrics["precision"] >= 0.8, metrics
    print("held-out person detection:", metrics)
    # The default threshold is the paper's 0.8: the same boxes as filtering the low-threshold output.
    default = detect_persons(model, images, batch_size=16)
    for low, high in zip(detections, default):
        np.testing.assert_array_equal(low[low[:, 4] > 0.8], high)


def test_nms_removes_the_duplicate_boxes_of_neighbouring_locations(trained):
    model, (images, _), _ = trained
    kept = detect_persons(model, images, score_threshold=0.3)
    model.config = dataclasses.replace(model.config, nms_iou=1.0)  # suppress nothing
    try:
        everything = detect_persons(model, images, score_threshold=0.3)
    finally:
        model.config = dataclasses.replace(model.config, nms_iou=0.5)
    assert sum(map(len, everything)) > 1.5 * sum(map(len, kept))
    for boxes in kept:
        iou = box_iou(torch.from_numpy(boxes[:, :4]), torch.from_numpy(boxes[:, :4])).fill_diagonal_(0)
        assert iou.numel() == 0 or float(iou.max()) <= 0.5
        assert np.all(np.diff(boxes[:, 4]) <= 0)  # by decreasing score
        assert np.all((boxes[:, :4] >= 0) & (boxes[:, :4] <= 1))


def _train_tiny(seed: int) -> OrderedDict:
    images, boxes = scenes(5, 24)
    torch.manual_seed(3)
    model = build_person_detector(dataclasses.replace(TINY, widths=(4, 8), head_width=8))
    train_person_detector(model, images, boxes, PersonTrainConfig(epochs=2, batch_size=8), seed=seed)
    return model.state_dict()


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    first, again, other = _train_tiny(7), _train_tiny(7), _train_tiny(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_checkpoint_round_trip_rebuilds_the_same_detector_and_equal_weights_give_equal_files(tmp_path):
    torch.manual_seed(1)
    model = build_person_detector(dataclasses.replace(TINY, widths=(4, 8), head_width=8, nms_iou=0.4)).eval()
    path = save_person_detector(model, tmp_path / "ckpt" / "person.pt")
    loaded = load_person_detector(path)
    assert loaded.config == model.config
    x = torch.randn(2, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not list(path.parent.glob(".*tmp"))
    # Byte for byte (a re-run is a no-op for DVC): the file does not record its temporary name.
    assert save_person_detector(loaded, tmp_path / "again.pt").read_bytes() == path.read_bytes()


class _NotWeights:
    pass


def test_checkpoint_with_foreign_objects_or_wrong_format_is_refused(tmp_path):
    torch.save({"format": "slowfast-person-detector/1", "config": {}, "state_dict": {}, "x": _NotWeights()},
               tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only"):
        load_person_detector(tmp_path / "evil.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a person-detector checkpoint"):
        load_person_detector(tmp_path / "other.pt")


@pytest.mark.parametrize(
    "cls, mapping, key",
    [
        (PersonDetectorConfig, {"stride": 3}, "stride"),
        (PersonDetectorConfig, {"stride": 16, "widths": [8, 8, 8]}, "stride"),
        (PersonDetectorConfig, {"input_size": [70, 96]}, "input_size"),
        (PersonDetectorConfig, {"score_threshold": 1.5}, "score_threshold"),
        (PersonDetectorConfig, {"anchors": 9}, "anchors"),
        (PersonTrainConfig, {"scale_jitter": [1.2, 0.8]}, "scale_jitter"),
        (PersonTrainConfig, {"epochs": 0}, "epochs"),
    ],
)
def test_invalid_settings_fail_naming_the_key(cls, mapping, key):
    with pytest.raises(ConfigError) as info:
        from_mapping(cls, mapping)
    assert info.value.key == key


def test_bad_images_or_boxes_fail_before_training():
    model = build_person_detector(dataclasses.replace(TINY, widths=(4, 8), head_width=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = np.zeros((2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="one array per image"):
        train_person_detector(model, images, [np.zeros((0, 4))], PersonTrainConfig(), seed=0)
    with pytest.raises(ValueError, match=r"boxes\[1\]"):
        train_person_detector(model, images, [np.zeros((0, 4)), np.array([[0.5, 0.5, 0.4, 0.9]])],
                              PersonTrainConfig(), seed=0)
    with pytest.raises(ValueError, match="uint8"):
        detect_persons(model, images.astype(np.float32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_metrics_count_matches_misses_and_duplicates_above_the_threshold():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0, 1, size=(20, 2, 2)), axis=1)
    gt = [corners[i : i + 4].reshape(-1, 4) for i in range(0, 20, 4)]  # rows x1, y1, x2, y2
    perfect = [np.concatenate([g, np.full((len(g), 1), 0.9)], axis=1) for g in gt]
    m = person_detection_metrics(perfect, gt)
    assert (m["ap50"], m["recall"], m["precision"]) == (1.0, 1.0, 1.0)
    # Drop one box of each image and duplicate another above the threshold: 3 of 4 found, 3 of 4 kept correct.
    flawed = [np.concatenate([p[1:], p[1:2]]) for p in perfect]
    m = person_detection_metrics(flawed, gt)
    assert m["recall"] == 0.75 and m["precision"] == 0.75
    assert m["ap50"] < 0.75 + 1e-9
    # The same duplicates below the threshold leave recall and precision alone.
    low = [np.concatenate([p[1:], p[1:2] * [1, 1, 1, 1, 0.5]]) for p in perfect]
    m = person_detection_metrics(low, gt)
    assert m["recall"] == 0.75 and m["precision"] == 1.0


def test_flip_and_zoom_move_the_boxes_with_the_pixels():
    n = 64
    rng = np.random.default_rng(0)
    images = np.zeros((n, HEIGHT, WIDTH, 3), dtype=np.uint8)
    boxes = np.zeros((n, 1, 4), dtype=np.float32)
    for i in range(n):
        x1, y1 = int(rng.integers(8, WIDTH - 40)), int(rng.integers(8, HEIGHT - 30))
        x2, y2 = x1 + int(rng.integers(10, 30)), y1 + int(rng.integers(10, 20))
        images[i, y1:y2, x1:x2] = 255
        boxes[i, 0] = [x1 / WIDTH, y1 / HEIGHT, x2 / WIDTH, y2 / HEIGHT]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    config = PersonTrainConfig(scale_jitter=(0.7, 1.4), min_visible=1.0)
    out, moved, valid = _augment(x, torch.from_numpy(boxes), torch.ones(n, 1, dtype=torch.bool), config,
                                 torch.Generator().manual_seed(0))
    assert valid.sum() > n // 4  # most boxes stay fully visible
    checked = 0
    for i in np.flatnonzero(valid[:, 0].numpy()):
        ys, xs = np.nonzero(out[i, 0].numpy() > 0.5)  # brighter than half: pixels mostly inside the rectangle
        found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / [WIDTH, HEIGHT, WIDTH, HEIGHT]
        np.testing.assert_allclose(found, moved[i, 0].numpy(), atol=1.5 / HEIGHT)
        checked += 1
    assert checked == int(valid.sum())
