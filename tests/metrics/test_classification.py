"""Classification metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slowfast.metrics.classification import (
    classification_summary,
    confusion_matrix,
    per_class_accuracy,
    top_k_accuracy,
    top_k_hits,
    top_k_predictions,
)

# 4 samples, 4 classes. Rankings (best first): s0: 2,1,0,3  s1: 0,3,1,2  s2: 3,2,1,0  s3: 1,0,2,3
SCORES = np.array(
    [
        [0.1, 0.3, 0.5, 0.05],
        [0.6, 0.1, 0.05, 0.2],
        [0.0, 0.1, 0.2, 0.7],
        [0.3, 0.4, 0.2, 0.1],
    ]
)
LABELS = np.array([2, 3, 0, 0])  # s0 right at 1; s1 right at 2; s2 only at 4; s3 right at 2


def test_top_k_accuracy_matches_hand_count():
    assert top_k_accuracy(SCORES, LABELS, 1) == 0.25
    assert top_k_accuracy(SCORES, LABELS, 2) == 0.75
    assert top_k_accuracy(SCORES, LABELS, 3) == 0.75
    assert top_k_accuracy(SCORES, LABELS, 4) == 1.0
    assert top_k_accuracy(SCORES, LABELS, 5) == 1.0  # k beyond the class count means every class


def test_torch_tensors_give_the_same_result_as_numpy():
    assert top_k_accuracy(torch.tensor(SCORES), torch.tensor(LABELS), 2) == top_k_accuracy(SCORES, LABELS, 2)


def test_ties_rank_the_lower_class_index_first():
    assert top_k_predictions(np.array([[0.5, 0.9, 0.9, 0.5]]), 3).tolist() == [[1, 2, 0]]


def test_multi_hot_labels_count_a_hit_when_any_positive_class_is_in_top_k():
    multi = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=np.float32)
    assert top_k_hits(SCORES, multi, 1).tolist() == [False, False, True, False]
    assert top_k_hits(SCORES, multi, 3).tolist() == [True, True, True, True]


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_per_class_accuracy_is_recall_and_nan_for_absent_classes():
    acc = per_class_accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 4)
    assert acc[:3].tolist() == [0.5, 1.0, 2 / 3]
    assert np.isnan(acc[3])


def test_summary_mean_class_accuracy_averages_classes_not_samples():
    # predictions (top-1): 2, 0, 3, 1 -> class 0: 0/2 right, class 2: 1/1, class 3: 0/1
    summary = classification_summary(SCORES, LABELS)
    assert summary["top1"] == 0.25
    assert summary["top5"] == 1.0
    assert summary["mean_class_accuracy"] == pytest.approx((0 + 1 + 0) / 3)


def test_out_of_range_or_misshaped_inputs_are_rejected():
    with pytest.raises(ValueError, match="labels must lie in"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="labels must be"):
        top_k_accuracy(SCORES, LABELS[:3], 1)
