"""One interface over a dataset root in its OFFICIAL on-disk layout: the videos present and the annotations.

Every source has ``.video_paths() -> {video_id: Path}`` (the annotated videos whose files are present),
``.rejected_paths() -> {video_id: reason}`` (files refused because they resolve outside the root), ``.classes``, and
the annotation records of a split. Annotation files only ever contribute plain names (ids validated by the
parsers, no separators, no ``..``), and a video file is used only if its real path -- after following symbolic
links -- lies inside the dataset root; anything else is refused with a logged reason.

Layouts (what the official distributions and the reference preparation scripts produce):

* Kinetics-400/600/700, as mirrored by the CVDF (``k400_downloader.sh`` + ``k400_extractor.sh``)::

      <root>/annotations/{train,val,test}.csv
      <root>/{train,val,test}/<youtube_id>_<start:06d>_<end:06d>.mp4
      <root>/replacement/replacement_for_corrupted_k400/<clip>.mp4   (optional; replaces the split's file)

* Charades v1 (``Charades.zip`` annotations, ``Charades_v1_480.zip`` videos)::

      <root>/Charades_v1_train.csv, Charades_v1_test.csv, Charades_v1_classes.txt  (or <root>/Charades/..., as the
                                                                                  zip extracts them)
      <root>/Charades_v1_480/<id>.mp4

* AVA v2.x, as PySlowFast prepares it (``DATASET.md``: movies cut to the 15-minute segment starting at 900 s), or
  the full movies as the CVDF mirror serves them (``video_start_sec=0``: ``videos/`` instead of ``videos_15min/``)::

      <root>/ava_file_names_trainval_v2.1.txt
      <root>/videos_15min/<video_id>.{mkv,mp4,webm}     (or <root>/videos/<video_id>.{mkv,mp4,webm})
      <root>/annotations/ava_{train,val}_v2.2.csv, ava_{train,val}_excluded_timestamps_v2.2.csv,
                         ava_action_list_v2.2_for_activitynet_2019.pbtxt
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import pandas as pd

from slowfast.data.formats.ava import read_ava_csv, read_exclusions, read_label_map, read_movie_list
from slowfast.data.formats.charades import CharadesVideo, read_charades_classes, read_charades_csv
from slowfast.data.formats.kinetics import KineticsClip, clip_video_id, read_kinetics_csv

log = logging.getLogger(__name__)

__all__ = ["VIDEO_EXTENSIONS", "AvaSource", "CharadesSource", "KineticsSource", "scan_videos"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def _inside(root: Path, path: Path) -> bool:
    real = path.resolve()
    return real == root or root in real.parents


def scan_videos(root: Path, directory: Path, wanted: set[str] | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """Video files directly in ``directory`` by stem (restricted to ``wanted`` stems when given), and the ones
    refused because their real path leaves ``root`` (a symbolic link out), with the reason.

    One directory listing instead of a stat per annotated clip: Kinetics has 240k of them.
    """
    found: dict[str, Path] = {}
    rejected: dict[str, str] = {}
    if not directory.is_dir():
        return found, rejected
    if not _inside(root, directory):
        reason = f"{directory} resolves to {directory.resolve()}, outside the dataset root {root}"
        log.warning("refusing the directory %s", reason)
        return found, {str(directory): reason}
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() not in VIDEO_EXTENSIONS or (wanted is not None and stem not in wanted) or stem in found:
                continue
            path = directory / entry.name
            if not _inside(root, path):
                rejected[stem] = f"{path} resolves to {path.resolve()}, outside the dataset root {root}"
                log.warning("refusing %s: %s", stem, rejected[stem])
            elif path.is_file():
                found[stem] = path
    return found, rejected


class _Source:
    """Shared plumbing: a resolved root and the scan of the annotated videos."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root {self.root} is not a directory")

    def _video_dirs(self) -> list[tuple[Path, set[str] | None]]:
        raise NotImplementedError

    @functools.cached_property
    def _scan(self) -> tuple[dict[str, Path], dict[str, str]]:
        found: dict[str, Path] = {}
        rejected: dict[str, str] = {}
        for directory, wanted in self._video_dirs():
            f, r = scan_videos(self.root, directory, wanted)
            found.update(f)
            rejected.update(r)
        return found, rejected

    def video_paths(self) -> dict[str, Path]:
        """``{video_id: path}`` of every annotated video whose file is present (and inside the root)."""
        return dict(self._scan[0])

    def rejected_paths(self) -> dict[str, str]:
        """``{video_id: reason}`` of video files refused because they resolve outside the root."""
        return dict(self._scan[1])


class KineticsSource(_Source):
    """Kinetics in the CVDF layout (see the module docstring). Splits are the ``annotations/*.csv`` present;
    a clip's video id is :func:`~slowfast.data.formats.kinetics.clip_video_id`. Classes are the sorted labels of
    the train split (the order PySlowFast's and MMAction2's class-index files follow)."""

    def __init__(self, root: str | os.PathLike[str]):
        super().__init__(root)
        self.splits = tuple(sorted(p.stem for p in (self.root / "annotations").glob("*.csv")))
        if not self.splits:
            raise FileNotFoundError(f"{self.root / 'annotations'}: no <split>.csv annotation file")

    @functools.cache
    def clips(self, split: str) -> list[KineticsClip]:
        """The annotated clips of ``split`` (labels None in an unlabelled test split)."""
        if split not in self.splits:
            raise ValueError(f"split {split!r} not found in {self.root / 'annotations'}; available: {self.splits}")
        return read_kinetics_csv(self.root / "annotations" / f"{split}.csv")

    @functools.cached_property
    def classes(self) -> list[str]:
        labelled = ["train"] if "train" in self.splits else list(self.splits)
        return sorted({c.label for s in labelled for c in self.clips(s) if c.label is not None})

    def samples(self, split: str) -> list[tuple[str, int]]:
        """``(video_id, class index)`` of the labelled clips of ``split``; a label outside :attr:`classes` raises."""
        index = {name: i for i, name in enumerate(self.classes)}
        out = []
        for clip in self.clips(split):
            if clip.label is None:
                continue
            if clip.label not in index:
                raise ValueError(f"{split}: label {clip.label!r} of {clip_video_id(clip)} is not a train class")
            out.append((clip_video_id(clip), index[clip.label]))
        return out

    #: where the CVDF's ``replacement_for_corrupted_k400.tgz`` extracts: a clip found there replaces the split's file
    REPLACEMENT_DIR = "replacement/replacement_for_corrupted_k400"

    def _video_dirs(self) -> list[tuple[Path, set[str] | None]]:
        wanted = [(self.root / s, {clip_video_id(c) for c in self.clips(s)}) for s in self.splits]
        replacement = self.root / self.REPLACEMENT_DIR
        if replacement.is_dir():  # scanned last, so its files override the corrupted ones of the same clip
            wanted.append((replacement, set().union(*(ids for _, ids in wanted))))
        return wanted


class CharadesSource(_Source):
    """Charades v1 in its official layout (see the module docstring); splits ``train`` and ``test``."""

    SPLITS = ("train", "test")
    #: the folder the official ``Charades.zip`` extracts its annotation files into
    ZIP_FOLDER = "Charades"

    def _annotation(self, name: str) -> Path:
        """``<root>/<name>``, else ``<root>/Charades/<name>`` (where ``Charades.zip`` puts it)."""
        direct = self.root / name
        return direct if direct.is_file() or not (self.root / self.ZIP_FOLDER / name).is_file() else (
            self.root / self.ZIP_FOLDER / name)

    @functools.cache
    def videos(self, split: str) -> list[CharadesVideo]:
        if split not in self.SPLITS:
            raise ValueError(f"split {split!r}: allowed {', '.join(self.SPLITS)}")
        return read_charades_csv(self._annotation(f"Charades_v1_{split}.csv"))

    @functools.cached_property
    def classes(self) -> list[str]:
        return read_charades_classes(self._annotation("Charades_v1_classes.txt"))

    def _video_dirs(self) -> list[tuple[Path, set[str] | None]]:
        ids = {v.id for s in self.SPLITS if self._annotation(f"Charades_v1_{s}.csv").is_file() for v in self.videos(s)}
        return [(self.root / "Charades_v1_480", ids)]


class AvaSource(_Source):
    """AVA in PySlowFast's layout (see the module docstring).

    Movies are stored from ``video_start_sec`` on (900 for the 15-minute segments; 0 for full movies), so a
    keyframe with timestamp ``ts`` lies at :meth:`keyframe_time` = ``ts - video_start_sec`` seconds of the file.
    ``.boxes(split)`` is the ground truth as :func:`~slowfast.data.formats.ava.read_ava_csv` returns it (nothing
    dropped); ``.excluded(split)`` the keyframes the evaluation leaves out.
    """

    SPLITS = ("train", "val")
    LABEL_MAPS = {
        "v2.1": "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
        "v2.2": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
    }
    MOVIE_LIST = "ava_file_names_trainval_v2.1.txt"

    def __init__(self, root: str | os.PathLike[str], *, video_start_sec: int = 900, version: str = "v2.2"):
        super().__init__(root)
        if version not in self.LABEL_MAPS:
            raise ValueError(f"version {version!r}: allowed {', '.join(self.LABEL_MAPS)}")
        if video_start_sec < 0:
            raise ValueError(f"video_start_sec: got {video_start_sec}; allowed: >= 0")
        self.video_start_sec = video_start_sec
        self.version = version
        #: 15-minute segments (``video_start_sec`` > 0) are read from ``videos_15min/``, full movies as the CVDF
        #: mirror serves them (``video_start_sec`` = 0) from ``videos/``
        self.videos_dir = "videos_15min" if video_start_sec > 0 else "videos"

    def _annotation(self, name: str) -> Path:
        return self.root / "annotations" / name

    @functools.cached_property
    def label_map(self) -> dict[int, str]:
        """``{action_id: name}`` of the evaluated classes (ids are 1-based and may be sparse)."""
        return read_label_map(self._annotation(self.LABEL_MAPS[self.version]))

    @property
    def classes(self) -> list[str]:
        return list(self.label_map.values())

    def _check_split(self, split: str) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"split {split!r}: allowed {', '.join(self.SPLITS)}")

    @functools.cache
    def boxes(self, split: str) -> pd.DataFrame:
        self._check_split(split)
        return read_ava_csv(self._annotation(f"ava_{split}_{self.version}.csv"))

    @functools.cache
    def excluded(self, split: str) -> set[tuple[str, int]]:
        self._check_split(split)
        path = self._annotation(f"ava_{split}_excluded_timestamps_{self.version}.csv")
        return read_exclusions(path) if path.is_file() else set()

    def keyframe_time(self, timestamp: int) -> float:
        """Seconds into the stored video of the keyframe at movie second ``timestamp``."""
        return float(timestamp - self.video_start_sec)

    @functools.cached_property
    def movies(self) -> list[str]:
        """Video ids of the movie list (file names without extension); empty when the list is absent."""
        path = self.root / self.MOVIE_LIST
        return [os.path.splitext(name)[0] for name in read_movie_list(path)] if path.is_file() else []

    def _video_dirs(self) -> list[tuple[Path, set[str] | None]]:
        wanted = set(self.movies)
        for split in self.SPLITS:
            if self._annotation(f"ava_{split}_{self.version}.csv").is_file():
                wanted.update(self.boxes(split)["video_id"].astype(str))
        return [(self.root / self.videos_dir, wanted)]
