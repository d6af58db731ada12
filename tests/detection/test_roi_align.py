"""RoIAlign equals a direct per-sample bilinear reference (torchvision's aligned/legacy semantics), forward and
gradient."""

from __future__ import annotations

import math

import pytest
import torch

from slowfast.config import ConfigError
from slowfast.detection.roi_align import RoIAlign, roi_align


def _bilinear_reference(img, y, x):
    """One bilinear sample of img (C, H, W) at (y, x): 0 beyond one pixel outside, clamped to the border."""
    _, height, width = img.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(img.shape[0], dtype=img.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * img[:, y0, x0]
        + (1 - ly) * lx * img[:, y0, x1]
        + ly * (1 - lx) * img[:, y1, x0]
        + ly * lx * img[:, y1, x1]
    )


def _roi_align_reference(features, boxes, out, scale, sampling_ratio, aligned):
    result = torch.zeros(len(boxes), features.shape[1], out, out, dtype=features.dtype)
    for k, (b, x1, y1, x2, y2) in enumerate(boxes.tolist()):
        offset = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (v * scale - offset for v in (x1, y1, x2, y2))
        w, h = x2 - x1, y2 - y1
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(h / out)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(w / out)
        for ph in range(out):
            for pw in range(out):
                total = torch.zeros(features.shape[1], dtype=features.dtype)
                for iy in range(max(gh, 0)):
                    for ix in range(max(gw, 0)):
                        y = y1 + ph * h / out + (iy + 0.5) * h / out / gh
                        x = x1 + pw * w / out + (ix + 0.5) * w / out / gw
                        total = total + _bilinear_reference(features[int(b)], y, x)
                result[k, :, ph, pw] = total / max(gh * gw, 1)
    return result


def _random_boxes(generator, n_images, count, size):
    corners = torch.rand(count, 4, generator=generator, dtype=torch.float64) * (size * 1.4) - size * 0.2
    x1, x2 = torch.minimum(corners[:, 0], corners[:, 2]), torch.maximum(corners[:, 0], corners[:, 2])
    y1, y2 = torch.minimum(corners[:, 1], corners[:, 3]), torch.maximum(corners[:, 1], corners[:, 3])
    batch = torch.randint(0, n_images, (count,), generator=generator).double()
    boxes = torch.stack([batch, x1, y1, x2, y2], dim=1)
    boxes[0, 1:] = torch.tensor([3.0, 3.0, 3.0, 3.0])  # empty box
    boxes[1, 1:] = torch.tensor([0.0, 0.0, float(size), float(size)])  # the whole image
    return boxes


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio, scale", [(0, 1.0), (2, 1.0), (0, 0.25), (1, 0.5)])
def test_roi_align_matches_per_sample_bilinear_reference(aligned, sampling_ratio, scale):
    generator = torch.Generator().manual_seed(7 + sampling_ratio)
    features = torch.randn(2, 3, 9, 11, generator=generator, dtype=torch.float64)
    boxes = _random_boxes(generator, 2, 12, size=int(11 / scale))
    ours = roi_align(features, boxes, 7, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=aligned)
    expected = _roi_align_reference(features, boxes, 7, scale, sampling_ratio, aligned)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_roi_align_float32_module_matches_reference_and_keeps_dtype():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(1, 4, 14, 14, generator=generator)
    boxes = _random_boxes(generator, 1, 6, size=224).float()
    pooler = RoIAlign(7, spatial_scale=1 / 16)
    out = pooler(features, boxes)
    assert out.dtype == torch.float32 and out.shape == (6, 4, 7, 7)
    expected = _roi_align_reference(features.double(), boxes.double(), 7, 1 / 16, 0, True)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_roi_align_gradient_passes_gradcheck():
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(2, 2, 5, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[0, 0.5, 0.7, 4.2, 3.9], [1, 1.3, 0.2, 5.8, 4.9], [1, -1.0, -1.0, 2.0, 7.0]],
                         dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, boxes, 3, sampling_ratio=2), (features,))
    assert torch.autograd.gradcheck(lambda f: roi_align(f, boxes, 2), (features,))


def test_roi_align_of_no_boxes_is_empty():
    out = roi_align(torch.randn(1, 3, 4, 4), torch.zeros(0, 5), (2, 3))
    assert out.shape == (0, 3, 2, 3)


@pytest.mark.parametrize(
    "boxes, key",
    [
        (torch.tensor([[2.0, 0, 0, 1, 1]]), "boxes"),
        (torch.tensor([[0.0, 0, 0, math.inf, 1]]), "boxes"),
        (torch.zeros(3, 4), "boxes"),
    ],
)
def test_roi_align_rejects_bad_boxes_naming_the_argument(boxes, key):
    with pytest.raises(ConfigError) as info:
        roi_align(torch.randn(2, 1, 4, 4), boxes, 2)
    assert info.value.key == key
