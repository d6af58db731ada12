"""Grad-CAM maps: one per pathway, of each pathway's input shape, and hot where the evidence is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slowfast.data.transforms import TransformConfig, normalize
from slowfast.models import create_model, pack_pathways
from slowfast.models.detector import build_detector
from slowfast.visualize.gradcam import grad_cam

SIZE = 128
# Background at the normalisation mean (0.45 · 255): a zero input, so only the squares excite the network.
BACKGROUND = round(0.45 * 255)


def two_squares(frames: int = 32, side: int = 24) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """uint8 clip (1, 3, frames, SIZE, SIZE): a static square at the bottom left and a square moving left to right
    across the top right quarter; returns the clip and the moving square's (x0, y0) per frame."""
    video = np.full((frames, SIZE, SIZE, 3), BACKGROUND, np.uint8)
    video[:, 84 : 84 + side, 12 : 12 + side] = 250  # static
    path = []
    for t in range(frames):
        x0, y0 = 68 + round(t * (SIZE - side - 4 - 68) / (frames - 1)), 16
        video[t, y0 : y0 + side, x0 : x0 + side] = 10  # moving
        path.append((x0, y0))
    return torch.from_numpy(video).permute(3, 0, 1, 2)[None].contiguous(), path


def inputs_of(model, clip):
    return pack_pathways(normalize(clip, TransformConfig()), model.config)


def quarter_means(cam: np.ndarray) -> dict[str, float]:
    h = SIZE // 2
    return {"top_left": cam[..., :h, :h].mean(), "top_right": cam[..., :h, h:].mean(),
            "bottom_left": cam[..., h:, :h].mean(), "bottom_right": cam[..., h:, h:].mean()}


@pytest.mark.parametrize("preset", ["slowfast_tiny", "slow_tiny"])
def test_maps_have_each_pathways_input_shape_and_lie_in_unit_range(preset):
    torch.manual_seed(0)
    model = create_model(preset, num_classes=4).eval()
    clip, _ = two_squares()
    inputs = inputs_of(model, clip)
    result = grad_cam(model, inputs, target=1)
    assert len(result.maps) == len(model.config.pathways)
    for x, m in zip(inputs, result.maps):
        assert m.shape == (1, *x.shape[2:])  # (N, T_p, H, W)
        assert float(m.min()) >= 0 and float(m.max()) == pytest.approx(1.0)
    with torch.inference_mode():
        np.testing.assert_allclose(result.scores, model(inputs), rtol=1e-5, atol=1e-6)
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_fast_pathway_of_time_differences_looks_at_the_moving_square_not_the_static_one():
    """A Fast pathway fed time differences (Table 5c, "time diff") sees only motion: its map is hot over the moving
    square (top right) and cold over the static one (bottom left), in every frame; the Slow pathway sees both."""
    torch.manual_seed(0)
    model = create_model("slowfast_tiny", num_classes=2, fast_input="tdiff").eval()
    with torch.no_grad():  # class 0 adds up every res5 channel: a positive score wherever features fire
        model.head.fc.weight[0].abs_()
    clip, path = two_squares()
    slow_map, fast_map = (m[0].numpy() for m in grad_cam(model, inputs_of(model, clip), target=0).maps)
    fast = quarter_means(fast_map)
    assert max(fast, key=fast.get) == "top_right"
    assert fast["top_right"] > 3 * fast["bottom_left"]
    for t in range(1, fast_map.shape[0]):  # frame 0 has no difference to the one before
        x0, y0 = path[t]
        inside = fast_map[t, y0 : y0 + 24, x0 : x0 + 24].mean()
        assert inside > 2 * fast_map[t, 84 : 84 + 24, 12 : 12 + 24].mean(), f"frame {t}"
    slow = quarter_means(slow_map)
    assert slow["bottom_left"] > 3 * slow["bottom_right"]  # the static square is evidence for the Slow pathway


def test_detector_maps_exist_even_when_its_sigmoid_scores_saturate():
    """The target is the logit: a box scored 1.0000 by the sigmoid still gets a map (its gradient is not zero)."""
    torch.manual_seed(0)
    config = create_model("slowfast_tiny", num_classes=2).config
    detector = build_detector(config, num_classes=3).eval()
    torch.nn.init.constant_(detector.head.fc.bias, 30.0)
    clip, _ = two_squares()
    inputs = inputs_of(detector, clip)
    boxes = torch.tensor([[0.0, 60.0, 8.0, 124.0, 48.0], [0.0, 4.0, 76.0, 44.0, 116.0]])
    result = grad_cam(detector, inputs, boxes=boxes)
    with torch.inference_mode():
        expected = detector(inputs, boxes)
    assert float(expected.min()) == 1.0  # saturated in float32
    np.testing.assert_allclose(result.scores, expected, atol=1e-6)
    assert [m.shape for m in result.maps] == [(1, *x.shape[2:]) for x in inputs]
    assert all(float(m.max()) == pytest.approx(1.0) for m in result.maps)
