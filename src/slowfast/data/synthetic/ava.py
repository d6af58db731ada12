"""An AVA-like dataset: several moving actors per "movie", each with a box and multi-label actions per keyframe.

Every actor is an object whose timeline is cut into segments of a few seconds (boundaries at half seconds, so a
keyframe never sits on one). In each segment it holds exactly one *pose* action (standing still, swaying or bobbing
slowly/quickly -- the aliased pairs) and, sometimes, an *interaction* on top (spinning or rocking), as AVA pairs a
person-movement label with object/person interactions. At every keyframe (1 fps)
each visible actor gets its box (the bounding box of its visible pixels, normalised) and the labels of its segment.

Movies are stored as PySlowFast prepares AVA: the segment of the movie starting at second ``VIDEO_START_SEC`` = 900,
so a keyframe with timestamp ``ts`` is at ``ts - 900`` s of the file; keyframes run from 902 to
``900 + duration - 2`` (the official 902..1798 of a 15-minute segment, scaled down). Layout (see
:class:`slowfast.data.sources.AvaSource`)::

    <root>/ava_file_names_trainval_v2.1.txt                      "<video_id>.mp4" per line
    <root>/videos_15min/<video_id>.mp4
    <root>/annotations/ava_{train,val}_v2.2.csv                   video_id,ts,x1,y1,x2,y2,action_id,person_id
    <root>/annotations/ava_{train,val}_excluded_timestamps_v2.2.csv
    <root>/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from slowfast.config import require
from slowfast.data.formats.ava import GROUNDTRUTH_COLUMNS, write_ava_csv, write_label_map
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
from slowfast.data.synthetic.charades import held_offsets
from slowfast.data.synthetic.motions import AVA_ACTIONS, AVA_INTERACTIONS, AVA_POSES, MotionInstance
from slowfast.data.synthetic.render import Track, random_background, random_sprite, sprite_box
from slowfast.utils.io import write_text_atomic

SALT = 2017
SPLITS = ("train", "val")
VIDEO_START_SEC = 900
LABEL_MAP_NAME = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
MOVIE_LIST_NAME = "ava_file_names_trainval_v2.1.txt"

__all__ = ["AvaParams", "VIDEO_START_SEC", "generate_ava"]


@dataclass(frozen=True)
class AvaParams:
    """Size of the AVA-like dataset. Defaults: 8 train + 4 val movies of 14 s (keyframes 902..912), 2-3 actors."""

    train_videos: int = 8
    val_videos: int = 4
    duration_sec: int = 14
    actors_per_video: tuple[int, int] = (2, 3)
    segment_sec: tuple[int, int] = (2, 4)
    interaction_probability: float = 0.5
    excluded_per_split: int = 2
    seed: int = 0
    video: VideoParams = field(default_factory=VideoParams)

    def __post_init__(self) -> None:
        require(self.train_videos >= 1, "train_videos", f"got {self.train_videos}; allowed: >= 1")
        require(self.val_videos >= 0, "val_videos", f"got {self.val_videos}; allowed: >= 0")
        require(5 <= self.duration_sec <= 900, "duration_sec", f"got {self.duration_sec}; allowed: 5..900 s")
        check_range(self.actors_per_video, "actors_per_video", 1, 8)
        check_range(self.segment_sec, "segment_sec", 1)
        require(
            0.0 <= self.interaction_probability <= 1.0,
            "interaction_probability",
            f"got {self.interaction_probability}; allowed: 0..1",
        )
        require(self.excluded_per_split >= 0, "excluded_per_split", f"got {self.excluded_per_split}; allowed: >= 0")

    @property
    def num_frames(self) -> int:
        return self.duration_sec * self.video.fps

    @property
    def timestamps(self) -> range:
        """Keyframe timestamps (movie seconds) of every video."""
        return range(VIDEO_START_SEC + 2, VIDEO_START_SEC + self.duration_sec - 1)

    @property
    def label_map(self) -> dict[int, str]:
        return {i + 1: m.name for i, m in enumerate(AVA_ACTIONS)}


def _segments(rng: np.random.Generator, params: AvaParams) -> list[tuple[float, float]]:
    """Consecutive segments covering the video, boundaries at half seconds."""
    bounds, edge = [0.0], 0.5
    while True:
        edge += int(rng.integers(params.segment_sec[0], params.segment_sec[1] + 1))
        if edge >= params.duration_sec:
            break
        bounds.append(edge)
    return list(zip(bounds, bounds[1:] + [float(params.duration_sec)]))


def _actor(
    rng: np.random.Generator, params: AvaParams, background: np.ndarray, t: np.ndarray
) -> tuple[Track, list[tuple[float, float, list[int]]]]:
    """One actor: its track and, per segment, (start, end, action ids)."""
    vp = params.video
    sprite = random_sprite(rng, short_side=vp.short_side, background=background)
    instances, labels = [], []
    for start, end in _segments(rng, params):
        pose = int(rng.integers(len(AVA_POSES)))
        ids = [pose + 1]
        instances.append((MotionInstance.draw(AVA_POSES[pose], rng, short_side=vp.short_side), start, end))
        if rng.uniform() < params.interaction_probability:
            k = int(rng.integers(len(AVA_INTERACTIONS)))
            ids.append(len(AVA_POSES) + k + 1)
            instances.append((MotionInstance.draw(AVA_INTERACTIONS[k], rng, short_side=vp.short_side), start, end))
        labels.append((start, end, ids))
    offsets = held_offsets(instances, t, vp.slow_rate)
    return Track(sprite, place(rng, sprite, offsets, vp.width, vp.height)), labels


def plan(
    params: AvaParams, root: Path
) -> tuple[dict[str, list[tuple]], dict[str, list[tuple[str, int]]], list[RenderJob], list[str]]:
    """What :func:`generate_ava` writes: box rows and excluded keyframes per split, render jobs, video ids."""
    vp = params.video
    t = np.arange(params.num_frames) / vp.fps
    sizes = {"train": params.train_videos, "val": params.val_videos}
    rows: dict[str, list[tuple]] = {}
    excluded: dict[str, list[tuple[str, int]]] = {}
    jobs, seen = [], set()
    for s, split in enumerate(SPLITS):
        rows[split], keyframes = [], []
        for i in range(sizes[split]):
            rng = video_rng(params.seed, SALT, s, i)
            while (video_id := random_id(rng, 11)) in seen:
                pass
            seen.add(video_id)
            background = random_background(rng, vp.height, vp.width)
            num_actors = int(rng.integers(params.actors_per_video[0], params.actors_per_video[1] + 1))
            actors = [_actor(rng, params, background, t) for _ in range(num_actors)]
            for ts in params.timestamps:
                keyframes.append((video_id, ts))
                second = ts - VIDEO_START_SEC
                frame = min(round(second * vp.fps), params.num_frames - 1)
                for person_id, (track, labels) in enumerate(actors):
                    box = sprite_box(track, frame, vp.height, vp.width)
                    if box is None:
                        continue
                    ids = next(ids for start, end, ids in labels if start <= second < end)
                    rows[split].extend((video_id, ts, *box, action, person_id) for action in ids)
            jobs.append(RenderJob(root / "videos_15min" / f"{video_id}.mp4", background,
                                  tuple(track for track, _ in actors), params.num_frames, vp.fps, vp.crf))  # fmt: skip
        pick = video_rng(params.seed, SALT + 1, s)  # a stream of its own, apart from every video's
        count = min(params.excluded_per_split, len(keyframes))
        excluded[split] = sorted(keyframes[j] for j in pick.choice(len(keyframes), size=count, replace=False))
    return rows, excluded, jobs, sorted(seen)


def generate_ava(root: str | os.PathLike[str], params: AvaParams | None = None, *, workers: int = 1) -> Path:
    """Write the AVA-like dataset under ``root`` (atomically; a no-op when already built with ``params``)."""
    params = params or AvaParams()

    def build(staging: Path) -> None:
        rows, excluded, jobs, video_ids = plan(params, staging)
        annotations = staging / "annotations"
        for split in SPLITS:
            dropped = set(excluded[split])
            df = pd.DataFrame(
                [r for r in rows[split] if (r[0], r[1]) not in dropped], columns=list(GROUNDTRUTH_COLUMNS)
            ).sort_values(["video_id", "timestamp", "person_id", "action_id"], kind="stable")
            write_ava_csv(df, annotations / f"ava_{split}_v2.2.csv")
            write_text_atomic(
                annotations / f"ava_{split}_excluded_timestamps_v2.2.csv",
                "".join(f"{vid},{ts:04d}\n" for vid, ts in excluded[split]),
            )
        write_label_map(params.label_map, annotations / LABEL_MAP_NAME)
        write_text_atomic(staging / MOVIE_LIST_NAME, "".join(f"{vid}.mp4\n" for vid in video_ids))
        render_all(jobs, workers=workers)

    build_dataset_dir(root, params, build)
    return Path(root)

