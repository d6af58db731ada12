"""Loader throughput: clips/s from Parquet frame shards vs decoding the compressed video for every clip.

Everything is measured side by side in one run on videos this script encodes in a temporary folder (H.264 by
libx264 with ffmpeg's defaults — preset medium, crf 23, GOP 250 — as ffmpeg re-encodes trimmed Kinetics clips;
340×256; 30 fps). Both loaders use one core per DataLoader worker (torch threads 1; the per-clip decoder
single-threaded as PySlowFast's default ``multi_thread_decode=False``), except the shards' JPEG decode threads
where a row says so:

* ``loader``: clips/s of SlowFast 8×8 training clips (32 frames every 2, short-side jitter [256, 320], random 224²
  crop, flip, packed into pathways and batched; uint8, as the datasets hand them to the engine, which normalises on
  its device) from the shards (``KineticsDataset``) and from the video files with PyAV as the reference
  implementations do (open, seek, decode the window, resample to 30 fps, same transforms and collate), with 0 and 2
  DataLoader workers, and 0 workers with 2 JPEG decode threads in the shard reader (``FrameShards(decode_threads=2)``,
  only useful on idle cores; the per-clip path stays single-threaded). The two alternate for ``--repeats`` rounds;
  the table gives median clips/s, the range of the per-round speedups, and CPU ms per clip (this process plus its
  finished DataLoader workers, start-up included), which a busy machine disturbs much less than wall time;
* ``decode``: the decode stage's videos/s with 1 and 2 processes (``--decode-videos`` copies of the videos), and the
  seconds of a re-run that skips them all (it checks every shard: size, footer, sha256);
* ``transform``: ms per training clip of the view transform: a float pipeline, the uint8 resize then normalised in
  the loader (the datasets until the engine took over normalising), and ``apply_view`` (uint8 out);
* ``jpeg``: the frame codec options (Pillow/libjpeg-turbo vs PyAV's mjpeg encoder) and decoders (Pillow vs the
  shards' ``decode_jpeg``: simplejpeg, same libjpeg-turbo without Pillow's layers): ms per frame, bytes, PSNR;
* ``row_groups``: ms to read one clip for several Parquet row-group sizes;
* ``memory``: the decode stage's peak RSS (fresh process) for few/many and short/long videos;
* ``keep_every``: shards of every frame vs every 2nd frame (``decode.frames.keep_every: 2``): stored frames, shard
  MB, single-core decode CPU seconds, and training-clip loading (clips/s, CPU ms per clip) from each.

    python benchmarks/loader.py [--videos 4] [--seconds 10] [--clips 24] [--repeats 3] [--decode-videos 24]
                                [--sections loader,...] [--json]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from slowfast.data.datasets import KineticsDataset, clip_pathways
from slowfast.data.decode import DecodeConfig, decode_videos, frame_rgb, open_video, resample, stream_origin
from slowfast.data.jpeg import decode_jpeg, encode_jpeg
from slowfast.data.sampling import SamplingConfig, clip_indices, generator_for, random_start
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import TransformConfig, apply_view, normalize, random_view
from slowfast.models import pack_pathways, preset_config

SAMPLING = SamplingConfig(slow_frames=8, alpha=4, tau=8)
TRANSFORM = TransformConfig()
PACK = functools.partial(pack_pathways, config=preset_config("slowfast_8x8_r50"))


def make_video(path: Path, seconds: float, width: int = 340, height: int = 256, fps: int = 30) -> Path:
    """A textured moving scene (so that H.264 has real work to do)."""
    rng = np.random.default_rng(len(path.name))
    texture = rng.integers(0, 255, (height * 2, width * 2, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(texture).resize((width // 2, height // 2)).resize((width * 2, height * 2),
                                                                                              Image.BILINEAR))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "medium", "crf": "23"}  # ffmpeg's defaults
        for i in range(int(seconds * fps)):
            y, x = int(height / 2 * (1 + math.sin(i / 40))), int(width / 2 * (1 + math.cos(i / 50)))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[y : y + height, x : x + width]),
                                               format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


class PyAVClips(Dataset):
    """The per-clip reference path: decode the compressed video for every clip (same sampling and transforms)."""

    collate = staticmethod(KineticsDataset.collate)

    def __init__(self, records: list[tuple[str, Path, int]], seed: int = 0):
        self.records, self.seed = records, seed  # (video id, path, label)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        _, path, label = self.records[index]
        gen = generator_for(self.seed, 0, index)
        container, stream = open_video(Path(path), threads=1)  # one core per loader worker
        with container:
            fps = SAMPLING.fps
            num_frames = int(float(stream.duration * stream.time_base) * fps)
            idx = clip_indices(random_start(num_frames, SAMPLING, fps, gen), num_frames, SAMPLING, fps)
            origin = stream_origin(stream)
            seek_to = max(0.0, float(idx[0] - 1) / fps) + float(origin or 0)
            container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
            wanted = set(idx.tolist())
            size = (round(stream.width * 256 / min(stream.width, stream.height)),
                    round(stream.height * 256 / min(stream.width, stream.height)))
            images = {}
            for k, frame, _ in resample(container.decode(stream), fps, origin=origin, first=int(idx[0]),
                                        last=int(idx[-1])):
                if k in wanted:
                    images[k] = frame_rgb(frame, *size)
        frames = np.stack([images[k] for k in idx.tolist()])
        view = random_view(frames.shape[1], frames.shape[2], TRANSFORM, gen)
        return {"inputs": clip_pathways(frames, [view], PACK)[0], "label": torch.tensor(label)}


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # DataLoader workers, once joined
    return time.process_time() + children.ru_utime + children.ru_stime


def clips_per_second(dataset: Dataset, clips: int, workers: int) -> tuple[float, float]:
    """(clips/s after the first clip, CPU ms per clip over the whole run including worker start-up)."""
    order = [i % len(dataset) for i in range(clips)]
    loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=1, num_workers=workers,
                        persistent_workers=False, collate_fn=dataset.collate)
    cpu = _cpu_seconds()
    it = iter(loader)
    next(it)  # worker start-up and first file opens are not throughput
    start = time.perf_counter()
    n = sum(1 for _ in it)  # exhausting the iterator joins the workers: their CPU time is then counted
    rate = n / (time.perf_counter() - start)
    return rate, (_cpu_seconds() - cpu) / clips * 1e3


def compare_loaders(shard_ds: Dataset, pyav_ds: Dataset, clips: int, workers: int, repeats: int) -> dict:
    """Alternate the two loaders ``repeats`` times; medians and the range of the per-round speedups."""
    runs = [(clips_per_second(shard_ds, clips, workers), clips_per_second(pyav_ds, clips, workers))
            for _ in range(repeats)]
    ratios = [s[0] / p[0] for s, p in runs]
    shard_rate, pyav_rate = (statistics.median(r[i][0] for r in runs) for i in (0, 1))
    shard_cpu, pyav_cpu = (statistics.median(r[i][1] for r in runs) for i in (0, 1))
    return {"dataloader_workers": workers, "shards_clips_per_s": round(shard_rate, 2),
            "pyav_clips_per_s": round(pyav_rate, 2), "speedup": round(shard_rate / pyav_rate, 2),
            "speedup_range": f"{min(ratios):.2f}-{max(ratios):.2f}", "shards_cpu_ms": round(shard_cpu, 1),
            "pyav_cpu_ms": round(pyav_cpu, 1), "cpu_speedup": round(pyav_cpu / shard_cpu, 2)}


def float_resize_view(frames: np.ndarray, view, config: TransformConfig) -> torch.Tensor:
    """The straightforward float pipeline (convert, resize in float, flip, normalise), for comparison."""
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, view.y0 : view.y0 + view.h, view.x0 : view.x0 + view.w]))
    x = crop.permute(0, 3, 1, 2).float().div(255.0)
    x = torch.nn.functional.interpolate(x, size=view.out, mode="bilinear", align_corners=False)
    if view.flip:
        x = x.flip(-1)
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    return ((x - mean) / std).permute(1, 0, 2, 3).contiguous()


def transform_speed(frames: np.ndarray, repeats: int = 5) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    views = [random_view(frames.shape[1], frames.shape[2], TRANSFORM, gen) for _ in range(repeats)]
    variants = (("float resize, normalised", float_resize_view),
                ("uint8 resize, normalised", lambda f, v, c: normalize(apply_view(f, v), c)),
                ("uint8 resize (apply_view)", lambda f, v, c: apply_view(f, v)))
    rows = []
    for name, fn in variants:
        fn(frames, views[0], TRANSFORM)
        start = time.process_time()
        for view in views:
            fn(frames, view, TRANSFORM)
        rows.append({"transform": name, "cpu_ms_per_clip": round((time.process_time() - start) / repeats * 1e3, 1)})
    diff = max(float((float_resize_view(frames, v, TRANSFORM) - normalize(apply_view(frames, v), TRANSFORM)).abs()
                     .max()) for v in views)
    for row in rows:
        row["max_abs_diff_normalised"] = round(diff, 4)
    return rows


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / max(mse, 1e-12))


def jpeg_options(video: Path, frames: int = 60, quality: int = 90) -> list[dict]:
    """Encoders and decoders of 340×256 frames: ms per frame, bytes, PSNR against the frame (over the box decoded).

    ``box`` rows decode SlowFast training crops (scale jitter [256, 320], 224² crop, as ``random_view`` draws them)
    with ``decode_jpeg(box=...)``; their ``encode_ms`` is that of the same bytes in the row above."""
    container, stream = open_video(video)
    with container:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(stream))]
    gen = torch.Generator().manual_seed(0)
    views = [random_view(*images[0].shape[:2], TRANSFORM, gen) for _ in images]
    boxes = [(v.x0, v.y0, v.x0 + v.w, v.y0 + v.h) for v in views]

    def timed(fn):
        start = time.perf_counter()
        result = [fn(i, img) for i, img in enumerate(images)]
        return (time.perf_counter() - start) / frames * 1e3, result

    def pillow(options):
        def encode(_, img):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=quality, **options)
            return buf.getvalue()
        return encode

    ctx = av.CodecContext.create("mjpeg", "w")  # PyAV's mjpeg encoder, qscale 2: its best quality in common use
    ctx.width, ctx.height, ctx.pix_fmt = images[0].shape[1], images[0].shape[0], "yuvj420p"
    ctx.time_base = Fraction(1, 30)
    ctx.options = {"qscale": "2"}

    def mjpeg(i, img):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")
        frame.pts = i
        return b"".join(bytes(p) for p in ctx.encode(frame))

    buffer = np.empty_like(images[0])
    pil_decode = lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))  # noqa: E731
    whole = lambda b, i: decode_jpeg(b, out=buffer)  # noqa: E731  # into a reused buffer, as read does
    crop = lambda b, i: decode_jpeg(b, box=boxes[i])  # noqa: E731
    plain, restart = timed(pillow({})), timed(lambda _, img: encode_jpeg(img, quality))
    rows = [("pillow, Pillow decode", plain, lambda b, i: pil_decode(b), False),
            ("pillow, decode_jpeg", plain, whole, False),
            ("pillow, decode_jpeg box", plain, crop, True),
            ("encode_jpeg (restart markers), decode_jpeg", restart, whole, False),
            ("encode_jpeg (restart markers), decode_jpeg box", restart, crop, True),
            ("pyav-mjpeg, Pillow decode", timed(mjpeg), lambda b, i: pil_decode(b), False)]
    out = []
    for name, (enc_ms, blobs), decode, boxed in rows:
        decoded = [decode(b, i).copy() for i, b in enumerate(blobs)]  # also the warm-up
        dec = math.inf
        for _ in range(3):  # best of three: the decoders' own cost, not the machine's hiccups
            start = time.perf_counter()
            for i, b in enumerate(blobs):
                decode(b, i)
            dec = min(dec, (time.perf_counter() - start) / frames * 1e3)
        refs = [img[y0:y1, x0:x1] for img, (x0, y0, x1, y1) in zip(images, boxes)] if boxed else images
        out.append({"codec": name, "encode_ms": round(enc_ms, 3), "decode_ms": round(dec, 3),
                    "kbytes": round(np.mean([len(b) for b in blobs]) / 1024, 2),
                    "psnr_db": round(min(psnr(a, b) for a, b in zip(refs, decoded)), 1)})
    return out


# VmHWM (peak RSS of this process image), not ru_maxrss: Linux carries the parent's peak across fork+exec into it.
MEMORY_SCRIPT = """
import json, sys
from slowfast.data.decode import DecodeConfig, decode_videos
src = json.loads(sys.argv[1])
decode_videos(src, sys.argv[2], DecodeConfig(shard_max_bytes=int(sys.argv[3])), progress=False)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def peak_rss_mb(sources: dict[str, Path], out: Path, shard_bytes: int = 16 * 2**20) -> float:
    arg = json.dumps({k: str(v) for k, v in sources.items()})
    res = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, arg, str(out), str(shard_bytes)],
                         capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1]) / 1024


SECTIONS = ("loader", "decode", "transform", "jpeg", "row_groups", "memory", "keep_every")


def keep_every_section(sources: dict[str, Path], tmp: Path, records: list[tuple[str, int]], clips: int,
                       repeats: int) -> list[dict]:
    """Shards of every frame vs every 2nd frame (``decode.frames.keep_every``): bytes, single-core decode CPU time
    and training-clip loading (SlowFast 8×8 clips, 0 workers, alternating rounds)."""
    import dataclasses

    from slowfast.data import decode as decode_module

    rows, datasets = [], {}
    for keep in (1, 2):
        out = tmp / f"keep{keep}"
        plan = decode_module.plan_decode(sources, out, DecodeConfig(keep_every=keep, videos_per_task=1))
        cpu = time.process_time()
        results = [decode_module.decode_chunk(dataclasses.replace(c, threads=1)) for c in plan.chunks]
        cpu = time.process_time() - cpu
        decode_module.merge_decode(plan, results, progress=False)
        reader = FrameShards(out)
        stored = sum(reader.info(v).stored_frames for v in sources)
        rows.append({"keep_every": keep, "stored_frames": stored,
                     "shard_MB": round(sum(p.stat().st_size for p in (out / "shards").iterdir()) / 1e6, 2),
                     "decode_cpu_s": round(cpu, 2)})
        datasets[keep] = KineticsDataset(reader, records, sampling=SAMPLING, transform=TRANSFORM, pack=PACK,
                                         train=True)
    rounds = {1: [], 2: []}
    for _ in range(repeats):
        for keep in (1, 2):
            rounds[keep].append(clips_per_second(datasets[keep], clips, 0))
    for row in rows:
        runs = rounds[row["keep_every"]]
        row["clips_per_s"] = round(statistics.median(r[0] for r in runs), 2)
        row["cpu_ms_per_clip"] = round(statistics.median(r[1] for r in runs), 1)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds of the two loaders")
    parser.add_argument("--decode-videos", type=int, default=24, help="videos the decode section decodes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or args.repeats < 1:
        parser.error(f"--sections: unknown {unknown}, allowed: {SECTIONS}" if unknown else "--repeats: allowed >= 1")
    torch.set_num_threads(1)
    results: dict = {"setup": {"videos": args.videos, "seconds": args.seconds, "clips": args.clips,
                               "repeats": args.repeats, "codec": "h264 (libx264 medium, crf 23, GOP 250)",
                               "size": "340x256", "fps": 30, "cpus": os.cpu_count(),
                               "load_avg_1min": round(os.getloadavg()[0], 2)}}
    tmp = Path(tempfile.mkdtemp(prefix="loader-bench-"))
    try:
        sources = {f"v{i}": make_video(tmp / f"v{i}.mp4", args.seconds) for i in range(args.videos)}
        bits = sum(p.stat().st_size for p in sources.values()) * 8
        results["setup"]["kbit_per_s"] = round(bits / (args.videos * args.seconds) / 1000)

        decode_videos(sources, tmp / "shards1", DecodeConfig(videos_per_task=1), progress=False)
        if "decode" in sections:  # enough videos that starting the worker processes is not the measurement
            many = {}
            for i in range(args.decode_videos):
                many[f"d{i}"] = tmp / f"d{i}.mp4"
                os.link(sources[f"v{i % len(sources)}"], many[f"d{i}"])
            results["decode"] = []
            for workers in (1, 2):
                start = time.perf_counter()
                decode_videos(many, tmp / f"decode{workers}", DecodeConfig(videos_per_task=2), workers=workers,
                              progress=False)
                elapsed = time.perf_counter() - start
                start = time.perf_counter()  # a re-run skips every video: the cost of checking the shards
                decode_videos(many, tmp / f"decode{workers}", DecodeConfig(videos_per_task=2), workers=workers,
                              progress=False)
                rerun = time.perf_counter() - start
                shard_mb = sum(p.stat().st_size for p in (tmp / f"decode{workers}" / "shards").iterdir()) / 2**20
                results["decode"].append({"processes": workers, "videos": len(many),
                                          "videos_per_s": round(len(many) / elapsed, 2),
                                          "frames_per_s": round(len(many) * args.seconds * 30 / elapsed, 1),
                                          "shard_mb": round(shard_mb, 1), "rerun_skip_s": round(rerun, 3)})

        shards = FrameShards(tmp / "shards1")
        records = [(vid, i) for i, vid in enumerate(sorted(sources))]

        def shard_dataset(reader: FrameShards) -> KineticsDataset:
            return KineticsDataset(reader, records, sampling=SAMPLING, transform=TRANSFORM,
                                   pack=PACK, train=True)

        if "loader" in sections:
            pyav_ds = PyAVClips([(vid, sources[vid], i) for vid, i in records])
            results["loader"] = [
                {"decode_threads": threads, **compare_loaders(shard_dataset(FrameShards(tmp / "shards1",
                                                                                        decode_threads=threads)),
                                                              pyav_ds, args.clips, workers, args.repeats)}
                for workers, threads in ((0, 1), (0, 2), (2, 1))]
        if "jpeg" in sections:
            results["jpeg"] = jpeg_options(sources["v0"])
        if "transform" in sections:
            results["transform"] = transform_speed(shards.read("v0", np.arange(0, 64, 2)))

        if "row_groups" in sections:
            groups = []
            manifest = (tmp / "shards1" / "manifest.json").read_text()
            gen = torch.Generator().manual_seed(0)
            starts = [random_start(shards.info("v0").num_frames, SAMPLING, 30.0, gen) for _ in range(20)]
            for rows in (8, 32, 128, 1024):
                root = tmp / f"rg{rows}"
                (root / "shards").mkdir(parents=True)
                (root / "manifest.json").write_text(manifest)
                for shard in (tmp / "shards1" / "shards").iterdir():
                    pq.write_table(pq.read_table(shard), root / "shards" / shard.name, row_group_size=rows,
                                   compression="none")
                reader = FrameShards(root)
                reader.read("v0", [0])
                start = time.perf_counter()
                for s in starts:
                    reader.read("v0", clip_indices(s, reader.info("v0").num_frames, SAMPLING, 30.0))
                groups.append({"row_group_frames": rows,
                               "ms_per_clip_read": round((time.perf_counter() - start) / len(starts) * 1e3, 2)})
            results["row_groups"] = groups

        if "keep_every" in sections:
            results["keep_every"] = keep_every_section(sources, tmp, records, args.clips, args.repeats)

        if "memory" in sections:
            memory = []
            long_video = {"long": make_video(tmp / "long.mp4", args.seconds * 4)}
            for label, src in (("1 video", {"v0": sources["v0"]}), (f"{len(sources)} videos", sources),
                               ("1 video x4 length", long_video)):
                memory.append({"input": label,
                               "peak_rss_mb": round(peak_rss_mb(src, tmp / f"mem-{len(memory)}"), 1)})
            results["memory"] = memory
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["setup"]["load_avg_1min_end"] = round(os.getloadavg()[0], 2)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"setup: {results['setup']}")
    for section in (s for s in SECTIONS if s in results):
        rows = results[section]
        keys = list(rows[0])
        print(f"\n{section}")
        print(" | ".join(f"{k:>18}" for k in keys))
        for row in rows:
            print(" | ".join(f"{row[k]!s:>18}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
