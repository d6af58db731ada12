"""NMS keeps exactly what a naive greedy loop keeps, in decreasing-score order; batched NMS never suppresses across
categories."""

from __future__ import annotations

import pytest
import torch

from slowfast.config import ConfigError
from slowfast.detection.nms import batched_nms, box_iou, nms


def _naive_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _naive_nms(boxes, scores, threshold):
    remaining = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [j for j in remaining if _naive_iou(boxes[best], boxes[j]) <= threshold]
    return kept


def _random(generator, count):
    xy = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 50
    wh = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.randint(0, 12, (count,), generator=generator).double() / 12  # many tied scores
    return boxes, scores


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_nms_keeps_the_naive_greedy_selection_in_score_order(seed, threshold):
    boxes, scores = _random(torch.Generator().manual_seed(seed), 60)
    boxes[5] = boxes[4]  # an exact duplicate
    kept = nms(boxes, scores, threshold)
    assert kept.dtype == torch.int64
    assert kept.tolist() == _naive_nms(boxes.tolist(), scores.tolist(), threshold)


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_equals_nms_per_category_merged_by_score(seed):
    generator = torch.Generator().manual_seed(100 + seed)
    boxes, scores = _random(generator, 80)
    idxs = torch.randint(0, 4, (80,), generator=generator)
    kept = batched_nms(boxes, scores, idxs, 0.5)
    expected = []
    for category in range(4):
        members = torch.nonzero(idxs == category).squeeze(1).tolist()
        picked = _naive_nms([boxes[i].tolist() for i in members], [scores[i].item() for i in members], 0.5)
        expected += [members[p] for p in picked]
    expected.sort(key=lambda i: (-scores[i].item(), i))
    assert kept.tolist() == expected


def test_box_iou_matches_naive_pairs():
    boxes, _ = _random(torch.Generator().manual_seed(1), 9)
    matrix = box_iou(boxes[:4], boxes)
    for i in range(4):
        for j in range(9):
            assert matrix[i, j].item() == pytest.approx(_naive_iou(boxes[i].tolist(), boxes[j].tolist()), abs=1e-12)


def test_nms_of_no_boxes_and_bad_shapes():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ConfigError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ConfigError, match="idxs"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)
