"""Drawing the synthetic scenes and encoding them as real H.264 mp4 files.

A scene is a static, randomly textured background and a few *sprites*: an ellipse, rectangle or diamond with a
random size, elongation, pair of colours and a sinusoidal grating painted in its own frame of reference (so a
rotation is visible even for a shape symmetric under half a turn). Every one of these is drawn independently of
the motion class. A sprite's pose per frame (centre, log-scale, angle) comes from
:mod:`slowfast.data.synthetic.motions`. Edges are anti-aliased, so sub-pixel motion is rendered faithfully.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from slowfast.utils.io import atomic_path

__all__ = ["Sprite", "Track", "draw_frames", "encode_mp4", "random_background", "random_sprite"]

SHAPES = ("ellipse", "rectangle", "diamond")
#: Peak colour amplitude (of 255) of the background gratings: texture as a nuisance, faint enough that the moving
#: objects stay the salient structure of the frame.
GRATING_CONTRAST = 10.0


@dataclass(frozen=True)
class Sprite:
    """A textured shape. ``half_length`` (pixels, at log-scale 0) is along its long axis; ``aspect`` = long/short."""

    shape: str
    half_length: float
    aspect: float
    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    stripe_period: float


@dataclass(frozen=True)
class Track:
    """A sprite and its pose at every frame: centre (pixels), log-scale and clockwise angle (radians)."""

    sprite: Sprite
    poses: np.ndarray  # (num_frames, 4): cx, cy, log_scale, angle


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, size=3)


def random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (H, W, 3) float32 background: a random colour plus two random gratings of random orientation."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.broadcast_to(_colour(rng) * 0.8 + 25.0, (height, width, 3)).astype(np.float32)
    for _ in range(2):
        theta, period = rng.uniform(0, math.pi), rng.uniform(12.0, 60.0)
        wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + rng.uniform(0, 6.3))
        image = image + wave[..., None] * rng.uniform(-GRATING_CONTRAST, GRATING_CONTRAST, size=3).astype(np.float32)
    return image


def random_sprite(
    rng: np.random.Generator, *, short_side: int, background: np.ndarray, size: tuple[float, float] = (0.13, 0.2)
) -> Sprite:
    """A sprite whose colours stand out from the background's mean colour (distance >= 90 of 255 in RGB); its
    half-length is drawn from ``size`` (fractions of the frame's short side)."""
    mean = background.reshape(-1, 3).mean(axis=0)
    while True:
        colour = _colour(rng)
        if np.linalg.norm(colour - mean) >= 90.0:
            break
    other = np.clip(colour + rng.uniform(-70.0, 70.0, size=3), 0.0, 255.0)
    return Sprite(
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        half_length=float(rng.uniform(*size) * short_side),
        aspect=float(rng.uniform(1.6, 2.4)),
        colour_a=tuple(float(c) for c in colour),
        colour_b=tuple(float(c) for c in other),
        stripe_period=float(rng.uniform(6.0, 12.0)),
    )


def _draw(canvas: np.ndarray, sprite: Sprite, pose: np.ndarray, alpha_out: np.ndarray | None = None) -> None:
    """Composite one sprite at one pose onto ``canvas`` (H, W, 3) float32, in place, within its bounding square."""
    cx, cy, log_scale, angle = (float(v) for v in pose)
    a = sprite.half_length * math.exp(log_scale)
    b = a / sprite.aspect
    height, width = canvas.shape[:2]
    x0, x1 = max(int(cx - a) - 2, 0), min(int(cx + a) + 3, width)
    y0, y1 = max(int(cy - a) - 2, 0), min(int(cy + a) + 3, height)
    if x0 >= x1 or y0 >= y1:
        return
    dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = dx + 0.5 - cx, dy + 0.5 - cy  # pixel centres
    cos, sin = math.cos(angle), math.sin(angle)
    u = cos * dx + sin * dy  # along the long axis; angle grows clockwise on screen (y points down)
    v = -sin * dx + cos * dy
    p, q = np.abs(u) / a, np.abs(v) / b
    if sprite.shape == "ellipse":
        inside = (1.0 - np.sqrt(p * p + q * q)) * b
    elif sprite.shape == "rectangle":
        inside = np.minimum((1.0 - p) * a, (1.0 - q) * b)
    else:
        inside = (1.0 - p - q) * (a * b / math.hypot(a, b))
    alpha = np.clip(inside + 0.5, 0.0, 1.0)[..., None]
    mix = 0.5 + 0.5 * np.sin(2 * math.pi * u / sprite.stripe_period)[..., None]
    colour = np.asarray(sprite.colour_a, np.float32) * mix + np.asarray(sprite.colour_b, np.float32) * (1 - mix)
    region = canvas[y0:y1, x0:x1]
    region += alpha * (colour - region)
    if alpha_out is not None:
        alpha_out[y0:y1, x0:x1] = np.maximum(alpha_out[y0:y1, x0:x1], alpha[..., 0])


def draw_frames(background: np.ndarray, tracks: Iterable[Track], num_frames: int) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` RGB uint8 frames (H, W, 3); tracks are composited in order (later ones in front)."""
    tracks = list(tracks)
    for i in range(num_frames):
        canvas = background.copy()
        for track in tracks:
            _draw(canvas, track.sprite, track.poses[i])
        yield np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def sprite_box(track: Track, frame: int, height: int, width: int) -> tuple[float, float, float, float] | None:
    """The sprite's visible bounding box at ``frame``, normalised (x1, y1, x2, y2) in [0, 1]; None if off-frame."""
    alpha = np.zeros((height, width), np.float32)
    _draw(np.zeros((height, width, 3), np.float32), track.sprite, track.poses[frame], alpha)
    ys, xs = np.nonzero(alpha >= 0.5)
    if xs.size == 0:
        return None
    return (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)


def encode_mp4(path: str | os.PathLike[str], frames: Iterable[np.ndarray], *, fps: int, crf: int) -> int:
    """Encode RGB frames as H.264 (libx264, yuv420p) in an mp4, atomically; returns the number of frames.

    One thread in the colour conversion and in the encoder, fixed settings and no macroblock-tree rate control make
    the output byte-identical for identical frames, in any process.
    """
    count = 0
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        # mbtree off: with it, x264's output occasionally differs between processes for the same input (measured:
        # a few in a hundred encodes), which would break byte-identical re-generation.
        options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.time_base = Fraction(1, fps)
        for array in frames:
            if count == 0:
                stream.height, stream.width = array.shape[:2]
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p", threads=1)
            frame.pts, frame.time_base = count, Fraction(1, fps)
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return count
