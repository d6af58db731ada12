"""A Kinetics-like dataset: short clips of a few objects that all perform the clip's motion class.

Each object has its own random shape, colours, size, position and its own draw of the motion's rate or amplitude and
phase; only the kind of motion is shared, so the class is what the objects *do*.

Written in the CVDF layout of Kinetics (see :class:`slowfast.data.sources.KineticsSource`)::

    <root>/annotations/{train,val[,test]}.csv            label,youtube_id,time_start,time_end,split
    <root>/{train,val[,test]}/<youtube_id>_<start:06d>_<end:06d>.mp4

The test split, when asked for, has its labels held back (empty label column), as the official one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slowfast.config import require
from slowfast.data.formats.kinetics import KineticsClip, clip_video_id, write_kinetics_csv
from slowfast.data.synthetic.build import (
    RenderJob,
    VideoParams,
    build_dataset_dir,
    check_range,
    place,
    random_id,
    render_all,
    video_rng,
)
from slowfast.data.synthetic.motions import MOTIONS, Motion, MotionInstance
from slowfast.data.synthetic.render import Track, random_background, random_sprite

SALT = 400  # separates this dataset's random streams from the others' for the same seed
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class KineticsParams:
    """Size of the Kinetics-like dataset: ``num_classes`` x (train + val [+ test]) clips of ``duration_sec`` at the
    video size, each with ``objects_per_video`` (min, max) moving objects whose half-length is ``object_size``
    (fractions of the short side)."""

    num_classes: int = len(MOTIONS)
    train_per_class: int = 24
    val_per_class: int = 8
    test_per_class: int = 0
    duration_sec: float = 3.2
    objects_per_video: tuple[int, int] = (2, 3)
    object_size: tuple[float, float] = (0.2, 0.3)
    seed: int = 0
    video: VideoParams = field(default_factory=VideoParams)

    def __post_init__(self) -> None:
        require(
            2 <= self.num_classes <= len(MOTIONS),
            "num_classes",
            f"got {self.num_classes}; allowed: 2..{len(MOTIONS)} (the first N rows of the motion table)",
        )
        require(self.train_per_class >= 1, "train_per_class", f"got {self.train_per_class}; allowed: >= 1")
        for key in ("val_per_class", "test_per_class"):
            require(getattr(self, key) >= 0, key, f"got {getattr(self, key)}; allowed: >= 0")
        check_range(self.objects_per_video, "objects_per_video", 1, 8)
        check_range(self.object_size, "object_size", 0.02, 0.5)
        require(
            0.5 <= self.duration_sec <= 60, "duration_sec", f"got {self.duration_sec}; allowed: 0.5..60 seconds"
        )

    @property
    def num_frames(self) -> int:
        return round(self.duration_sec * self.video.fps)

    @property
    def classes(self) -> list[str]:
        return [m.name for m in MOTIONS[: self.num_classes]]


def _objects(rng: np.random.Generator, motion: Motion, params: KineticsParams, background: np.ndarray,
             t: np.ndarray) -> tuple[Track, ...]:
    """The clip's objects: each its own sprite, its own draw of the motion's rate or amplitude and phase, its place."""
    vp = params.video
    low, high = params.objects_per_video
    tracks = []
    for _ in range(int(rng.integers(low, high + 1))):
        sprite = random_sprite(rng, short_side=vp.short_side, background=background, size=params.object_size)
        instance = MotionInstance.draw(motion, rng, short_side=vp.short_side)
        tracks.append(Track(sprite, place(rng, sprite, instance.offsets(t, slow_rate=vp.slow_rate), vp.width,
                                          vp.height)))
    return tuple(tracks)


def plan(params: KineticsParams, root: Path) -> tuple[dict[str, list[KineticsClip]], list[RenderJob]]:
    """What :func:`generate_kinetics` writes: the clips per split and one render job per video under ``root``."""
    vp, n = params.video, params.num_frames
    t = (np.arange(n) - (n - 1) / 2) / vp.fps  # centred, so drifts and growth have symmetric per-frame marginals
    per_split = {"train": params.train_per_class, "val": params.val_per_class, "test": params.test_per_class}
    clips: dict[str, list[KineticsClip]] = {}
    jobs, seen = [], set()
    for s, split in enumerate(SPLITS):
        if per_split[split] == 0:
            continue
        clips[split] = []
        for c, motion in enumerate(MOTIONS[: params.num_classes]):
            for i in range(per_split[split]):
                rng = video_rng(params.seed, SALT, s, c, i)
                while (youtube_id := random_id(rng, 11)) in seen:
                    pass
                seen.add(youtube_id)
                start = int(rng.integers(0, 300))
                clip = KineticsClip(
                    motion.name if split != "test" else None,
                    youtube_id,
                    start,
                    start + math.ceil(params.duration_sec),
                    split,
                )
                background = random_background(rng, vp.height, vp.width)
                tracks = _objects(rng, motion, params, background, t)
                path = root / split / f"{clip_video_id(clip)}.mp4"
                jobs.append(RenderJob(path, background, tracks, n, vp.fps, vp.crf))
                clips[split].append(clip)
    if "test" in clips:
        clips["test"].sort(key=lambda clip: clip.youtube_id)  # class-major order would give the held-back labels away
    return clips, jobs


def generate_kinetics(root: str | os.PathLike[str], params: KineticsParams | None = None, *, workers: int = 1) -> Path:
    """Write the Kinetics-like dataset under ``root`` (atomically; a no-op when already built with ``params``)."""
    params = params or KineticsParams()

    def build(staging: Path) -> None:
        clips, jobs = plan(params, staging)
        for split, records in clips.items():
            write_kinetics_csv(records, staging / "annotations" / f"{split}.csv")
        render_all(jobs, workers=workers)

    build_dataset_dir(root, params, build)
    return Path(root)
