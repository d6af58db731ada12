"""Clip datasets over frame shards: Kinetics (single label), Charades (multi-label), AVA (boxes per keyframe).

Every dataset takes a :class:`~slowfast.data.shards.FrameShards`, its records, a
:class:`~slowfast.data.sampling.SamplingConfig`, a :class:`~slowfast.data.transforms.TransformConfig` and ``pack``:
a callable from one clip ``(C, αT, H, W)`` to the list of pathway tensors, each made of frames of the clip (the engine
passes ``functools.partial(slowfast.models.pack_pathways, config=model.config)``).

Clips are uint8, values 0..255 (:func:`~slowfast.data.transforms.apply_view`): the engine moves a batch to its device
and calls the dataset's ``normalize`` there (mean 0.45 / std 0.225 of the ``TransformConfig``), so the loader and
the DataLoader's inter-process queues carry a quarter of the bytes of floats. Batch items with the dataset's
``collate`` (it keeps the clips' memory order, see :func:`~slowfast.data.transforms.stack_clips`).

Items (paper §4); every item also has ``"frames"``, the Fast pathway's frame indices (int64 ``(αT,)``, or
``(clips, αT)`` for a testing item):

* training: ``{"inputs": [slow (C,T,H,W), fast (C,αT,H,W)] uint8, "label", "video_id", "index"}`` from one random clip
  with a random view (:mod:`~slowfast.data.sampling`, :mod:`~slowfast.data.transforms`);
* testing: every view of the video together, ``test_clips × test_crops`` (clip-major), each input ``(V, C, T, H, W)``;
* AVA: ``{"inputs", "boxes" (B, 4) pixels of the input, "labels" (B, K) multi-hot, "video_id", "timestamp",
  "index"}``; batch them with :func:`ava_collate`.

Kinetics labels are int64 class indices; Charades labels are multi-hot float over the actions overlapping the sampled
window (training) or the whole video (testing). Records whose video is not in the shards are dropped with a warning
(failed downloads or decodes), so indices refer to the kept records.

Randomness is a pure function of (seed, epoch, index) (:func:`~slowfast.data.sampling.generator_for`): call
``set_epoch`` before each epoch and a resumed run, with or without DataLoader workers, sees the same clips.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from slowfast.data.sampling import (
    SamplingConfig,
    centered_indices,
    clip_indices,
    frame_of_time,
    generator_for,
    random_start,
    stored_indices,
    uniform_starts,
)
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import (TransformConfig, View, apply_view, crop_views, full_view, normalize,
                                      random_view, stack_clips, view_boxes)

log = logging.getLogger(__name__)

Pack = Callable[[torch.Tensor], list[torch.Tensor]]


def clip_pathways(frames: np.ndarray, views: Sequence[View], pack: Pack) -> list[list[torch.Tensor]]:
    """The pathways of each view of uint8 ``(T, H, W, 3)`` frames (:func:`~slowfast.data.transforms.apply_view`,
    then ``pack``).

    ``pack`` only chooses frames, so it is applied to the frame numbers and the chosen frames are then copied whole
    from each view's ``T, H, W, 3`` memory (``index_select`` on the clip itself would gather byte by byte across
    that layout, ~30× slower); a pathway with every frame is the clip itself.
    """
    numbers = torch.arange(len(frames))
    chosen = [k.reshape(-1) for k in pack(numbers.view(1, -1, 1, 1))]
    pathways = []
    for view in views:
        clip = apply_view(frames, view)
        by_frame = clip.permute(1, 2, 3, 0)  # (T, H, W, 3), contiguous
        pathways.append([clip if torch.equal(k, numbers) else by_frame.index_select(0, k).permute(3, 0, 1, 2)
                         for k in chosen])
    return pathways


class _ClipDataset(Dataset):
    def __init__(self, shards: FrameShards, *, sampling: SamplingConfig, transform: TransformConfig, pack: Pack,
                 train: bool, seed: int):
        self.shards, self.sampling, self.transform, self.pack = shards, sampling, transform, pack
        self.train, self.seed, self.epoch = train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def normalize(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips of this dataset (a batched pathway, on any device) -> the model's normalised floats."""
        return normalize(clips, self.transform)

    @staticmethod
    def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``default_collate``, with the clips stacked by :func:`~slowfast.data.transforms.stack_clips`."""
        rest = default_collate([{k: v for k, v in item.items() if k != "inputs"} for item in batch])
        return {"inputs": [stack_clips(p) for p in zip(*(item["inputs"] for item in batch))], **rest}

    #: distinct listed videos that are not in the shards (failed to download or decode); set by ``_present``
    missing_videos: int = 0
    listed_videos: int = 0

    def _present(self, video_ids: Sequence[str]) -> list[int]:
        keep = [i for i, vid in enumerate(video_ids) if vid in self.shards]
        self.listed_videos = len(set(video_ids))
        self.missing_videos = len({vid for vid in video_ids if vid not in self.shards})
        if len(keep) < len(video_ids):
            log.warning("%d of %d records dropped: video not in %s", len(video_ids) - len(keep), len(video_ids),
                        self.shards.root)
        return keep

    def _views(self, frames: np.ndarray, views: Sequence[View]) -> list[list[torch.Tensor]]:
        return clip_pathways(frames, views, self.pack)

    def _view_pathways(self, video_id: str, idx: np.ndarray, view: View) -> list[torch.Tensor]:
        """The pathways of one view, reading only the pixels under it (the same pixels, about half the decoding)."""
        frames = self.shards.read(video_id, idx, box=(view.x0, view.y0, view.x0 + view.w, view.y0 + view.h))
        return self._views(frames, [dataclasses.replace(view, x0=0, y0=0)])[0]

    def _clip(self, video_id: str, index: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Inputs of a training item (one clip) or a testing item (all views stacked), and the frame indices used."""
        info = self.shards.info(video_id)
        if self.train:
            gen = generator_for(self.seed, self.epoch, index)
            idx = clip_indices(random_start(info.num_frames, self.sampling, info.fps, gen), info.num_frames,
                               self.sampling, info.fps)
            idx = stored_indices(idx, info.keep_every, self.sampling, info.fps)
            view = random_view(info.height, info.width, self.transform, gen)
            return self._view_pathways(video_id, idx, view), torch.from_numpy(idx)
        clips, used = [], []
        for start in uniform_starts(info.num_frames, self.sampling, info.fps):
            idx = stored_indices(clip_indices(start, info.num_frames, self.sampling, info.fps), info.keep_every,
                                 self.sampling, info.fps)
            clips += self._views(self.shards.read(video_id, idx), crop_views(info.height, info.width,
                                                                             self.transform))
            used.append(idx)
        return [stack_clips(pathway) for pathway in zip(*clips)], torch.from_numpy(np.stack(used))


class KineticsDataset(_ClipDataset):
    """Single-label clips; ``records`` are ``(video_id, class index)`` pairs."""

    def __init__(self, shards: FrameShards, records: Sequence[tuple[str, int]], *, sampling: SamplingConfig,
                 transform: TransformConfig, pack: Pack, train: bool, seed: int = 0):
        super().__init__(shards, sampling=sampling, transform=transform, pack=pack, train=train, seed=seed)
        self.records = [records[i] for i in self._present([vid for vid, _ in records])]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_id, label = self.records[index]
        inputs, used = self._clip(video_id, index)
        return {"inputs": inputs, "label": torch.tensor(label, dtype=torch.int64), "video_id": video_id,
                "index": index, "frames": used}


class CharadesDataset(_ClipDataset):
    """Multi-label clips; ``videos`` have ``.id`` and ``.actions`` of ``(cls, start, end)`` in seconds."""

    def __init__(self, shards: FrameShards, videos: Sequence[Any], *, num_classes: int, sampling: SamplingConfig,
                 transform: TransformConfig, pack: Pack, train: bool, seed: int = 0):
        super().__init__(shards, sampling=sampling, transform=transform, pack=pack, train=train, seed=seed)
        if num_classes < 1:
            raise ValueError(f"num_classes: got {num_classes}, allowed: >= 1")
        self.num_classes = num_classes
        self.videos = [videos[i] for i in self._present([v.id for v in videos])]

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, Any]:
        video = self.videos[index]
        inputs, used = self._clip(video.id, index)
        fps = self.shards.info(video.id).fps
        label = torch.zeros(self.num_classes, dtype=torch.float32)
        for action in video.actions:
            if not 0 <= action.cls < self.num_classes:
                raise ValueError(f"video {video.id!r}: action class {action.cls} outside 0..{self.num_classes - 1}")
            if not self.train:
                label[action.cls] = 1.0
                continue
            start, end = int(used[0]) / fps, (int(used[-1]) + 1) / fps  # the clip's frames cover [start, end)
            if action.start < end and action.end > start:
                label[action.cls] = 1.0
        return {"inputs": inputs, "label": label, "video_id": video.id, "index": index, "frames": used}


class AvaDataset(_ClipDataset):
    """One item per keyframe with ground-truth boxes; clip centred on it (paper §5, AVA).

    ``boxes`` is the ground-truth DataFrame of :func:`slowfast.data.formats.ava.read_ava_csv` (``video_id``,
    ``timestamp``, ``x1..y2`` normalised, ``action_id``, ``person_id``); ``class_ids`` are the label map's ids, in
    the order of the label columns. Boxes are unique per (keyframe, person) — or per coordinates without a person
    id — with the multi-hot of their actions; actions outside ``class_ids`` are ignored and boxes left without any
    are dropped. Training: random view (boxes follow scale, crop and flip). Testing: the whole frame, short side
    ``transform.test_size``. The keyframe at ``timestamp`` is frame ``(timestamp - video_start_sec) * fps``.
    """

    # The engine batches items with this (a variable number of boxes per clip).
    collate = staticmethod(lambda batch: ava_collate(batch))

    def __init__(self, shards: FrameShards, boxes: pd.DataFrame, *, class_ids: Sequence[int],
                 sampling: SamplingConfig, transform: TransformConfig, pack: Pack, train: bool, seed: int = 0,
                 video_start_sec: int = 900):
        super().__init__(shards, sampling=sampling, transform=transform, pack=pack, train=train, seed=seed)
        column = {cid: i for i, cid in enumerate(class_ids)}
        if len(column) != len(class_ids) or not column:
            raise ValueError(f"class_ids: got {list(class_ids)[:5]}..., allowed: a non-empty list of distinct ids")
        self.num_classes, self.video_start_sec = len(column), video_start_sec
        df = boxes[boxes["action_id"].isin(list(column))]
        key = ["video_id", "timestamp", "person_id"] if "person_id" in df else ["video_id", "timestamp"]
        key += ["x1", "y1", "x2", "y2"]
        self.keyframes: list[tuple[str, int, np.ndarray, np.ndarray]] = []
        for (vid, ts), frame in df.groupby(["video_id", "timestamp"], sort=True):
            people = frame.groupby(key[2:], sort=True)
            coords = np.stack([g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)[0] for _, g in people])
            labels = np.zeros((len(coords), self.num_classes), np.float32)
            for row, (_, g) in enumerate(people):
                labels[row, [column[a] for a in g["action_id"]]] = 1.0
            self.keyframes.append((str(vid), int(ts), coords, labels))
        keep = self._present([k[0] for k in self.keyframes])
        self.keyframes = [self.keyframes[i] for i in keep]

    def __len__(self) -> int:
        return len(self.keyframes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_id, timestamp, coords, labels = self.keyframes[index]
        info = self.shards.info(video_id)
        center = frame_of_time(timestamp - self.video_start_sec, info.fps)
        idx = stored_indices(centered_indices(center, info.num_frames, self.sampling, info.fps), info.keep_every,
                             self.sampling, info.fps)
        if self.train:
            view = random_view(info.height, info.width, self.transform,
                               generator_for(self.seed, self.epoch, index))
        else:
            view = full_view(info.height, info.width, self.transform.test_size)
        inputs = self._view_pathways(video_id, idx, view)
        return {"inputs": inputs, "boxes": torch.from_numpy(view_boxes(coords, info.height, info.width, view)),
                "labels": torch.from_numpy(labels), "video_id": video_id, "timestamp": timestamp, "index": index,
                "frames": torch.from_numpy(idx)}


def ava_collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack AVA items: inputs per pathway ``(N, ...)``; ``boxes`` ``(ΣB, 5)`` as (item index, x1, y1, x2, y2) —
    the RoIAlign layout; ``labels`` ``(ΣB, K)``; ``video_id``/``timestamp``/``index`` as lists."""
    inputs = [stack_clips(p) for p in zip(*(item["inputs"] for item in batch))]
    boxes = torch.cat([torch.cat([torch.full((len(item["boxes"]), 1), float(i)), item["boxes"]], dim=1)
                       for i, item in enumerate(batch)])
    return {"inputs": inputs, "boxes": boxes, "labels": torch.cat([item["labels"] for item in batch]),
            "video_id": [item["video_id"] for item in batch], "timestamp": [item["timestamp"] for item in batch],
            "index": [item["index"] for item in batch], "frames": torch.stack([item["frames"] for item in batch])}
