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
      <root>/{train,val,test}/<label>/<clip>.mp4    (also read: per-class archives, copies arranged by class)
      <root>/replacement/replacement_for_corrupted_k400/<clip>.mp4   (optional; replaces the split's file)

* Charades v1 (``Charades.zip`` annotations, ``Charades_v1_480.zip`` videos)::

      <root>/Charades_v1_train.csv, Charades_v1_test.csv, Charades_v1_classes.txt  (or <root>/Charades/..., as the
                                                                                  zip extracts them)
      <root>/Charades_v1_480/<id>.mp4

* A user's own classification videos (:class:`CustomSource`, chosen by :class:`CustomDatasetConfig`): a folder of
  class folders, an MMAction2 video list or a PySlowFast CSV (README "Your own videos")::

      <root>/<class name>/<video>                        layout "folder" (UCF101, HMDB51)
      <root>/<list file> + <root>/<video_prefix>/<path>  layouts "mmaction" / "pyslowfast"

* AVA v2.x, as PySlowFast prepares it (``DATASET.md``: movies cut to the 15-minute segment starting at 900 s), or
  the full movies as the CVDF mirror serves them (``video_start_sec=0``: ``videos/`` instead of ``videos_15min/``)::

      <root>/ava_file_names_trainval_v2.1.txt
      <root>/videos_15min/<video_id>.{mkv,mp4,webm}     (or <root>/videos/<video_id>.{mkv,mp4,webm})
      <root>/annotations/ava_{train,val}_v2.2.csv, ava_{train,val}_excluded_timestamps_v2.2.csv,
                         ava_action_list_v2.2_for_activitynet_2019.pbtxt
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pandas as pd

from slowfast.config import require

from slowfast.data.formats.ava import read_ava_csv, read_exclusions, read_label_map, read_movie_list
from slowfast.data.formats.charades import CharadesVideo, read_charades_classes, read_charades_csv
from slowfast.data.formats.kinetics import KineticsClip, clip_video_id, read_kinetics_csv
from slowfast.data.formats.videolist import ListEntry, read_class_names, read_split_file, read_video_list

log = logging.getLogger(__name__)

__all__ = ["VIDEO_EXTENSIONS", "AvaFiles", "AvaSource", "CharadesSource", "CustomDatasetConfig", "CustomSource",
           "KineticsSource", "scan_videos"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
#: what a user's own dataset may hold: every container suffix the decoder is asked to open
CUSTOM_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".flv", ".3gp", ".ts",
                           ".wmv", ".ogv")


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


def _subdirectories(directory: Path) -> list[Path]:
    """The folders directly in ``directory``, by name (none when it is not a folder)."""
    if not directory.is_dir():
        return []
    with os.scandir(directory) as entries:
        return [directory / e.name for e in sorted(entries, key=lambda e: e.name) if e.is_dir()]


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
        wanted = []
        for split in self.splits:
            ids = {clip_video_id(c) for c in self.clips(split)}
            wanted.append((self.root / split, ids))
            # class folders (<split>/<label>/<clip>.mp4): Kinetics-600's per-class train archives, or a copy
            # arranged by class as MMAction2 and cvdfoundation's arrange_by_classes.py do
            wanted += [(d, ids) for d in _subdirectories(self.root / split)]
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


@dataclasses.dataclass(frozen=True)
class AvaFiles:
    """The files of an AVA-style dataset, relative to its root (``ava.files`` in params.yaml); a null name is the
    official AVA v2.x file (``annotations/ava_<split>_v2.2.csv``, ...). Exclusions are optional files."""

    label_map: str | None = None
    train: str | None = None
    val: str | None = None
    excluded_train: str | None = None
    excluded_val: str | None = None
    videos: str | None = None  # None: videos_15min/ for 15-minute segments, videos/ for full movies


class AvaSource(_Source):
    """AVA in PySlowFast's layout (see the module docstring).

    Movies are stored from ``video_start_sec`` on (900 for the 15-minute segments; 0 for full movies), so a
    keyframe with timestamp ``ts`` lies at :meth:`keyframe_time` = ``ts - video_start_sec`` seconds of the file.
    ``.boxes(split)`` is the ground truth as :func:`~slowfast.data.formats.ava.read_ava_csv` returns it (nothing
    dropped); ``.excluded(split)`` the keyframes the evaluation leaves out.

    A user's own AVA-style set names its files with ``files`` (:class:`AvaFiles`): its own label map (any number of
    classes, any ids), box CSVs, optional exclusions and video folder. Keyframes may be at any timestamps of
    videos of any length: a keyframe is at ``timestamp - video_start_sec`` seconds of its file (0 for videos
    stored whole), nothing assumes AVA's 902..1798.
    """

    SPLITS = ("train", "val")
    LABEL_MAPS = {
        "v2.1": "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
        "v2.2": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
    }
    MOVIE_LIST = "ava_file_names_trainval_v2.1.txt"

    def __init__(self, root: str | os.PathLike[str], *, video_start_sec: int = 900, version: str = "v2.2",
                 files: AvaFiles | None = None):
        super().__init__(root)
        self.files = files or AvaFiles()
        for key, name in dataclasses.asdict(self.files).items():
            if name is not None and not _inside(self.root, self.root / name):
                raise ValueError(f"files.{key}: {name!r} leaves the dataset root {self.root}")
        if version not in self.LABEL_MAPS:
            raise ValueError(f"version {version!r}: allowed {', '.join(self.LABEL_MAPS)}")
        if video_start_sec < 0:
            raise ValueError(f"video_start_sec: got {video_start_sec}; allowed: >= 0")
        self.video_start_sec = video_start_sec
        self.version = version
        #: 15-minute segments (``video_start_sec`` > 0) are read from ``videos_15min/``, full movies as the CVDF
        #: mirror serves them (``video_start_sec`` = 0) from ``videos/``
        self.videos_dir = self.files.videos or ("videos_15min" if video_start_sec > 0 else "videos")

    def _annotation(self, name: str) -> Path:
        return self.root / "annotations" / name

    def _boxes_file(self, split: str) -> Path:
        own = getattr(self.files, split)
        return self.root / own if own else self._annotation(f"ava_{split}_{self.version}.csv")

    def _exclusions_file(self, split: str) -> Path:
        own = getattr(self.files, f"excluded_{split}")
        return self.root / own if own else self._annotation(f"ava_{split}_excluded_timestamps_{self.version}.csv")

    @functools.cached_property
    def label_map(self) -> dict[int, str]:
        """``{action_id: name}`` of the evaluated classes (ids are 1-based and may be sparse)."""
        own = self.files.label_map
        return read_label_map(self.root / own if own else self._annotation(self.LABEL_MAPS[self.version]))

    @property
    def classes(self) -> list[str]:
        return list(self.label_map.values())

    def _check_split(self, split: str) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"split {split!r}: allowed {', '.join(self.SPLITS)}")

    @functools.cache
    def boxes(self, split: str) -> pd.DataFrame:
        self._check_split(split)
        return read_ava_csv(self._boxes_file(split))

    @functools.cache
    def excluded(self, split: str) -> set[tuple[str, int]]:
        self._check_split(split)
        path = self._exclusions_file(split)
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
            if self._boxes_file(split).is_file():
                wanted.update(self.boxes(split)["video_id"].astype(str))
        return [(self.root / self.videos_dir, wanted)]


# ------------------------------------------------------------------------------------------ users' own datasets
@dataclasses.dataclass(frozen=True)
class CustomDatasetConfig:
    """Where a user's own classification videos are and how they are split (``custom.dataset`` in params.yaml).

    ``layout``: ``folder`` (``root/<class>/<video>``), ``mmaction`` (``<path> <label index>`` lines) or
    ``pyslowfast`` (``<path> <label>`` lines). ``train_list`` / ``val_list`` / ``classes`` are files relative to
    ``root``: the list files of the list layouts (``train_list`` required), the optional split files of the folder
    layout (UCF101's ``trainlist01.txt``). Paths in list files are relative to ``root/video_prefix`` (MMAction2's
    ``data_prefix``, PySlowFast's ``PATH_PREFIX``). Without ``val_list`` the validation videos are a seeded
    per-class draw of ``val_fraction`` of the training ones.
    """

    layout: Literal["folder", "mmaction", "pyslowfast"] = "folder"
    root: str = "custom"
    video_prefix: str = ""
    train_list: str | None = None
    val_list: str | None = None
    classes: str | None = None
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.layout == "folder" or self.train_list is not None, "train_list",
                f"layout {self.layout!r} needs its list file (a path relative to root)")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", f"got {self.val_fraction}, allowed: 0 <= f < 1")
        require(self.layout != "folder" or self.classes is None, "classes",
                "the folder layout names its classes by their folders; leave classes null")


def _draw_val(by_class: dict[int, list[str]], fraction: float, seed: int) -> set[str]:
    """Per class, a seeded draw of ``round(fraction * n)`` videos (at least one, never all, when n >= 2)."""
    val: set[str] = set()
    for label, ids in sorted(by_class.items()):
        ids = sorted(ids)
        count = round(fraction * len(ids))
        if fraction > 0 and len(ids) >= 2:
            count = min(max(count, 1), len(ids) - 1)
        elif len(ids) < 2:
            count = 0
        val.update(random.Random(f"{seed}:{label}").sample(ids, count))
    return val


class CustomSource(_Source):
    """A user's own classification videos, read as :class:`CustomDatasetConfig` says (see the module docstring).

    The same interface as :class:`KineticsSource`: ``classes``, ``samples(split)`` for ``train`` and ``val``,
    ``video_paths()`` and ``rejected_paths()``; plus ``failures()``, the records ``{video_id, path, reason}`` of
    every entry that cannot be used -- missing files, empty class folders, unknown labels, duplicate paths (the same
    real file twice: the first listing wins), malformed lines, non-video files in class folders and paths whose
    real location leaves the root (a list file never reaches outside its dataset). Nothing is dropped silently.
    A video id is the video's path relative to ``root`` (POSIX separators; spaces and any Unicode kept).

    Class order: the folder layout sorts the non-empty class folders by name (codepoint order, as UCF101's
    ``classInd.txt`` and MMAction2's sorted folders); the list layouts number classes by the class-name file, or
    name them ``"0" .. "K-1"`` after the largest label index of the training list when there is none.
    """

    SPLITS = ("train", "val")

    def __init__(self, config: CustomDatasetConfig):
        super().__init__(config.root)
        self.config = config
        self._failures: list[dict[str, str]] = []
        self._paths: dict[str, Path] = {}
        self._records: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
        self._real: dict[Path, str] = {}  # real path -> where it was first listed (duplicates)
        if config.layout == "folder":
            self._classes = self._read_folders()
        else:
            self._classes = self._read_lists()
        for failure in self._failures:
            log.warning("%s: %s", failure["video_id"], failure["reason"])

    # -- the interface of the other sources
    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    def samples(self, split: str) -> list[tuple[str, int]]:
        """``(video_id, class index)`` of the usable videos of ``split`` (``train`` or ``val``)."""
        if split not in self.SPLITS:
            raise ValueError(f"split {split!r}: allowed {', '.join(self.SPLITS)}")
        return list(self._records[split])

    def video_paths(self) -> dict[str, Path]:
        return dict(self._paths)

    def rejected_paths(self) -> dict[str, str]:
        return {f["video_id"]: f["reason"] for f in self._failures if "outside the dataset root" in f["reason"]}

    def failures(self) -> list[dict[str, str]]:
        """Every entry that cannot be used, with the reason (``{video_id, path, reason}``)."""
        return [dict(f) for f in self._failures]

    # -- shared checks
    def _fail(self, video_id: str, path: Path | str, reason: str) -> None:
        self._failures.append({"video_id": video_id, "path": str(path), "reason": reason})

    def _video_id(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.as_posix()

    def _usable(self, path: Path, where: str) -> str | None:
        """The video id of ``path`` if it is a file inside the root not seen before; else a failure and None."""
        video_id = self._video_id(path)
        if not _inside(self.root, path):
            self._fail(video_id, path, f"{where}: {path} resolves to {path.resolve()}, outside the dataset root "
                                       f"{self.root}")
            return None
        if not path.exists():
            self._fail(video_id, path, f"{where}: missing file")
            return None
        if not path.is_file():
            self._fail(video_id, path, f"{where}: not a file")
            return None
        real = path.resolve()
        if real in self._real:
            self._fail(video_id, path, f"{where}: duplicate path, the same file as {self._real[real]}")
            return None
        self._real[real] = f"{video_id} ({where})" if where != video_id else video_id
        return video_id

    def _add(self, split: str, video_id: str, path: Path, label: int) -> None:
        self._paths[video_id] = path
        self._records[split].append((video_id, label))

    # -- layout "folder"
    def _class_videos(self, folder: Path) -> list[Path]:
        videos = []
        for directory, subdirs, files in os.walk(folder):  # symbolic links to folders are not followed
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(directory) / name
                if name.startswith("."):
                    continue  # .DS_Store, editors' swap files
                if path.suffix.lower() not in CUSTOM_VIDEO_EXTENSIONS:
                    self._fail(self._video_id(path), path, f"not a video file (suffix {path.suffix or 'none'!r})")
                    continue
                videos.append(path)
        return videos

    def _read_folders(self) -> list[str]:
        found: dict[str, list[str]] = {}
        listed = {self._listed_path(name) for name in (self.config.train_list, self.config.val_list) if name}
        for entry in sorted(self.root.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                if entry.suffix.lower() in CUSTOM_VIDEO_EXTENSIONS:
                    self._fail(entry.name, entry, "video outside any class folder (ROOT/<class>/<video>)")
                elif entry.resolve() not in listed:
                    log.info("ignoring %s: not a class folder", entry)
                continue
            if not _inside(self.root, entry):
                self._fail(entry.name + "/", entry, f"class folder {entry} resolves to {entry.resolve()}, outside "
                                                    f"the dataset root {self.root}")
                continue
            ids = [vid for path in self._class_videos(entry) if (vid := self._usable(path, self._video_id(path)))]
            if not ids:
                self._fail(entry.name + "/", entry, "empty class folder: no usable video file")
                continue
            found[entry.name] = ids
        classes = sorted(found)
        label_of = {vid: i for i, name in enumerate(classes) for vid in found[name]}
        train, val = self._folder_split(label_of)
        for split, ids in (("train", train), ("val", val)):
            for vid in sorted(ids):
                self._add(split, vid, self.root / vid, label_of[vid])
        return classes

    def _listed_path(self, name: str) -> Path:
        return (self.root / name).resolve()

    def _folder_split(self, label_of: dict[str, int]) -> tuple[set[str], set[str]]:
        cfg = self.config
        if cfg.train_list is None and cfg.val_list is None:
            by_class: dict[int, list[str]] = {}
            for vid, label in label_of.items():
                by_class.setdefault(label, []).append(vid)
            val = _draw_val(by_class, cfg.val_fraction, cfg.seed)
            return set(label_of) - val, val
        chosen: dict[str, set[str]] = {}
        taken: dict[str, str] = {}
        for split, name in (("train", cfg.train_list), ("val", cfg.val_list)):
            if name is None:
                continue
            chosen[split] = set()
            for entry in read_split_file(self._list_file(name)):
                path = Path(os.path.normpath(self.root / entry.path))
                vid = self._video_id(path)
                where = f"{name}:{entry.line}"
                if not _inside(self.root, path):
                    self._fail(vid, path, f"{where}: {path} resolves to {path.resolve()}, outside the dataset root "
                                          f"{self.root}")
                elif vid in taken:
                    self._fail(vid, path, f"{where}: duplicate path, already listed at {taken[vid]}")
                elif vid not in label_of:
                    reason = "missing file" if not path.exists() else "not a usable video of a class folder"
                    self._fail(vid, path, f"{where}: {reason}")
                else:
                    taken[vid] = where
                    chosen[split].add(vid)
        rest = set(label_of) - set(taken)
        if "train" not in chosen:
            chosen["train"] = rest
        elif "val" not in chosen:
            chosen["val"] = rest
        elif rest:
            log.info("%d videos are in neither split file", len(rest))
        return chosen["train"], chosen["val"]

    # -- layouts "mmaction" and "pyslowfast"
    def _list_file(self, name: str) -> Path:
        path = self.root / name
        if not _inside(self.root, path):
            raise ValueError(f"{name}: the list file resolves to {path.resolve()}, outside the dataset root {self.root}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: list file not found (paths are relative to the dataset root)")
        return path

    def _read_lists(self) -> list[str]:
        cfg = self.config
        names = read_class_names(self._list_file(cfg.classes)) if cfg.classes else None
        lists = {"train": read_video_list(self._list_file(cfg.train_list))}  # type: ignore[arg-type]
        if cfg.val_list:
            lists["val"] = read_video_list(self._list_file(cfg.val_list))
        if names is None:
            indices = [int(e.label) for e in lists["train"] if e.label is not None and e.label.isdigit()]
            if not indices:
                raise ValueError(f"{cfg.train_list}: no integer label, and no class-name file (classes) is given")
            names = [str(i) for i in range(max(indices) + 1)]
        index = {name: i for i, name in enumerate(names)}
        base = self.root / cfg.video_prefix
        kept: dict[str, list[tuple[str, Path, int]]] = {}
        for split, entries in lists.items():
            kept[split] = []
            for entry in entries:
                path = Path(os.path.normpath(base / entry.path))  # an absolute entry path stays itself
                label = self._label(entry, self._video_id(path), split, names, index)
                if label is None:
                    continue
                vid = self._usable(path, f"{self._list_name(split)}:{entry.line}")
                if vid is not None:
                    kept[split].append((vid, path, label))
        if "val" not in kept:
            by_class: dict[int, list[str]] = {}
            for vid, _, label in kept["train"]:
                by_class.setdefault(label, []).append(vid)
            val = _draw_val(by_class, cfg.val_fraction, cfg.seed)
            kept["val"] = [k for k in kept["train"] if k[0] in val]
            kept["train"] = [k for k in kept["train"] if k[0] not in val]
        for split in self.SPLITS:
            for vid, path, label in sorted(kept[split]):
                self._add(split, vid, path, label)
        return names

    def _list_name(self, split: str) -> str:
        return (self.config.train_list if split == "train" else self.config.val_list) or split

    def _label(self, entry: ListEntry, video_id: str, split: str, names: list[str], index: dict[str, int]
               ) -> int | None:
        where = f"{self._list_name(split)}:{entry.line}"
        if entry.label is None:
            self._fail(video_id, entry.path, f"{where}: {entry.problem}")
            return None
        if entry.label.lstrip("-").isdigit():
            value = int(entry.label)
            if 0 <= value < len(names):
                return value
        elif entry.label in index:
            return index[entry.label]
        self._fail(video_id, entry.path, f"{where}: unknown label {entry.label!r} (classes: 0..{len(names) - 1}"
                                           f"{' or their names' if self.config.classes else ''})")
        return None


def usable_summary(failures: Iterable[dict[str, str]], limit: int = 3) -> str:
    """A one-line digest of failure records for an error message."""
    failures = list(failures)
    shown = "; ".join(f"{f['video_id']}: {f['reason']}" for f in failures[:limit])
    return f"{len(failures)} failure records ({shown}{'; ...' if len(failures) > limit else ''})"
