"""A Charades-like dataset: longer videos in which several objects each perform time-stamped motion actions.

Each video holds 2-3 objects (by default); each object performs 1-2 actions (motion classes) in disjoint
intervals and rests otherwise, keeping the pose an action left it in. Actions of different objects overlap in time,
so labels are multi-label and temporal, as in Charades. Written in the official layout (see
:class:`slowfast.data.sources.CharadesSource`)::

    <root>/Charades_v1_train.csv, Charades_v1_test.csv   the official 11 columns; actions "c003 1.20 4.70;..."
    <root>/Charades_v1_classes.txt                       "c000 swaying slowly", one line per generated class
    <root>/Charades_v1_480/<id>.mp4
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slowfast.config import require
from slowfast.data.formats.charades import (
    CharadesAction,
    CharadesVideo,
    write_charades_classes,
    write_charades_csv,
)
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
from slowfast.data.synthetic.motions import MOTIONS, MotionInstance
from slowfast.data.synthetic.render import Track, random_background, random_sprite

SALT = 157
SPLITS = ("train", "test")


@dataclass(frozen=True)
class CharadesParams:
    """Size of the Charades-like dataset. Defaults: 10 classes, 40 train + 16 test videos of 10 s."""

    num_classes: int = len(MOTIONS)
    train_videos: int = 40
    test_videos: int = 16
    duration_sec: float = 10.0
    objects_per_video: tuple[int, int] = (2, 3)
    object_size: tuple[float, float] = (0.2, 0.3)  # half-length, fraction of the short side
    actions_per_object: tuple[int, int] = (1, 2)
    action_sec: tuple[float, float] = (2.0, 4.0)
    seed: int = 0
    video: VideoParams = field(default_factory=VideoParams)

    def __post_init__(self) -> None:
        require(
            2 <= self.num_classes <= len(MOTIONS),
            "num_classes",
            f"got {self.num_classes}; allowed: 2..{len(MOTIONS)} (the first N rows of the motion table)",
        )
        require(self.train_videos >= 1, "train_videos", f"got {self.train_videos}; allowed: >= 1")
        require(self.test_videos >= 0, "test_videos", f"got {self.test_videos}; allowed: >= 0")
        require(1 <= self.duration_sec <= 120, "duration_sec", f"got {self.duration_sec}; allowed: 1..120 seconds")
        check_range(self.objects_per_video, "objects_per_video", 1, 8)
        check_range(self.object_size, "object_size", 0.02, 0.5)
        check_range(self.actions_per_object, "actions_per_object", 0, 8)
        check_range(self.action_sec, "action_sec", 0.2)
        require(
            self.action_sec[0] * self.actions_per_object[1] <= self.duration_sec,
            "action_sec",
            f"got {list(self.action_sec)}; {self.actions_per_object[1]} actions of at least {self.action_sec[0]} s "
            f"must fit in duration_sec={self.duration_sec}",
        )

    @property
    def num_frames(self) -> int:
        return round(self.duration_sec * self.video.fps)

    @property
    def classes(self) -> list[str]:
        return [m.name for m in MOTIONS[: self.num_classes]]


def held_offsets(instances: list[tuple[MotionInstance, float, float]], t: np.ndarray, slow_rate: float) -> np.ndarray:
    """Offsets of an object that performs each ``(motion, start, end)`` in turn and rests in between, keeping the
    pose an action ends in (continuous: an action starts from the pose the object is in)."""
    total = np.zeros((t.size, 4))
    for instance, start, end in instances:
        local = np.clip(t, start, end) - start
        total += instance.offsets(local, slow_rate=slow_rate) - instance.offsets(np.zeros(1), slow_rate=slow_rate)
    return total


def _intervals(rng: np.random.Generator, count: int, params: CharadesParams) -> list[tuple[float, float]]:
    """``count`` disjoint intervals (0.1 s resolution, as the annotations round), one per equal slot of the video."""
    slot = params.duration_sec / max(count, 1)
    out = []
    for k in range(count):
        length = min(rng.uniform(*params.action_sec), slot)
        start = k * slot + rng.uniform(0.0, slot - length)
        start, end = round(start, 1), round(min(start + length, params.duration_sec), 1)
        out.append((start, max(end, start + 0.1)))
    return out


def plan(params: CharadesParams, root: Path) -> tuple[dict[str, list[CharadesVideo]], list[RenderJob]]:
    """What :func:`generate_charades` writes: the videos' records per split and one render job per video."""
    vp, n = params.video, params.num_frames
    t = np.arange(n) / vp.fps
    sizes = {"train": params.train_videos, "test": params.test_videos}
    videos: dict[str, list[CharadesVideo]] = {}
    jobs, seen = [], set()
    for s, split in enumerate(SPLITS):
        videos[split] = []
        for i in range(sizes[split]):
            rng = video_rng(params.seed, SALT, s, i)
            while (video_id := random_id(rng, 5, string.ascii_uppercase + string.digits)) in seen:
                pass
            seen.add(video_id)
            background = random_background(rng, vp.height, vp.width)
            tracks, actions, shapes = [], [], []
            for _ in range(int(rng.integers(params.objects_per_video[0], params.objects_per_video[1] + 1))):
                sprite = random_sprite(rng, short_side=vp.short_side, background=background, size=params.object_size)
                count = int(rng.integers(params.actions_per_object[0], params.actions_per_object[1] + 1))
                instances = []
                for start, end in _intervals(rng, count, params):
                    cls = int(rng.integers(params.num_classes))
                    instances.append((MotionInstance.draw(MOTIONS[cls], rng, short_side=vp.short_side), start, end))
                    actions.append(CharadesAction(cls, start, end))
                offsets = held_offsets(instances, t, vp.slow_rate)
                tracks.append(Track(sprite, place(rng, sprite, offsets, vp.width, vp.height)))
                shapes.append(sprite.shape)
            actions.sort(key=lambda a: (a.start, a.cls))
            videos[split].append(
                CharadesVideo(
                    id=video_id,
                    actions=tuple(actions),
                    length=params.duration_sec,
                    subject=f"S{int(rng.integers(100)):02d}",
                    scene="Synthetic",
                    quality="7",
                    relevance="7",
                    verified="Yes",
                    script=f"{len(tracks)} objects move.",
                    objects=";".join(sorted(set(shapes))),
                    descriptions=";".join(f"A {shape} moves." for shape in shapes),
                )
            )
            jobs.append(RenderJob(root / "Charades_v1_480" / f"{video_id}.mp4", background, tuple(tracks), n,
                                  vp.fps, vp.crf))  # fmt: skip
    return videos, jobs


def generate_charades(
    root: str | os.PathLike[str], params: CharadesParams | None = None, *, workers: int = 1
) -> Path:
    """Write the Charades-like dataset under ``root`` (atomically; a no-op when already built with ``params``)."""
    params = params or CharadesParams()

    def build(staging: Path) -> None:
        videos, jobs = plan(params, staging)
        for split, records in videos.items():
            write_charades_csv(records, staging / f"Charades_v1_{split}.csv")
        write_charades_classes(params.classes, staging / "Charades_v1_classes.txt")
        render_all(jobs, workers=workers)

    build_dataset_dir(root, params, build)
    return Path(root)
