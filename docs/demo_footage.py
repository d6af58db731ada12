"""Natural-looking test footage without a camera: photographs panned and zoomed into short videos, encoded with
several codecs and containers, then run through ``slowfast demo``; a few drawn frames are saved as PNGs to look at.

    python docs/demo_footage.py --images DIR --checkpoint models/pretrain/model.pt --out /tmp/footage

``DIR`` holds photographs (PNG/JPEG); the README's stills used scikit-image's sample photographs
(``skimage/data/{astronaut,chelsea,coffee,motorcycle_left,rocket}.*``, taken from the scikit-image wheel, not a
project dependency). Each picture becomes a 3 s "Ken Burns" shot (a slow pan and zoom), one shot per format below.
With ``--detector`` (an AVA detector) a proposals file with one box per second is made for each shot as well.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

# (suffix, codec, pix_fmt, frame rate, size (w, h), display rotation)
FORMATS = [
    (".mp4", "libx264", "yuv420p", Fraction(30), (320, 240), None),
    (".webm", "libvpx-vp9", "yuv420p", Fraction(25), (320, 180), None),
    (".avi", "mjpeg", "yuvj420p", Fraction(24), (241, 181), None),  # odd size
    (".mkv", "mpeg4", "yuv420p", Fraction(30), (320, 240), 90),  # rotated by its display matrix
    (".mov", "libx264", "yuv420p", Fraction(30000, 1001), (288, 216), None),  # NTSC rate
]


def ken_burns(image: np.ndarray, size: tuple[int, int], frames: int) -> list[np.ndarray]:
    """``frames`` crops of ``image`` moving from its left to its right while zooming in by a quarter."""
    h, w = image.shape[:2]
    out_w, out_h = size
    aspect = out_w / out_h
    result = []
    for i in range(frames):
        f = i / max(frames - 1, 1)
        zoom = 1.0 + 0.25 * f
        ch = min(h, w / aspect) / zoom
        cw = ch * aspect
        x0 = (w - cw) * (0.2 + 0.6 * f)
        y0 = (h - ch) * 0.4
        crop = Image.fromarray(image).crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.BICUBIC)
        result.append(np.asarray(crop.convert("RGB")))
    return result


def encode(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, rate: Fraction,
           rotation: int | None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if codec == "libvpx-vp9":
            stream.options = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True, help="classifier for the demo")
    parser.add_argument("--detector", type=Path, help="AVA detector for a second demo per shot (with proposals)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pictures = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for picture, (suffix, codec, pix_fmt, rate, size, rotation) in zip(pictures, FORMATS):
        image = np.asarray(Image.open(picture).convert("RGB"))
        frames = ken_burns(image, size, round(args.seconds * rate))
        shot = encode(args.out / f"{picture.stem}{suffix}", frames, codec, pix_fmt, rate, rotation)
        runs = [("demo", ["--checkpoint", args.checkpoint, "--cam"])]
        if args.detector:
            proposals = args.out / f"{picture.stem}.csv"
            proposals.write_text("".join(f"{picture.stem},{t},0.25,0.15,0.75,0.95,,0.99\n"
                                         for t in range(int(args.seconds))))
            runs.append(("ava", ["--checkpoint", args.detector, "--proposals", proposals, "--cam"]))
        for kind, flags in runs:
            out = args.out / f"{picture.stem}.{kind}.mp4"
            subprocess.run([sys.executable, "-m", "slowfast.cli", "demo", str(shot), *map(str, flags),
                            "--out", str(out)], check=True)
            with av.open(str(out)) as container:
                drawn = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            for i in (0, len(drawn) // 2):
                Image.fromarray(drawn[i]).save(args.out / f"{picture.stem}.{kind}.{i:03d}.png")
            print(f"{shot.name} ({codec}, {float(rate):.2f} fps, {size[0]}x{size[1]}, rotation {rotation}) -> "
                  f"{out.name}: {len(drawn)} frames of {len(frames)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
