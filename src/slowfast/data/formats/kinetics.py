"""The Kinetics-400/600/700 annotation CSV (as distributed by DeepMind and mirrored by the CVDF).

One clip per line, header first::

    label,youtube_id,time_start,time_end,split[,is_cc]
    abseiling,--07WQ2iBlw,1,11,train

``time_start``/``time_end`` are whole seconds into the YouTube video; a downloaded clip is stored as
``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4`` (:func:`clip_video_id`). The test split holds the labels
back: its file either has no ``label`` column or leaves it empty; both read as ``label=None``. Kinetics-400's
original files carry an extra ``is_cc`` column, which is accepted and ignored.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from slowfast.utils.io import write_text_atomic

__all__ = ["KineticsClip", "clip_video_id", "read_kinetics_csv", "write_kinetics_csv"]

#: YouTube ids are 11 characters of [A-Za-z0-9_-]; any length is accepted, but never a path separator or a dot,
#: because the id becomes a file name under the dataset root.
_ID = re.compile(r"[A-Za-z0-9_-]+")
_REQUIRED = ("youtube_id", "time_start", "time_end", "split")
_OPTIONAL = ("label", "is_cc")


@dataclass(frozen=True)
class KineticsClip:
    """One annotated 10-second (or shorter) segment of a YouTube video; ``label`` is None in the test split."""

    label: str | None
    youtube_id: str
    time_start: int
    time_end: int
    split: str


def clip_video_id(clip: KineticsClip) -> str:
    """The clip's file stem as written by the official downloaders: ``<youtube_id>_<start:06d>_<end:06d>``."""
    return f"{clip.youtube_id}_{clip.time_start:06d}_{clip.time_end:06d}"


def _int_field(value: str, name: str, where: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where}: {name} must be a whole number of seconds, got {value!r}") from None
    if not number.is_integer() or number < 0:
        raise ValueError(f"{where}: {name} must be a whole number of seconds >= 0, got {value!r}")
    return int(number)


def read_kinetics_csv(path: str | os.PathLike[str]) -> list[KineticsClip]:
    """Parse a Kinetics annotation CSV; a malformed line raises ``ValueError("<file>:<line>: <reason>")``."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: line 1: empty file, expected the header {','.join(('label',) + _REQUIRED)}")
        header = [h.strip() for h in header]
        missing = [c for c in _REQUIRED if c not in header]
        unknown = [c for c in header if c not in _REQUIRED + _OPTIONAL]
        if missing or unknown:
            raise ValueError(
                f"{path}: line 1: bad header {header}: missing {missing}, unknown {unknown}; "
                f"expected label,youtube_id,time_start,time_end,split (label optional, is_cc allowed)"
            )
        col = {name: i for i, name in enumerate(header)}
        clips = []
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
            youtube_id = row[col["youtube_id"]].strip()
            if not _ID.fullmatch(youtube_id):
                raise ValueError(f"{where}: youtube_id must match [A-Za-z0-9_-]+, got {youtube_id!r}")
            start = _int_field(row[col["time_start"]].strip(), "time_start", where)
            end = _int_field(row[col["time_end"]].strip(), "time_end", where)
            if end <= start:
                raise ValueError(f"{where}: time_end ({end}) must be greater than time_start ({start})")
            split = row[col["split"]].strip()
            if not split:
                raise ValueError(f"{where}: split is empty")
            label = row[col["label"]].strip() if "label" in col else ""
            clips.append(KineticsClip(label or None, youtube_id, start, end, split))
    return clips


def write_kinetics_csv(clips: Iterable[KineticsClip], path: str | os.PathLike[str]) -> None:
    """Write clips in the official column order (empty label for unlabelled clips), atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("label",) + _REQUIRED)
    for c in clips:
        writer.writerow((c.label or "", c.youtube_id, c.time_start, c.time_end, c.split))
    write_text_atomic(path, buf.getvalue())
