"""Disk and decode cost of the frame shards, and what seeking saves on AVA's full movies.

Sections (each prints a table):

* ``shards``: H.264 inputs (libx264, ffmpeg's defaults: preset medium, crf 23, B-frames) of the textured moving
  scene of ``benchmarks/loader.py`` at 340×256, 640×360 and 1280×720, decoded by the decode stage with one process
  and one FFmpeg thread (one core) to a short side of 256 px at 30 fps: shard bytes per stored frame and stored
  frames per second per core. ``slowfast datasets`` multiplies these by each dataset's frames (the constants in
  ``src/slowfast/data/catalog.py``). Real footage has more detail than this scene, so expect its JPEGs to be larger;
  the estimate is a plan, not a promise.
* ``seek``: a long movie (``--movie-seconds``, default 960 s, 10 fps source, GOP 250, B-frames) decoded with the
  AVA windows of one 15-minute segment's first ``--window-seconds`` after second 900: seeking to the windows
  (:func:`slowfast.data.decode.seek_to_windows`, the decode stage's path) vs decoding from the start (the previous
  behaviour), same stored frames (checked byte for byte).

    python benchmarks/storage.py [--sections shards,seek] [--seconds 10] [--movie-seconds 960] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import make_video  # noqa: E402  (the benchmark videos of the loader benchmark)

from slowfast.data import decode as decode_module  # noqa: E402
from slowfast.data.decode import DecodeConfig, decode_videos  # noqa: E402

SECTIONS = ("shards", "seek")


def _stored(out: Path) -> dict[int, bytes]:
    frames = {}
    for path in sorted((out / "shards").glob("*.parquet")):
        table = pq.read_table(path)
        for frame, jpeg in zip(table.column("frame").to_pylist(), table.column("jpeg").to_pylist()):
            frames[frame] = jpeg
    return frames


def shards_section(tmp: Path, seconds: float) -> list[dict]:
    rows = []
    for width, height in ((340, 256), (640, 360), (1280, 720)):
        video = make_video(tmp / f"in_{width}x{height}.mp4", seconds, width=width, height=height)
        out = tmp / f"shards_{width}x{height}"
        config = DecodeConfig(short_side=256)
        start = time.process_time()
        wall = time.perf_counter()
        plan = decode_module.plan_decode({"v": video}, out, config, workers=1)
        # one FFmpeg thread: the per-core figure (the stage runs one such process per core)
        results = [decode_module.decode_chunk(dataclasses.replace(chunk, threads=1)) for chunk in plan.chunks]
        decode_module.merge_decode(plan, results, progress=False)
        cpu, wall = time.process_time() - start, time.perf_counter() - wall
        frames = _stored(out)
        jpeg_bytes = sum(len(b) for b in frames.values())
        shard_bytes = sum(p.stat().st_size for p in (out / "shards").glob("*.parquet"))
        rows.append({"input": f"{width}x{height}", "input_MB": round(video.stat().st_size / 1e6, 2),
                     "frames": len(frames), "jpeg_B_per_frame": round(jpeg_bytes / len(frames)),
                     "shard_B_per_frame": round(shard_bytes / len(frames)),
                     "frames_per_core_s": round(len(frames) / cpu, 1),
                     "wall_frames_per_s": round(len(frames) / wall, 1)})
    return rows


def make_movie(path: Path, seconds: float, fps: int = 10, width: int = 160, height: int = 120) -> Path:
    """A long H.264 movie with B-frames (x264 preset medium, GOP 250), cheap to encode: a moving texture."""
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 255, (height * 2, width * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "medium", "crf": "28", "bframes": "3", "g": "250"}
        for i in range(int(seconds * fps)):
            y, x = int(height / 2 * (1 + math.sin(i / 40))), int(width / 2 * (1 + math.cos(i / 50)))
            img = np.ascontiguousarray(texture[y : y + height, x : x + width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def seek_section(tmp: Path, movie_seconds: float, window_seconds: float) -> list[dict]:
    movie = make_movie(tmp / "movie.mp4", movie_seconds)
    windows = {"movie": [(900.0, 900.0 + window_seconds)]}
    config = DecodeConfig(fps=30, short_side=120)
    rows, stored = [], {}
    for mode in ("from the start", "seek"):
        out = tmp / f"seek_{mode.replace(' ', '_')}"
        saved = decode_module.SEEK_MIN_START_SEC
        if mode == "from the start":
            decode_module.SEEK_MIN_START_SEC = math.inf  # the previous behaviour: decode the whole stream
        try:
            start, wall = time.process_time(), time.perf_counter()
            decode_videos({"movie": movie}, out, config, windows=windows, progress=False)
            cpu, wall = time.process_time() - start, time.perf_counter() - wall
        finally:
            decode_module.SEEK_MIN_START_SEC = saved
        stored[mode] = _stored(out)
        rows.append({"mode": mode, "stored_frames": len(stored[mode]), "cpu_s": round(cpu, 2),
                     "wall_s": round(wall, 2)})
    same = stored["seek"] == stored["from the start"]
    for row in rows:
        row["same_frames"] = same
        row["speedup_cpu"] = round(rows[0]["cpu_s"] / row["cpu_s"], 1)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the shards section's inputs")
    parser.add_argument("--movie-seconds", type=float, default=960.0)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "shards" in args.sections:
            results["shards"] = shards_section(Path(tmp), args.seconds)
        if "seek" in args.sections:
            results["seek"] = seek_section(Path(tmp), args.movie_seconds, args.window_seconds)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for section, rows in results.items():
        print(f"\n{section}")
        keys = list(rows[0])
        print(" | ".join(f"{k:>18}" for k in keys))
        for row in rows:
            print(" | ".join(f"{str(row[k]):>18}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
