"""Charades mAP equals scikit-learn's average_precision_score per class (ties included), classes without positives
dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from slowfast.config import ConfigError
from slowfast.metrics.charades import mean_average_precision


@pytest.mark.parametrize("seed", range(20))
def test_per_class_ap_equals_sklearn_on_random_scores_with_ties(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 60)), int(rng.integers(2, 12))
    scores = rng.random((n, c))
    if seed % 2:
        scores = np.round(scores * 4) / 4  # heavy ties
    labels = rng.random((n, c)) < rng.uniform(0.05, 0.6)
    labels[:, 0] = False  # a class without positives
    labels[rng.integers(n), -1] = True
    mean, per_class = mean_average_precision(scores, labels)
    expected = {
        k: average_precision_score(labels[:, k], scores[:, k]) for k in range(c) if labels[:, k].any()
    }
    assert set(np.flatnonzero(~np.isnan(per_class))) == set(expected)
    for k, ap in expected.items():
        assert per_class[k] == pytest.approx(ap, abs=1e-12)
    assert mean == pytest.approx(np.mean(list(expected.values())), abs=1e-12)


def test_perfect_ranking_gives_one_and_reversed_ranking_less():
    labels = np.eye(5, dtype=bool)
    assert mean_average_precision(np.eye(5), labels)[0] == 1.0
    worse, _ = mean_average_precision(1.0 - np.eye(5), labels)
    assert worse < 1.0


def test_accepts_torch_tensors_and_float_multi_hot_labels():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.3]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    mean, per_class = mean_average_precision(scores, labels)
    assert per_class.tolist() == [1.0, 1.0] and mean == 1.0


def test_no_positive_at_all_and_bad_shapes_fail_naming_the_argument():
    with pytest.raises(ConfigError, match="labels"):
        mean_average_precision(np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="labels"):
        mean_average_precision(np.ones((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ConfigError, match="scores"):
        mean_average_precision(np.ones(3), np.ones(3))
    with pytest.raises(ConfigError, match="scores"):
        mean_average_precision(np.array([[math.nan]]), np.ones((1, 1)))
