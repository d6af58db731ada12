"""Decode every video once into Parquet frame shards (the paper's input: video resampled to 30 fps, §4 / NOTES.md).

Training reads a random αT×τ window of each video every epoch; decoding the compressed stream for every clip (what
the reference implementations do) spends most of the loader's time seeking and decoding frames it throws away. Here
each video is decoded once, resampled to ``fps`` and resized, and every kept frame is stored as a JPEG row of a Parquet
shard (:mod:`slowfast.data.jpeg`, whose restart markers let a reader decode only a crop);
:class:`slowfast.data.shards.FrameShards` reads any frame back by its index.

Rules (documented once, used by the decode stage, the benchmark and every direct decode):

* **Resampling.** Target frame ``k`` is at time ``k / fps`` after the stream's start (``stream.start_time``, else the
  first frame's time). It is the source frame nearest in presentation time (pts, exact rational arithmetic; a tie
  goes to the earlier frame). Target frames run while ``k / fps`` is before the end of the last source frame (its pts
  plus its duration), so a 10 s video gives 300 frames at 30 fps whatever its own rate (25, 29.97, 60, variable).
* **Size.** The displayed short side (after rotation) is scaled to ``short_side``, keeping the aspect ratio; both
  sides are rounded to the nearest pixel (even sizes are not required). Rotation from the display matrix
  (``VideoFrame.rotation``, counter-clockwise degrees) is applied to the pixels, so shards hold upright frames.
* **Windows.** With ``windows[video_id] = [(start_s, end_s), ...]`` (seconds of the file) only target frames whose
  time lies in a window are stored (AVA keeps the clips around its keyframes:
  :func:`slowfast.data.sampling.keyframe_windows`); indices stay those of the full-rate timeline and
  ``num_frames`` is the full timeline's length. When the first window starts late (AVA's full movies, from second
  ~900) the decoder seeks to the keyframe before it and stops after the last window (:func:`seek_to_windows`): the
  stored frames are the same as decoding from the start, and ``num_frames`` ends with the last window.
* **Source checksum.** A fast content hash: sha256 over the file size and its first and last MiB. It changes when a
  file is replaced, re-encoded or truncated, without reading multi-GB movies on every re-run.
* **Failures.** Missing, zero-byte, unreadable, audio-only and non-video files, decode errors and truncated streams
  (decoded span shorter than ``min_coverage`` of the declared duration) become ``{video_id, path, reason}`` records
  in ``failures.json``; every other video is still decoded. Rows already written for a video that fails late stay in
  its shard, unreferenced.

Layout of ``out_dir``: ``shards/shard-<task hash>-<n>.parquet`` (columns ``video_id``, ``frame`` int32, ``jpeg``
binary; row groups of at most ``row_group_frames`` rows, never spanning two videos; a shard is sealed once it holds
``shard_max_bytes`` of JPEG), ``manifest.json`` (per video: source path and checksum, parameters key, fps,
num_frames, height, width and its ``runs`` ``[shard, first_row, first_frame, count]``; per shard: bytes, rows and
sha256), ``failures.json``. Re-runs skip videos whose checksum and parameters match and whose shards are intact (size,
row count and sha256 as recorded, readable footer; a shard of a manifest without checksums is rebuilt); everything
else is decoded again, and unreferenced shards are deleted. Videos of earlier runs that are not among ``sources``
stay in the manifest while their shards are intact.

**One writer, and the disk.** :func:`decode_videos` holds the folder's lock (:mod:`slowfast.utils.lock`): a second
run on the same ``out_dir`` stops at once naming the first. A write error (``ENOSPC``, ``EDQUOT``, ``EIO``...) is a
property of the machine, not of a video: the run stops with one :class:`DecodeOutputError` line naming the errno,
deletes every shard and temporary file it wrote, and leaves the manifest of the earlier runs, so that a later run
with space succeeds with no manual cleanup.

**Work split.** A run is three steps: :func:`plan_decode` (which videos need work, in chunks; intact ones are skipped),
:func:`decode_chunk` per chunk (picklable, cwd-independent, writes the chunk's own shards, returns its manifest entries
and failures) and :func:`merge_decode` (writes manifest and failures atomically). ``decode_videos(map_chunks=...)``
runs the chunks through any mapper — by default ``workers`` spawned processes; the Prefect flow passes one that runs a
task per chunk on a Dask cluster (any worker that sees the same file system). Chunks and shard names depend only on
the work, never on who runs it, so every mapper writes the same bytes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from slowfast.config import from_mapping, require
from slowfast.data.jpeg import encode_jpeg
from slowfast.utils.io import OutputError, atomic_path, os_error_line, write_json_atomic
from slowfast.utils.lock import folder_lock

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FAILURES = "failures.json"
SHARD_DIR = "shards"
SHARD_NAME = re.compile(r"shard-[0-9a-f]{16}-\d{4}\.parquet")
SHARD_SCHEMA = pa.schema([("video_id", pa.string()), ("frame", pa.int32()), ("jpeg", pa.binary())])
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp")

Window = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """Parameters of the decode stage; the first three decide the stored pixels (and the re-run key)."""

    fps: float = 30.0
    short_side: int = 256
    jpeg_quality: int = 90
    shard_max_bytes: int = 256 * 2**20
    row_group_frames: int = 32
    videos_per_task: int = 16
    min_coverage: float = 0.9
    #: store only target frames k with k % keep_every == 0. Every preset's Fast pathway reads every 2nd frame at
    #: 30 fps (τ/α = 2) and its Slow pathway every τ-th, so 2 halves disk and JPEG encoding with the samplers
    #: aligning their windows to stored frames (:func:`slowfast.data.sampling.stored_indices`). Default 1: all.
    keep_every: int = 1

    def __post_init__(self) -> None:
        require(0 < self.fps <= 1000, "fps", f"got {self.fps}, allowed: 0 < fps <= 1000")
        require(8 <= self.short_side <= 4096, "short_side", f"got {self.short_side}, allowed: 8..4096")
        require(1 <= self.jpeg_quality <= 100, "jpeg_quality", f"got {self.jpeg_quality}, allowed: 1..100")
        require(self.shard_max_bytes >= 2**16, "shard_max_bytes", f"got {self.shard_max_bytes}, allowed: >= 65536")
        require(1 <= self.row_group_frames <= 4096, "row_group_frames",
                f"got {self.row_group_frames}, allowed: 1..4096")
        require(self.videos_per_task >= 1, "videos_per_task", f"got {self.videos_per_task}, allowed: >= 1")
        require(0 <= self.min_coverage <= 1, "min_coverage", f"got {self.min_coverage}, allowed: 0..1")
        require(1 <= self.keep_every <= 16, "keep_every", f"got {self.keep_every}, allowed: 1..16")


@dataclasses.dataclass(frozen=True)
class DecodeReport:
    """What a run did: video ids decoded now, skipped as already valid, and failure records."""

    decoded: list[str]
    skipped: list[str]
    failures: list[dict[str, str]]
    manifest: Path


class VideoError(Exception):
    """A video that cannot be decoded; the message is the failure record's reason."""


class DecodeOutputError(OutputError):
    """The output folder cannot be written (disk full, permissions, ...): a property of the machine, not of a video,
    so the run stops instead of recording every further video as a failure."""


# --------------------------------------------------------------------------------------------- direct decoding
def fast_checksum(path: Path, chunk: int = 2**20) -> str:
    """sha256 over the file size and its first and last ``chunk`` bytes (see the module docstring)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(chunk))
        if size > chunk:
            fh.seek(max(chunk, size - chunk))
            digest.update(fh.read(chunk))
    return digest.hexdigest()


def open_video(path: Path, *, threads: int = 0) -> tuple[Any, Any]:
    """Open ``path`` and return (container, its first video stream); :class:`VideoError` says why not.

    ``threads`` = 0 lets FFmpeg decode with frame threads on every core; 1 keeps the decoder on one core (one
    process per core already, as in ``decode_videos(workers > 1)`` and DataLoader workers).
    """
    if not path.is_file():
        raise VideoError("missing file")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"cannot open as a media file: {exc}") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(f"no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if threads == 1:
        stream.codec_context.thread_count = 1
    else:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
    return container, stream


def _fraction(value: Any) -> Fraction | None:
    return None if value is None or value == 0 else Fraction(value)


def stream_origin(stream: Any) -> Fraction | None:
    """Time 0 of the resampled timeline: the stream's start time, when the container declares one."""
    if stream.start_time is None or stream.time_base is None:
        return None
    return stream.start_time * Fraction(stream.time_base)


def resample(
    frames: Iterable[Any],
    fps: float | Fraction,
    *,
    origin: Fraction | None = None,
    first: int = 0,
    last: int | None = None,
) -> Iterator[tuple[int, Any, Fraction]]:
    """Yield ``(k, frame, t)`` for target frames ``k = first, first+1, ...`` (``<= last``) at ``k / fps``.

    ``frame`` is the source frame nearest in presentation time to ``k / fps + origin`` (ties: the earlier frame);
    ``t`` is the end of the decoded span so far (last frame's time plus its duration), relative to ``origin``.
    ``origin`` defaults to the first frame's time. Frames without a pts continue the previous one by its duration.
    """
    fps = Fraction(fps).limit_denominator(1_000_000)
    k = first
    prev = prev_t = None
    prev_dur = Fraction(0)
    for frame in frames:
        tb = _fraction(frame.time_base)
        dur = _fraction(frame.duration * tb) if (frame.duration and tb) else None
        if frame.pts is None or tb is None:
            t = (prev_t + prev_dur) if prev_t is not None else Fraction(0)
        else:
            t = frame.pts * tb
            if origin is None:
                origin = t
            t -= origin
        if prev is not None:
            if t <= prev_t:  # duplicate or out-of-order timestamp: keep the first frame shown at that time
                continue
            mid = (prev_t + t) / 2
            while k / fps <= mid:
                if last is not None and k > last:
                    return
                yield k, prev, t
                k += 1
        prev, prev_t = frame, t
        prev_dur = dur if dur is not None else (prev_dur or 1 / fps)
    if prev is not None:
        end = prev_t + prev_dur
        while k / fps < end and (last is None or k <= last):
            yield k, prev, end
            k += 1


def output_size(width: int, height: int, rotation: int, short_side: int) -> tuple[int, int]:
    """(width, height) of the stored, upright frame: displayed short side scaled to ``short_side``."""
    if rotation % 180:
        width, height = height, width
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_rgb(frame: Any, width: int, height: int) -> np.ndarray:
    """An upright RGB uint8 (height, width, 3) image of a decoded frame, rotation from its display matrix applied."""
    rotation = int(getattr(frame, "rotation", 0) or 0)
    if rotation % 180:
        coded_w, coded_h = height, width
    else:
        coded_w, coded_h = width, height
    rgb = frame.to_ndarray(width=coded_w, height=coded_h, format="rgb24", interpolation="BILINEAR")
    if rotation % 360:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=(rotation // 90) % 4))
    return rgb


# ------------------------------------------------------------------------------------------------ shard writing
class _ShardWriter:
    """Streams rows into size-bounded Parquet shards; a shard becomes visible (atomically) only when sealed."""

    def __init__(self, shard_dir: Path, prefix: str, config: DecodeConfig):
        self.shard_dir, self.prefix, self.config = shard_dir, prefix, config
        self.sealed: dict[str, dict[str, int]] = {}
        self._count = 0
        self._name: str | None = None
        self._ctx: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0
        self._bytes = 0
        self._buffer: list[tuple[str, int, bytes]] = []
        self._failed: DecodeOutputError | None = None

    def append(self, video_id: str, frame: int, jpeg: bytes) -> tuple[str, int]:
        """Buffer one row; returns (shard name, row index in that shard)."""
        with self._output_errors():
            return self._append(video_id, frame, jpeg)

    def _append(self, video_id: str, frame: int, jpeg: bytes) -> tuple[str, int]:
        if self._name is None:
            self._name = f"{self.prefix}-{self._count:04d}.parquet"
            self._count += 1
            self._ctx = atomic_path(self.shard_dir / self._name)
            tmp = self._ctx.__enter__()
            # JPEGs are neither compressible nor repeated: plain pages, no dictionary (reads ~15% cheaper)
            self._writer = pq.ParquetWriter(tmp, SHARD_SCHEMA, compression="none", write_statistics=False,
                                            use_dictionary=["video_id"])
            self._rows = self._bytes = 0
        self._buffer.append((video_id, frame, jpeg))
        place = (self._name, self._rows)
        self._rows += 1
        self._bytes += len(jpeg)
        if len(self._buffer) >= self.config.row_group_frames:
            self.flush()
        if self._bytes >= self.config.shard_max_bytes:
            self.seal()
        return place

    def flush(self) -> None:
        """Write the buffered rows as one row group."""
        with self._output_errors():
            self._flush()

    def _flush(self) -> None:
        if self._buffer and self._writer is not None:
            vids, frames, jpegs = zip(*self._buffer)
            table = pa.table([pa.array(vids, pa.string()), pa.array(frames, pa.int32()),
                              pa.array(jpegs, pa.binary())], schema=SHARD_SCHEMA)
            self._writer.write_table(table, row_group_size=len(self._buffer))
            self._buffer = []

    def seal(self) -> None:
        if self._writer is None:
            return
        with self._output_errors():
            self._flush()
            self._writer.close()
            self._ctx.__exit__(None, None, None)
            path = self.shard_dir / self._name
            self.sealed[self._name] = {"rows": self._rows, "bytes": path.stat().st_size, "sha256": shard_digest(path)}
        self._writer = self._ctx = self._name = None

    @contextlib.contextmanager
    def _output_errors(self) -> Iterator[None]:
        """A write error stops the writer for good: every later call raises the same one-line error (Arrow would
        only say "Operation on closed file")."""
        if self._failed is not None:
            raise self._failed
        try:
            with _output_errors(self.shard_dir):
                yield
        except DecodeOutputError as exc:
            self._failed = exc
            raise

    def abort(self) -> None:
        """Close and delete the open shard's temporary file (after a write error the writer may be half closed)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except (OSError, pa.ArrowException):
                pass
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._writer = self._ctx = self._name = None
            self._buffer = []


def shard_digest(path: Path) -> str:
    """sha256 of a shard file, recorded in the manifest and checked before a re-run trusts the shard."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _output_errors(where: Path) -> Iterator[None]:
    """OSErrors of writing shards (ENOSPC, EDQUOT, EACCES, EIO...) as one :class:`DecodeOutputError` line."""
    try:
        yield
    except DecodeOutputError:
        raise
    except OSError as exc:
        raise DecodeOutputError(f"cannot write shards in {where}: {_errno_text(exc)}") from exc


def _errno_text(exc: OSError) -> str:
    """:func:`os_error_line`, also for Arrow's IO errors, which carry the errno only in their message."""
    if exc.errno is None and (m := re.search(r"\[errno (\d+)\]\s*(.*)", str(exc), re.IGNORECASE)):
        return os_error_line(OSError(int(m.group(1)), m.group(2).strip()))
    return os_error_line(exc)


def _in_windows(t: Fraction, windows: Sequence[Window] | None) -> bool:
    return windows is None or any(start - 1e-6 <= t <= end + 1e-6 for start, end in windows)


def _decode_video(video_id: str, path: Path, windows: Sequence[Window] | None, config: DecodeConfig,
                  writer: _ShardWriter, threads: int) -> dict[str, Any]:
    """Decode one video into ``writer``; returns its manifest entry (without checksum/key) or raises VideoError."""
    container, stream = open_video(path, threads=threads)
    # Everything needed from the stream is read now: PyAV's stream objects must not be touched after close().
    declared = None
    if stream.duration and stream.time_base:
        declared = stream.duration * Fraction(stream.time_base)
    elif container.duration:
        declared = Fraction(container.duration, 1_000_000)
    rate = stream.average_rate or stream.guessed_rate
    coded_size = (stream.width, stream.height)
    runs: list[list[Any]] = []
    size = None
    end = Fraction(0)
    k = -1
    fps = Fraction(config.fps).limit_denominator(1_000_000)
    frames, first, stop_after = container.decode(stream), 0, None
    try:
        sought = seek_to_windows(container, stream, windows, fps)
    except av.FFmpegError:
        sought = None
    if sought is not None:
        frames, first, stop_after = sought
    elif windows and windows[0][0] >= SEEK_MIN_START_SEC:  # could not seek exactly: decode from the start
        container.close()
        container, stream = open_video(path, threads=threads)
        frames = container.decode(stream)
    stopped_early = False
    try:
        last_src = cached = None
        for k, frame, end in resample(frames, fps, origin=stream_origin(stream), first=first):
            if stop_after is not None and k / fps > stop_after:
                stopped_early, k = True, k - 1
                break
            if k % config.keep_every or not _in_windows(k / fps, windows):
                continue
            if frame is not last_src:  # an up-sampled source frame is converted and encoded once
                if size is None:
                    size = output_size(frame.width, frame.height, int(getattr(frame, "rotation", 0) or 0),
                                       config.short_side)
                cached, last_src = encode_jpeg(frame_rgb(frame, *size), config.jpeg_quality), frame
            shard, row = writer.append(video_id, k, cached)
            run = runs[-1] if runs else None
            if run and run[0] == shard and run[1] + run[3] == row and run[2] + run[3] == k:
                run[3] += 1
            else:
                runs.append([shard, row, k, 1])
    except av.FFmpegError as exc:
        raise VideoError(f"decode error after target frame {k}: {exc}") from None
    finally:
        container.close()
        writer.flush()
    if k < 0:
        raise VideoError("no decodable video frames")
    if declared and not stopped_early and end < config.min_coverage * declared:
        raise VideoError(f"truncated: decoded {float(end):.2f} s of the declared {float(declared):.2f} s")
    if size is None:  # every frame fell outside the windows: nothing to read, but the timeline is known
        size = output_size(*coded_size, 0, config.short_side)
    return {
        "video_id": video_id, "path": str(path), "fps": config.fps, "num_frames": k + 1,
        "stored_frames": sum(r[3] for r in runs), "width": size[0], "height": size[1],
        "source_fps": float(rate) if rate else None, "runs": runs,
        **({"keep_every": config.keep_every} if config.keep_every != 1 else {}),
    }


# ------------------------------------------------------------------------------------- seeking to late windows
#: Windows that start this late are reached by seeking (AVA's full movies: the first keyframe is at second 902).
SEEK_MIN_START_SEC = 30.0
#: The seek aims this far before the first window, so that frames at the window's edge have their neighbours.
SEEK_MARGIN_SEC = 2.0


def seek_to_windows(container: Any, stream: Any, windows: Sequence[Window] | None, fps: Fraction
                    ) -> tuple[Iterator[Any], int, Fraction] | None:
    """Seek to the keyframe before the first window; return (frames from it, first target index, last window end).

    The resampling rule stays exact: target frame ``k`` is the source frame nearest ``k / fps`` after the stream's
    start time, and a seek to a keyframe at ``t0`` (time from the start) lets every target at or after ``t0`` see the
    frames it chooses between (none before ``t0`` can be nearer). So resampling restarts at the first ``k`` with
    ``k / fps >= t0``, with the same indices as decoding from the start, and stops after the last window, where the
    stored timeline (``num_frames``) then ends. None (decode from the start) when there is nothing to gain (no
    window later than :data:`SEEK_MIN_START_SEC`), when the container declares no start time (the timeline's origin
    would be unknown after a seek), or when the seek lands after the first window or on frames without timestamps.
    The container must then be reopened: it may have been moved.
    """
    if not windows or windows[0][0] < SEEK_MIN_START_SEC:
        return None
    origin = stream_origin(stream)
    tb = _fraction(stream.time_base)
    if origin is None or tb is None:
        return None
    start = Fraction(windows[0][0]).limit_denominator(1_000_000)
    container.seek(int((origin + start - Fraction(SEEK_MARGIN_SEC)) / tb), stream=stream, backward=True,
                   any_frame=False)
    frames = container.decode(stream)
    first_frame = next(frames, None)
    if first_frame is None or first_frame.pts is None or first_frame.time_base is None:
        return None
    t0 = first_frame.pts * Fraction(first_frame.time_base) - origin
    if t0 > start or t0 < 0:
        return None
    first = math.ceil(t0 * fps)
    last_end = Fraction(max(end for _, end in windows)).limit_denominator(1_000_000)

    def chained() -> Iterator[Any]:
        yield first_frame
        yield from frames

    return chained(), first, last_end


# ------------------------------------------------------------------------------------------ plan, chunks, merge
@dataclasses.dataclass(frozen=True)
class DecodeChunk:
    """One unit of decoding work, for whichever mapper runs it (a process pool, a Dask cluster).

    Its videos are decoded in one worker into shards ``<prefix>-NNNN`` of its own. Picklable and independent of the
    current directory: ``out_dir`` and each video's ``file`` are absolute; ``path`` is the source as given, which the
    manifest and failure records keep.
    """

    videos: tuple[dict[str, Any], ...]  # video_id, path, file, windows, checksum, key
    out_dir: str
    config: DecodeConfig
    prefix: str
    threads: int = 0  # FFmpeg decoder threads: 0 = every core, 1 when chunks run side by side


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    """What one chunk produced: manifest entries, failure records and its sealed shards ``{name: {rows, bytes}}``."""

    records: list[dict[str, Any]]
    failures: list[dict[str, str]]
    shards: dict[str, dict[str, int]]


@dataclasses.dataclass(frozen=True)
class DecodePlan:
    """What a run has to do: the ``chunks`` to decode, and what it keeps (entries of intact videos, their shards)."""

    out_dir: Path
    chunks: list[DecodeChunk]
    videos: dict[str, Any]
    shards: dict[str, Any]
    skipped: list[str]
    failures: list[dict[str, str]]  # sources that cannot even be read


#: ``map_chunks(fn, chunks)`` -> ``fn(chunk)`` of every chunk, in any order, e.g. on the processes of a cluster.
ChunkMapper = Callable[[Callable[[DecodeChunk], ChunkResult], Sequence[DecodeChunk]], Iterable[ChunkResult]]


def decode_chunk(chunk: DecodeChunk) -> ChunkResult:
    """Decode the videos of one chunk, in whatever process runs it; every shard is sealed on return."""
    writer = _ShardWriter(Path(chunk.out_dir) / SHARD_DIR, chunk.prefix, chunk.config)
    records, failures = [], []
    try:
        for item in chunk.videos:
            try:
                entry = _decode_video(item["video_id"], Path(item["file"]), item["windows"], chunk.config, writer,
                                      chunk.threads)
            except VideoError as exc:
                failures.append({"video_id": item["video_id"], "path": item["path"], "reason": str(exc)})
                continue
            except DecodeOutputError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken file must not stop the others (rule: failure record)
                log.exception("%s: unexpected error", item["video_id"])
                failures.append({"video_id": item["video_id"], "path": item["path"],
                                 "reason": f"{type(exc).__name__}: {exc}"})
                continue
            records.append({**entry, "path": item["path"], "checksum": item["checksum"], "key": item["key"]})
        writer.seal()
    except BaseException:
        writer.abort()
        raise
    return ChunkResult(records, failures, writer.sealed)


def map_in_processes(fn: Callable[[DecodeChunk], ChunkResult], chunks: Sequence[DecodeChunk], *, workers: int = 1
                     ) -> Iterator[ChunkResult]:
    """The default mapper: ``workers`` spawned processes (this process for one worker or one chunk), results as
    they complete."""
    if workers <= 1 or len(chunks) <= 1:
        yield from map(fn, chunks)
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            for future in concurrent.futures.as_completed([pool.submit(fn, chunk) for chunk in chunks]):
                yield future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # a full disk: start no further chunk
            raise


def _params_key(config: DecodeConfig, windows: Sequence[Window] | None) -> str:
    params = {"version": FORMAT_VERSION, "fps": config.fps, "short_side": config.short_side,
              "jpeg_quality": config.jpeg_quality,
              "windows": None if windows is None else [[float(a), float(b)] for a, b in windows]}
    if config.keep_every != 1:  # absent by default, so shards written before the option keep their key
        params["keep_every"] = config.keep_every
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """The manifest of ``out_dir`` (empty when absent or unreadable, so that a re-run rebuilds it)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
        if manifest.get("version") == FORMAT_VERSION:
            return manifest
    except (OSError, ValueError):
        pass
    return {"version": FORMAT_VERSION, "videos": {}, "shards": {}}


def _shard_ok(shard_dir: Path, name: str, meta: Mapping[str, int] | None) -> bool:
    path = shard_dir / name
    if meta is None or not SHARD_NAME.fullmatch(name) or not path.is_file():
        return False
    if path.stat().st_size != meta.get("bytes") or "sha256" not in meta:  # no checksum: an older manifest, redo
        return False
    try:
        return pq.ParquetFile(path).metadata.num_rows == meta.get("rows") and shard_digest(path) == meta["sha256"]
    except (OSError, pa.ArrowException):
        return False


def _write_outputs(out_dir: Path, videos: dict[str, Any], shards: dict[str, Any],
                   failures: list[dict[str, str]] | None = None) -> None:
    used = {run[0] for v in videos.values() for run in v["runs"]}
    write_json_atomic(out_dir / MANIFEST, {"version": FORMAT_VERSION, "videos": dict(sorted(videos.items())),
                                           "shards": {n: shards[n] for n in sorted(used)}})
    if failures is not None:
        write_json_atomic(out_dir / FAILURES, sorted(failures, key=lambda f: f["video_id"]))


def _check_arguments(sources: Mapping[str, Any], windows: Mapping[str, Sequence[Window]] | None, workers: int
                     ) -> None:
    """Invalid arguments fail before any work (and before the output folder is created or locked)."""
    if workers < 1:
        raise ValueError(f"workers: got {workers}, allowed: >= 1")
    windows = dict(windows or {})
    unknown = sorted(set(windows) - set(sources))
    if unknown:
        raise ValueError(f"windows: video id {unknown[0]!r} is not among the sources")
    for vid, wins in windows.items():
        for start, end in wins:
            if not 0 <= start <= end:
                raise ValueError(f"windows[{vid!r}]: got ({start}, {end}), allowed: 0 <= start <= end")


def plan_decode(
    sources: Mapping[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: DecodeConfig = DecodeConfig(),
    *,
    windows: Mapping[str, Sequence[Window]] | None = None,
    workers: int = 1,
    parallel: bool | None = None,
) -> DecodePlan:
    """Validate the arguments, find the videos that need decoding and split them into chunks.

    Videos whose checksum and parameters match the manifest and whose shards are intact are kept (``skipped``).
    Chunks hold at most ``config.videos_per_task`` videos and are small enough for about four per worker; their shard
    prefixes hash their content, so the same work gets the same shard names whoever runs it. ``parallel`` (default:
    ``workers`` > 1) says that chunks run side by side, so each decodes on one core.
    """
    _check_arguments(sources, windows, workers)
    windows = dict(windows or {})
    out_dir = Path(out_dir)
    shard_dir = out_dir / SHARD_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    old = load_manifest(out_dir)
    shard_valid: dict[str, bool] = {}

    def intact(entry: Mapping[str, Any]) -> bool:
        for name in {run[0] for run in entry["runs"]}:
            if name not in shard_valid:
                shard_valid[name] = _shard_ok(shard_dir, name, old["shards"].get(name))
            if not shard_valid[name]:
                return False
        return True

    videos = {vid: e for vid, e in old["videos"].items() if vid not in sources and intact(e)}
    failures: list[dict[str, str]] = []
    todo, skipped = [], []
    for vid in sorted(sources):
        path = Path(sources[vid])
        wins = windows.get(vid)
        key = _params_key(config, wins)
        try:
            checksum = fast_checksum(path)
        except OSError as exc:
            failures.append({"video_id": vid, "path": str(path), "reason": f"missing or unreadable file: {exc}"})
            continue
        entry = old["videos"].get(vid)
        if entry and entry["checksum"] == checksum and entry["key"] == key and intact(entry):
            videos[vid] = entry
            skipped.append(vid)
        else:
            todo.append({"video_id": vid, "path": str(path), "file": str(path.resolve()), "windows": wins,
                         "checksum": checksum, "key": key})

    per_task = max(1, min(config.videos_per_task, math.ceil(len(todo) / (4 * workers)) if todo else 1))
    groups = [todo[i : i + per_task] for i in range(0, len(todo), per_task)]
    threads = 1 if (workers > 1 if parallel is None else parallel) and len(groups) > 1 else 0
    chunks = []
    for group in groups:
        digest = hashlib.sha256(json.dumps([[t["video_id"], t["checksum"], t["key"]] for t in group]).encode())
        chunks.append(DecodeChunk(tuple(group), str(out_dir.resolve()), config,
                                  f"shard-{digest.hexdigest()[:16]}", threads))
    return DecodePlan(out_dir, chunks, videos, dict(old["shards"]), skipped, failures)


def merge_decode(plan: DecodePlan, results: Iterable[ChunkResult], *, progress: bool = True) -> DecodeReport:
    """Collect the chunks' results into ``manifest.json`` and ``failures.json`` (atomic writes, the manifest also
    every 30 s so that an interrupted run keeps what is done) and delete the shards nothing references."""
    videos, shards, failures = dict(plan.videos), dict(plan.shards), list(plan.failures)
    decoded: list[str] = []
    total = sum(len(chunk.videos) for chunk in plan.chunks)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="video", desc="decode", disable=not total)
    last_write = time.monotonic()
    try:
        for result in results:
            shards.update(result.shards)
            for record in result.records:
                videos[record["video_id"]] = record
                decoded.append(record["video_id"])
            failures.extend(result.failures)
            if bar is not None:
                bar.update(len(result.records) + len(result.failures))
            if time.monotonic() - last_write > 30:
                _write_outputs(plan.out_dir, videos, shards)
                last_write = time.monotonic()
    finally:
        if bar is not None:
            bar.close()  # before any error message, which then starts a line of its own
    _write_outputs(plan.out_dir, videos, shards, failures)
    used = {run[0] for v in videos.values() for run in v["runs"]}
    for path in (plan.out_dir / SHARD_DIR).iterdir():
        if path.name not in used and SHARD_NAME.fullmatch(path.name):
            path.unlink(missing_ok=True)
    _remove_run_files(plan, keep=used)
    for failure in failures:
        log.warning("%s: %s (%s)", failure["video_id"], failure["reason"], failure["path"])
    log.info("decoded %d videos, skipped %d, %d failures", len(decoded), len(plan.skipped), len(failures))
    return DecodeReport(sorted(decoded), plan.skipped, sorted(failures, key=lambda f: f["video_id"]),
                        plan.out_dir / MANIFEST)


def decode_videos(
    sources: Mapping[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: DecodeConfig = DecodeConfig(),
    *,
    windows: Mapping[str, Sequence[Window]] | None = None,
    workers: int = 1,
    progress: bool = True,
    map_chunks: ChunkMapper | None = None,
) -> DecodeReport:
    """Decode ``sources`` (video id -> file) into frame shards under ``out_dir``; see the module docstring.

    :func:`plan_decode`, then :func:`decode_chunk` of every chunk through ``map_chunks`` (default: ``workers``
    spawned processes, :func:`map_in_processes`), then :func:`merge_decode`. Videos already decoded with the same
    checksum and parameters into intact shards are skipped; corrupt or incomplete shards are rebuilt. Returns a
    report; the failure records are also in ``out_dir/failures.json``.
    """
    _check_arguments(sources, windows, workers)
    with folder_lock(out_dir, "decode"):
        _remove_stale_temp_files(Path(out_dir))
        plan = plan_decode(sources, out_dir, config, windows=windows, workers=workers,
                           parallel=True if map_chunks is not None else None)
        mapper = map_chunks or functools.partial(map_in_processes, workers=workers)
        try:
            return merge_decode(plan, mapper(decode_chunk, plan.chunks) if plan.chunks else (), progress=progress)
        except (DecodeOutputError, OSError) as exc:
            removed = _discard_failed_run(plan)
            if not isinstance(exc, DecodeOutputError):
                exc = DecodeOutputError(f"cannot write {plan.out_dir}: {_errno_text(exc)}")
            raise DecodeOutputError(f"decode: {exc}; removed what this run wrote ({removed} files), a re-run "
                                    "with space continues from the videos decoded before it") from None


# ------------------------------------------------------------------------- cleanup after a failed or killed run
def _run_prefixes(plan: DecodePlan) -> set[str]:
    return {chunk.prefix for chunk in plan.chunks}


def _remove_run_files(plan: DecodePlan, keep: set[str]) -> int:
    """Delete the shards and temporary files of ``plan``'s own chunks that are not in ``keep``; returns how many.

    Only this run's files: shard names start with the prefix of a chunk of this plan, and temporary files are
    ``.<shard name>.<random>.tmp`` (:func:`slowfast.utils.io.atomic_path`)."""
    prefixes = _run_prefixes(plan)
    removed = 0
    for path in (plan.out_dir / SHARD_DIR).iterdir():
        name = path.name[1:] if path.name.startswith(".") and path.name.endswith(".tmp") else path.name
        if name not in keep and any(name.startswith(prefix + "-") for prefix in prefixes):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _discard_failed_run(plan: DecodePlan) -> int:
    """After a write error: delete every file this run wrote, and put back the manifest of the videos it kept when
    a periodic write already named the new shards."""
    removed = _remove_run_files(plan, keep={run[0] for v in plan.videos.values() for run in v["runs"]})
    manifest = load_manifest(plan.out_dir)
    named = {run[0] for v in manifest["videos"].values() for run in v["runs"]}
    if any(not (plan.out_dir / SHARD_DIR / name).exists() for name in named):
        try:
            _write_outputs(plan.out_dir, plan.videos, plan.shards)
        except OSError as exc:
            log.warning("could not restore %s: %s", plan.out_dir / MANIFEST, _errno_text(exc))
    return removed


def _remove_stale_temp_files(out_dir: Path) -> None:
    """Temporary shard files of runs killed mid-write; only called with the folder's lock held, so no other run
    of this folder is writing them."""
    shard_dir = out_dir / SHARD_DIR
    if shard_dir.is_dir():
        for path in shard_dir.glob(".shard-*.tmp"):
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DecodeConfig()
    parser.add_argument("src", type=Path, help="folder of videos (searched recursively); video id = file stem")
    parser.add_argument("out", type=Path, help="output folder (shards/, manifest.json, failures.json)")
    parser.add_argument("--fps", type=float, default=defaults.fps, help="target frame rate")
    parser.add_argument("--short-side", type=int, default=defaults.short_side, help="target short side in pixels")
    parser.add_argument("--quality", type=int, default=defaults.jpeg_quality, help="JPEG quality 1..100")
    parser.add_argument("--shard-mb", type=int, default=defaults.shard_max_bytes // 2**20, help="shard size bound")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")


def run(args: argparse.Namespace) -> int:
    if not args.src.is_dir():
        raise FileNotFoundError(f"src: {args.src} is not a directory")
    sources: dict[str, Path] = {}
    for path in sorted(args.src.rglob("*")):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            if path.stem in sources:
                raise ValueError(f"src: two videos with the id {path.stem!r}: {sources[path.stem]} and {path}")
            sources[path.stem] = path
    config = from_mapping(DecodeConfig, {"fps": args.fps, "short_side": args.short_side,
                                         "jpeg_quality": args.quality, "shard_max_bytes": args.shard_mb * 2**20})
    report = decode_videos(sources, args.out, config, workers=args.workers, progress=True)
    print(json.dumps({"decoded": len(report.decoded), "skipped": len(report.skipped),
                      "failures": len(report.failures), "manifest": str(report.manifest)}))
    return 1 if report.failures and not (report.decoded or report.skipped) else 0
