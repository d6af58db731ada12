"""Multi-view testing: per-video aggregation of view scores, batching across videos, and the scores file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slowfast.engine import EvalConfig, VideoScores, evaluate, read_scores, write_scores

NUM_CLASSES = 4


class ChannelMeans(nn.Module):
    """Logits = per-channel mean of the slow input (channels = classes), times a weight of 1 (so it has a device)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, x):
        self.calls.append(x[0].shape[0])
        assert self.training is False
        return x[0].mean(dim=(2, 3, 4)) * self.scale


class ConstantViews(torch.utils.data.Dataset):
    """Video i has views[i] views; view v of video i has constant logits LOGITS[i][v] (fast input ignored)."""

    def __init__(self, views=(3, 1, 5, 2), single_view=False, labelled=True, multilabel=False):
        rng = np.random.default_rng(0)
        self.logits = [rng.normal(size=(v, NUM_CLASSES)).astype(np.float32) for v in views]
        self.single_view, self.labelled, self.multilabel = single_view, labelled, multilabel

    def __len__(self):
        return len(self.logits)

    def __getitem__(self, i):
        logits = torch.from_numpy(self.logits[i])
        slow = logits[:, :, None, None, None].expand(-1, -1, 2, 3, 3).clone()
        fast = torch.zeros(logits.shape[0], NUM_CLASSES, 4, 3, 3)
        item = {"inputs": [slow[0], fast[0]] if self.single_view else [slow, fast], "video_id": f"vid{i}", "index": i}
        if self.labelled:
            item["label"] = torch.tensor(i % NUM_CLASSES)
            if self.multilabel:
                item["label"] = torch.tensor([1.0, 0.0, 0.0, 1.0]) if i % 2 else torch.tensor([0.0, 1.0, 0.0, 0.0])
        return item


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("views_per_batch", [1, 2, 4, 7, 100])
def test_softmax_scores_are_averaged_over_each_videos_views_for_any_batching(views_per_batch):
    data, model = ConstantViews(), ChannelMeans()
    result = evaluate(model, data, EvalConfig(views_per_batch=views_per_batch))
    expected = np.stack([_softmax(z).mean(axis=0) for z in data.logits])
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-6)
    assert result.video_ids == ["vid0", "vid1", "vid2", "vid3"]
    assert result.labels.tolist() == [0, 1, 2, 3]
    assert max(model.calls) <= views_per_batch and sum(model.calls) == 11  # every view exactly once


def test_sigmoid_scores_take_the_max_over_views_for_multilabel_testing():
    data = ConstantViews(multilabel=True)
    result = evaluate(ChannelMeans(), data, EvalConfig(aggregate="max", activation="sigmoid", views_per_batch=3))
    expected = np.stack([(1 / (1 + np.exp(-z))).max(axis=0) for z in data.logits])
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-6)
    assert result.labels.shape == (4, NUM_CLASSES)


def test_single_view_items_are_videos_of_one_view_and_the_model_mode_is_restored():
    data, model = ConstantViews(single_view=True), ChannelMeans()
    model.train()
    result = evaluate(model, data, EvalConfig(activation="none", views_per_batch=3))
    np.testing.assert_allclose(result.scores, np.stack([z[0] for z in data.logits]), rtol=1e-6)
    assert model.training
    expected_top1 = np.mean([np.argmax(z[0]) == i % NUM_CLASSES for i, z in enumerate(data.logits)])
    assert result.summary()["top1"] == pytest.approx(expected_top1)


def test_scores_file_round_trips_single_and_multi_label_and_unlabelled(tmp_path):
    for kind, data in {
        "single": ConstantViews(),
        "multi": ConstantViews(multilabel=True),
        "unlabelled": ConstantViews(labelled=False),
    }.items():
        result = evaluate(ChannelMeans(), data)
        path = tmp_path / f"{kind}.parquet"
        write_scores(result, path)
        back = read_scores(path)
        assert back.video_ids == result.video_ids
        np.testing.assert_array_equal(back.scores, result.scores)
        if result.labels is None:
            assert back.labels is None
            with pytest.raises(ValueError, match="no labels"):
                back.summary()
        else:
            np.testing.assert_array_equal(back.labels, result.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.parquet", "single.parquet", "unlabelled.parquet"]


def test_multilabel_summary_adds_charades_map_computed_by_hand():
    scores = np.array([[0.9, 0.8], [0.2, 0.1], [0.6, 0.7]], dtype=np.float32)
    labels = np.array([[1, 0], [0, 0], [0, 1]], dtype=np.float32)
    # class 0: ranked 0.9 (+), 0.6, 0.2 -> AP 1; class 1: ranked 0.8, 0.7 (+), 0.1 -> AP 1/2
    summary = VideoScores(["a", "b", "c"], scores, labels).summary()
    assert summary["map"] == pytest.approx(0.75)
    assert summary["top1"] == pytest.approx(2 / 3)  # a: class 0 is positive; b: none; c: class 1 is positive
