"""Read frames back from the Parquet shards written by :mod:`slowfast.data.decode`.

``FrameShards(root).read(video_id, frame_indices)`` returns RGB uint8 frames ``(N, H, W, 3)`` by index on the
video's resampled timeline (``info(video_id).fps``, 30 by default). Only the row groups holding the requested frames
are read (a row group is at most ``row_group_frames`` frames of one video), each distinct frame is decoded once, and
the Parquet footers of the shards a process touches are cached (per process: a DataLoader worker opens its own).
A reader is picklable.

JPEG decoding is most of a clip's cost: ``read(..., box=...)`` decodes only the blocks under a crop, and
``decode_threads`` > 1 decodes the frames of one ``read`` in that many threads, each taking an equal share
(simplejpeg's libjpeg-turbo releases the GIL). Rule: ``decode_threads × DataLoader workers ≤ CPU cores``: threads
only pay off on cores the workers leave idle (typically ``num_workers=0`` for evaluation or a single worker); with
one worker per core keep the default 1, extra threads then only compete with the other workers.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from slowfast.data.decode import MANIFEST, SHARD_DIR, SHARD_NAME, load_manifest
from slowfast.data.jpeg import Box, cut_jpeg, decode_jpeg, jpeg_size


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """One decoded video: its resampled timeline and frame size."""

    video_id: str
    fps: float
    num_frames: int  # length of the full timeline (frames 0 .. num_frames-1)
    stored_frames: int  # frames actually stored (fewer when decoded with time windows)
    height: int
    width: int
    source_fps: float | None
    path: str
    keep_every: int = 1  # only frames k with k % keep_every == 0 are stored (decode.frames.keep_every)


class FrameShards:
    """Random access to decoded frames; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str], *, max_open_files: int = 64, decode_threads: int = 1):
        if decode_threads < 1:
            raise ValueError(f"decode_threads: got {decode_threads}, allowed: >= 1 (see the FrameShards docstring)")
        self.root = Path(root)
        if not (self.root / MANIFEST).is_file():
            raise FileNotFoundError(f"{self.root / MANIFEST}: no frame-shard manifest (run `slowfast decode`)")
        manifest = load_manifest(self.root)
        self._videos: dict[str, dict[str, Any]] = manifest["videos"]
        for vid, entry in self._videos.items():
            for run in entry["runs"]:
                if not SHARD_NAME.fullmatch(run[0]):  # names come from a file: never let one leave shards/
                    raise ValueError(f"{self.root / MANIFEST}: video {vid!r}: invalid shard name {run[0]!r}")
        self._max_open = max_open_files
        self._files: collections.OrderedDict[str, tuple[pq.ParquetFile, np.ndarray]] = collections.OrderedDict()
        self._pid = os.getpid()
        self.decode_threads = decode_threads
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = collections.OrderedDict()
        state["_pool"] = None
        return state

    def videos(self) -> list[str]:
        return sorted(self._videos)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._videos

    def __len__(self) -> int:
        return len(self._videos)

    def info(self, video_id: str) -> VideoInfo:
        e = self._entry(video_id)
        return VideoInfo(video_id, e["fps"], e["num_frames"], e["stored_frames"], e["height"], e["width"],
                         e.get("source_fps"), e["path"], e.get("keep_every", 1))

    def _entry(self, video_id: str) -> dict[str, Any]:
        try:
            return self._videos[video_id]
        except KeyError:
            raise KeyError(f"video {video_id!r} is not in {self.root / MANIFEST}") from None

    def _open(self, name: str) -> tuple[pq.ParquetFile, np.ndarray]:
        if self._pid != os.getpid():  # forked into a DataLoader worker: do not share file handles or threads
            self._files = collections.OrderedDict()
            self._pool = None
            self._pid = os.getpid()
        if name in self._files:
            self._files.move_to_end(name)
            return self._files[name]
        pf = pq.ParquetFile(self.root / SHARD_DIR / name, memory_map=True)
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._files[name] = (pf, starts)
        if len(self._files) > self._max_open:
            self._files.popitem(last=False)
        return pf, starts

    def read(self, video_id: str, frame_indices: Sequence[int] | np.ndarray, box: Box | None = None) -> np.ndarray:
        """Frames ``frame_indices`` of ``video_id`` as uint8 ``(N, H, W, 3)`` RGB, in the order asked (repeats ok).

        ``box=(x0, y0, x1, y1)`` (pixels, end-exclusive) returns only that part, ``read(...)[:, y0:y1, x0:x1]`` bit
        for bit, decoding only the JPEG blocks it needs (:mod:`slowfast.data.jpeg`): a training crop costs about half
        of a whole frame. The result may be a view into a larger array."""
        entry = self._entry(video_id)
        wanted = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        height, width = entry["height"], entry["width"]
        if box is not None:
            x0, y0, x1, y1 = box = tuple(int(v) for v in box)
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise ValueError(f"video {video_id!r}: box {box} is not inside its {width}x{height} frames "
                                 "(allowed: 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height)")
            height, width = y1 - y0, x1 - x0
        if len(wanted) == 0:
            return np.empty((0, height, width, 3), np.uint8)
        bad = wanted[(wanted < 0) | (wanted >= entry["num_frames"])]
        if len(bad):
            raise IndexError(f"video {video_id!r}: frame {int(bad[0])} outside 0..{entry['num_frames'] - 1}")
        runs = entry["runs"]
        run_starts = [r[2] for r in runs]
        positions: dict[int, list[int]] = collections.defaultdict(list)  # frame -> places in the output
        for i, frame in enumerate(wanted.tolist()):
            positions[frame].append(i)
        by_shard: dict[str, dict[int, int]] = collections.defaultdict(dict)  # shard -> row -> frame
        for frame in positions:
            i = bisect.bisect_right(run_starts, frame) - 1
            if i < 0 or frame >= runs[i][2] + runs[i][3]:
                raise IndexError(f"video {video_id!r}: frame {frame} was not stored (outside its decode windows)")
            shard, first_row, first_frame, _ = runs[i]
            by_shard[shard][first_row + frame - first_frame] = frame
        jobs: list[tuple[int, bytes]] = []  # (first place in the output, JPEG) per distinct frame
        for shard, rows in by_shard.items():
            pf, starts = self._open(shard)
            row_ids = np.fromiter(rows, np.int64)
            group_of_row = np.searchsorted(starts, row_ids, side="right") - 1
            groups = np.unique(group_of_row)
            table = pf.read_row_groups(groups.tolist(), columns=["frame", "jpeg"], use_threads=False)
            # Shard row r sits at r - starts[g] after the rows of the groups read before its group g.
            offset = np.concatenate([[0], np.cumsum(starts[groups + 1] - starts[groups])])
            local = offset[np.searchsorted(groups, group_of_row)] + row_ids - starts[group_of_row]
            stored = table.column("frame").take(local).to_pylist()
            jpegs = table.column("jpeg").take(local).to_pylist()
            for row, got, data in zip(row_ids.tolist(), stored, jpegs):
                if got != rows[row]:
                    raise RuntimeError(f"{shard}: row {row} holds frame {got}, manifest says {rows[row]}")
                jobs.append((positions[got][0], data))

        full = (entry["width"], entry["height"])
        cuts = [] if box is None else [cut_jpeg(data, box) for _, data in jobs]
        regions = {cut and cut[1] for cut in cuts}
        if len(regions) == 1 and None not in regions:  # every frame cut to the same region: decode into it, no copy
            for _, data in jobs:
                if jpeg_size(data) != full:
                    raise ValueError(f"video {video_id!r}: JPEG of {'x'.join(map(str, jpeg_size(data)))} pixels, "
                                     f"expected {full[0]}x{full[1]} (manifest)")
            rx, ry, rw, rh = regions.pop()
            buffer = np.empty((len(wanted), rh, rw, 3), np.uint8)
            out = buffer[:, y0 - ry : y1 - ry, x0 - rx : x1 - rx]
            tasks = [(buffer[first], cut[0]) for (first, _), cut in zip(jobs, cuts)]
        else:  # whole frames (their size checked), then the box if any
            buffer = np.empty((len(wanted), full[1], full[0], 3), np.uint8)
            out = buffer if box is None else buffer[:, y0:y1, x0:x1]
            tasks = [(buffer[first], data) for first, data in jobs]

        def decode(part: list[tuple[np.ndarray, bytes]]) -> None:
            for target, data in part:
                decode_jpeg(data, out=target)

        threads = min(self.decode_threads, len(tasks))
        if threads > 1:  # one task per thread: a task per frame costs more in hand-offs than it gains
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.decode_threads, "jpeg-decode")
            list(self._pool.map(decode, [tasks[i::threads] for i in range(threads)]))
        else:
            decode(tasks)
        for first, *repeats in positions.values():
            if repeats:
                out[repeats] = out[first]
        return out
