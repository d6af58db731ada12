"""Real encoded test videos made with PyAV (no fixtures on disk): every frame carries its index as a binary code.

A frame is a smooth colour gradient (so JPEG round trips stay far above 30 dB PSNR) with a top band of
``CODE_BITS`` black/white blocks spelling the source frame's index, so a test can read back *which* source frame a
decoded, resampled, resized frame came from (:func:`read_index`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODE_BITS = 8


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """The RGB uint8 (height, width, 3) image of source frame ``index``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 40 + 150 * x / max(width - 1, 1)
    img[..., 1] = 40 + 150 * y / max(height - 1, 1)
    img[..., 2] = 100 + 60 * np.sin((x + y) / 12.0 + index / 5.0)
    band = height // 4
    for bit in range(CODE_BITS):
        x0, x1 = bit * width // CODE_BITS, (bit + 1) * width // CODE_BITS
        img[:band, x0:x1] = 235.0 if (index >> bit) & 1 else 20.0
    return img.round().astype(np.uint8)


def read_index(image: np.ndarray) -> int:
    """Decode the frame index written by :func:`frame_image` (robust to JPEG/H.264 loss and resizing)."""
    height, width = image.shape[:2]
    band = image[: max(height // 4 - 2, 1)].mean(axis=2)
    value = 0
    for bit in range(CODE_BITS):
        x0, x1 = bit * width // CODE_BITS, (bit + 1) * width // CODE_BITS
        cell = band[:, x0 + (x1 - x0) // 4 : x1 - (x1 - x0) // 4]
        value |= int(cell.mean() > 128) << bit
    return value


def make_video(
    path: Path,
    *,
    codec: str = "libx264",
    width: int = 64,
    height: int = 48,
    num_frames: int = 30,
    rate: Fraction | int = 30,
    rotation: int | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``num_frames`` coded frames; ``pts`` (in ``time_base``) gives a variable frame rate when set.

    ``options`` replace the encoder's defaults here (x264 ``ultrafast``: no B-frames), e.g.
    ``{"preset": "medium", "bframes": "3"}`` for the reordered streams real Kinetics files have."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pix_fmt = {"mjpeg": "yuvj420p"}.get(codec, "yuv420p")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        elif codec in ("mpeg4", "mjpeg"):
            stream.options = {"qscale": "2"}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": "15", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        if options is not None:
            stream.options = dict(options)
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC-in-MP4 file without a video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = int(44100 * seconds)
        tone = (0.2 * np.sin(np.arange(samples) / 10.0)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 44100
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Cut a file to ``fraction`` of its bytes, as an interrupted download does."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return path


def encode_frames(path: Path, frames: list[np.ndarray], *, codec: str = "libx264", rate: int = 30) -> Path:
    """Encode RGB uint8 frames (all of one even or odd size) with ``codec`` into the container of ``path``'s suffix."""
    path = Path(path)
    height, width = frames[0].shape[:2]
    pix_fmt = {"mjpeg": "yuvj420p"}.get(codec, "yuv420p")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "ultrafast"}
        elif codec in ("mpeg4", "mjpeg"):
            stream.options = {"qscale": "3"}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    return path
