"""Writing frames as a video that browsers play: H.264 (PyAV's libx264) in yuv420p, constant frame rate.

yuv420p needs even sides; an odd-sized frame gets its last row / column repeated (never cropped, so no drawing is
lost). Frame k has pts k in time base 1/rate, so a video of n frames lasts exactly n / rate seconds.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from slowfast.utils.io import atomic_path


def even_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) a frame of this size is written at: each side rounded up to even."""
    return width + width % 2, height + height % 2


class H264Writer:
    """``with H264Writer(path, rate) as w: w.write(rgb)`` for RGB uint8 (H, W, 3) frames of one size.

    The file appears at ``path`` only when the writer closes without an error (written to a temporary file first).
    ``crf`` 23 and preset ``veryfast`` are x264's defaults for quality and a cheap speed setting.
    """

    def __init__(self, path: str | os.PathLike[str], rate: Fraction | float, *, crf: int = 23,
                 preset: str = "veryfast"):
        self.path = Path(path)
        self.rate = Fraction(rate).limit_denominator(1_000_000)
        self.crf, self.preset = crf, preset
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._ctx = self._container = self._stream = None

    def __enter__(self) -> H264Writer:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._container = av.open(str(tmp), "w", format=_format(self.path))
        return self

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._stream is None:
            self._size = (w, h)
            self._stream = self._container.add_stream("libx264", rate=self.rate)
            self._stream.width, self._stream.height = even_size(w, h)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "preset": self.preset}
            self._stream.codec_context.time_base = 1 / self.rate
        elif (w, h) != self._size:
            raise ValueError(f"frame {self.frames} is {w}x{h}, the video's frames are {self._size[0]}x{self._size[1]}")
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        # An owned, writable copy: given the read-only array of a Pillow image, PyAV encoded other pixels from run
        # to run. (Two demos of one video can still differ by a level or two after x264; their drawings do not.)
        out = av.VideoFrame.from_ndarray(np.array(frame, dtype=np.uint8, order="C"), format="rgb24")
        out.pts = self.frames
        out.time_base = 1 / self.rate
        self._container.mux(self._stream.encode(out))
        self.frames += 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                if self._stream is None:
                    raise ValueError(f"{self.path}: no frames to write")
                self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            if kind is None and self._stream is None:
                self._ctx.__exit__(ValueError, ValueError("no frames"), None)
            else:
                self._ctx.__exit__(kind, exc, tb)


def _format(path: Path) -> str:
    """Container of the output: MP4 unless the name says Matroska or QuickTime (H.264 does not go in WebM)."""
    return {".mkv": "matroska", ".mov": "mov"}.get(path.suffix.lower(), "mp4")
