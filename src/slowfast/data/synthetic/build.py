"""What the three synthetic generators share: video parameters, seeding, scene placement, rendering jobs and the
atomic, idempotent build of a dataset directory."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import shutil
import string
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slowfast.config import require, to_mapping
from slowfast.data.synthetic.motions import MOTIONS
from slowfast.data.synthetic.render import Sprite, Track, draw_frames, encode_mp4
from slowfast.utils.io import make_staging_dir, write_json_atomic

log = logging.getLogger(__name__)

#: Bump when the generator's output changes for the same parameters (invalidates existing builds).
GENERATOR_VERSION = 2
STAMP_NAME = ".synthetic.json"
YOUTUBE_ALPHABET = string.ascii_letters + string.digits + "_-"


@dataclass(frozen=True)
class VideoParams:
    """Frame size, rate and encoding of the generated videos, and the Slow stride τ the aliased classes target."""

    width: int = 160
    height: int = 120
    fps: int = 30
    crf: int = 18
    slow_stride: int = 16

    def __post_init__(self) -> None:
        for key in ("width", "height"):
            value = getattr(self, key)
            require(32 <= value <= 1920 and value % 2 == 0, key, f"got {value}; allowed: even integers in [32, 1920]")
        require(1 <= self.fps <= 120, "fps", f"got {self.fps}; allowed: 1..120")
        require(0 <= self.crf <= 51, "crf", f"got {self.crf}; allowed: 0..51 (x264 constant rate factor)")
        fastest = max(m.cycles_per_slow_step for m in MOTIONS) * self.fps / max(self.slow_stride, 1)
        require(
            2 <= self.slow_stride and fastest < self.fps / 4,
            "slow_stride",
            f"got {self.slow_stride}; allowed: >= 2 and large enough that every oscillation stays below the Nyquist "
            f"rate of a stride-2 Fast pathway (fastest {fastest:.2f} Hz must be < fps/4 = {self.fps / 4:.2f} Hz)",
        )

    @property
    def slow_rate(self) -> float:
        """The Slow pathway's sampling rate fps/τ in Hz."""
        return self.fps / self.slow_stride

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def check_range(pair: tuple[float, float], key: str, low: float, high: float | None = None) -> None:
    """``pair`` is a ``(min, max)`` with ``low <= min <= max (<= high)``."""
    ok = low <= pair[0] <= pair[1] and (high is None or pair[1] <= high)
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    require(ok, key, f"got {list(pair)}; allowed: [min, max] with min <= max, both {allowed}")


def video_rng(seed: int, *path: int) -> np.random.Generator:
    """The random stream of one video: a pure function of the seed and the video's position, so videos can be
    generated in any order, in parallel, and a change in one split's size leaves the others' videos unchanged."""
    return np.random.default_rng([seed, *path])


def random_id(rng: np.random.Generator, length: int, alphabet: str = YOUTUBE_ALPHABET) -> str:
    """A random id in the style of a dataset's (YouTube: 11 chars of [A-Za-z0-9_-]; Charades: 5 of [A-Z0-9])."""
    id_ = "".join(alphabet[i] for i in rng.integers(len(alphabet), size=length))
    # A leading '-' is legal on YouTube but reads as an option on command lines; keep ids friendly.
    return id_ if id_[0] != "-" else "x" + id_[1:]


def place(rng: np.random.Generator, sprite: Sprite, offsets: np.ndarray, width: int, height: int) -> np.ndarray:
    """Poses (N, 4) = a random resting pose + ``offsets``, with the centre drawn uniformly among the positions that
    keep the whole trajectory inside the frame (the middle when none does) and a uniformly random angle."""
    margin = sprite.half_length * math.exp(float(offsets[:, 2].max())) + 1.0
    centre = []
    for column, size in ((0, width), (1, height)):
        low, high = margin - offsets[:, column].min(), size - margin - offsets[:, column].max()
        centre.append(rng.uniform(low, high) if low < high else (low + high) / 2)
    rest = np.array([centre[0], centre[1], 0.0, rng.uniform(0.0, 2 * math.pi)])
    return rest + offsets


@dataclass(frozen=True)
class RenderJob:
    """One video to draw and encode (picklable, so jobs can run in worker processes)."""

    path: Path
    background: np.ndarray
    tracks: tuple[Track, ...]
    num_frames: int
    fps: int
    crf: int


def _render(job: RenderJob) -> int:
    return encode_mp4(job.path, draw_frames(job.background, job.tracks, job.num_frames), fps=job.fps, crf=job.crf)


def render_all(jobs: Sequence[RenderJob], *, workers: int = 1) -> None:
    """Draw and encode every job, in ``workers`` processes (spawned: the parent may hold torch threads)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _render(job)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for _ in pool.map(_render, jobs, chunksize=max(1, len(jobs) // (4 * workers))):
            pass


def _files(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != STAMP_NAME
    }


def build_dataset_dir(root: str | os.PathLike[str], params: Any, build: Callable[[Path], None]) -> bool:
    """Build a dataset directory atomically and idempotently; returns False when it was already up to date.

    ``build(staging)`` writes the dataset into a staging directory beside ``root``, which then replaces ``root``.
    A stamp file records the parameters and every file's size: a re-run with the same parameters over an intact
    directory does nothing; anything else rebuilds. A non-empty ``root`` without a stamp is not ours and is never
    touched (``FileExistsError``).
    """
    root = Path(root)
    stamp = {"generator_version": GENERATOR_VERSION, "params": to_mapping(params)}
    stamp_path = root / STAMP_NAME
    if root.exists():
        try:
            old = json.loads(stamp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old is None and any(root.iterdir()):
            raise FileExistsError(f"{root} exists and was not made by the synthetic generator; refusing to replace it")
        if old is not None and {k: old.get(k) for k in stamp} == stamp and old.get("files") == _files(root):
            log.info("%s is up to date", root)
            return False
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(f".{root.name}.", ".partial", dir=root.parent)
    try:
        build(staging)
        write_json_atomic(staging / STAMP_NAME, {**stamp, "files": _files(staging)})
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True
