"""Drawing on RGB uint8 frames (H, W, 3): a panel of labels with score bars, labelled boxes, heat-map blends.

Sizes follow the frame (text about 1/18 of its height, at least 8 px), so a 64×48 test video and a 1080p film get
the same layout. Pillow's built-in scalable font is used: no font files to ship or find.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: colours of successive boxes (RGB), distinct on light and dark backgrounds
BOX_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 120, 255), (255, 255, 255))


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def text_size(height: int) -> int:
    """Font size for a frame ``height`` pixels high."""
    return max(8, round(height / 18))


def draw_labels(frame: np.ndarray, lines: Sequence[tuple[str, float]], *, title: str | None = None) -> np.ndarray:
    """``frame`` with a translucent panel at its top left listing ``(label, score)`` lines, each with a bar whose
    length is the score (0..1). Returns a new array."""
    image = Image.fromarray(frame).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = text_size(image.height)
    font = _font(size)
    rows = ([title] if title else []) + [f"{score:.2f} {label}" for label, score in lines]
    if not rows:
        return frame.copy()
    pad = max(2, size // 4)
    line_h = size + pad
    width = min(image.width, max(draw.textlength(r, font=font) for r in rows) + 2 * pad)
    draw.rectangle((0, 0, width, len(rows) * line_h + pad), fill=(0, 0, 0, 160))
    y = pad
    if title:
        draw.text((pad, y), title, fill=(255, 255, 255, 255), font=font)
        y += line_h
    for label, score in lines:
        bar = (width - 2 * pad) * float(np.clip(score, 0.0, 1.0))
        draw.rectangle((pad, y + size + 1, pad + bar, y + size + max(1, pad // 2)), fill=(255, 200, 0, 230))
        draw.text((pad, y), f"{score:.2f} {label}", fill=(255, 255, 255, 255), font=font)
        y += line_h
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


def draw_boxes(frame: np.ndarray, boxes: np.ndarray, labels: Sequence[Sequence[tuple[str, float]]]) -> np.ndarray:
    """``frame`` with each normalised ``[x1, y1, x2, y2]`` box outlined and its ``(label, score)`` lines written
    above it (below its top edge when there is no room above). Returns a new array."""
    image = Image.fromarray(frame).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    w, h = image.size
    size = text_size(h)
    font = _font(size)
    thick = max(1, round(min(w, h) / 150))
    for i, (box, lines) in enumerate(zip(np.asarray(boxes, np.float64).reshape(-1, 4), labels)):
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        x1, y1, x2, y2 = box * (w, h, w, h)
        draw.rectangle((x1, y1, x2, y2), outline=(*colour, 255), width=thick)
        rows = [f"{label} {score:.2f}" for label, score in lines]
        if not rows:
            continue
        line_h = size + 2
        block = len(rows) * line_h + 2
        top = y1 - block if y1 - block >= 0 else y1 + thick
        width = max(draw.textlength(r, font=font) for r in rows) + 4
        draw.rectangle((x1, top, x1 + width, top + block), fill=(*colour, 170))
        for j, row in enumerate(rows):
            draw.text((x1 + 2, top + 1 + j * line_h), row, fill=(0, 0, 0, 255), font=font)
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


@functools.lru_cache(maxsize=1)
def _jet() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def blend_heatmap(frame: np.ndarray, cam: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """``frame`` blended with the jet colour map of ``cam`` (H, W) in [0, 1] (resized to the frame if needed): the
    colour's weight is ``alpha · (0.3 + 0.7·cam)``, so hot regions are mostly colour and cold ones keep the picture."""
    h, w = frame.shape[:2]
    cam = np.asarray(cam, np.float32)
    if cam.shape != (h, w):
        cam = np.asarray(Image.fromarray(cam).resize((w, h), Image.BILINEAR))
    cam = np.clip(cam, 0.0, 1.0)
    colour = _jet()[(cam * 255).astype(np.uint8)].astype(np.float32)
    a = (alpha * (0.3 + 0.7 * cam))[..., None]
    return (frame.astype(np.float32) * (1 - a) + colour * a).round().astype(np.uint8)


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` in a translucent strip at its bottom left (panel names)."""
    image = Image.fromarray(frame).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = text_size(image.height)
    font = _font(size)
    width = draw.textlength(text, font=font) + 4
    draw.rectangle((0, image.height - size - 4, width, image.height), fill=(0, 0, 0, 160))
    draw.text((2, image.height - size - 3), text, fill=(255, 255, 255, 255), font=font)
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))
