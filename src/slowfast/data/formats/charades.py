"""Charades v1 annotation files (Sigurdsson et al., 2016), as distributed in ``Charades.zip``.

``Charades_v1_train.csv`` / ``Charades_v1_test.csv``, one video per line::

    id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
    46GP8,HR43,Kitchen,6,7,Yes,"A person cooking ...",food;stove,"A person ...",c092 11.90 21.20;c147 0.00 12.60,24.83

``actions`` is a ``;``-separated list of ``c<class:03d> <start_s> <end_s>`` (possibly empty: videos without any
of the 157 actions exist); ``length`` is the video duration in seconds. ``Charades_v1_classes.txt`` has one class per
line, ``c000 Holding some clothes``, ids consecutive from c000. The free-text columns are kept verbatim so a file
reads and writes back unchanged.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from slowfast.utils.io import write_text_atomic

__all__ = [
    "CharadesAction",
    "CharadesVideo",
    "read_charades_classes",
    "read_charades_csv",
    "write_charades_classes",
    "write_charades_csv",
]

COLUMNS = (
    "id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions", "actions",
    "length",
)  # fmt: skip
_ID = re.compile(r"[A-Za-z0-9_-]+")
_CLASS = re.compile(r"c(\d{3})")


@dataclass(frozen=True)
class CharadesAction:
    """One time-stamped action instance: class index (``c092`` -> 92) and its [start, end] in seconds."""

    cls: int
    start: float
    end: float


@dataclass(frozen=True)
class CharadesVideo:
    """One row of a Charades CSV. ``length`` is None when the column is empty."""

    id: str
    actions: tuple[CharadesAction, ...]
    length: float | None
    subject: str = ""
    scene: str = ""
    quality: str = ""
    relevance: str = ""
    verified: str = ""
    script: str = ""
    objects: str = ""
    descriptions: str = ""


def _number(text: str, name: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {text!r}")
    return value


def _parse_actions(text: str, where: str) -> tuple[CharadesAction, ...]:
    actions = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        fields = item.split()
        match = _CLASS.fullmatch(fields[0]) if len(fields) == 3 else None
        if match is None:
            raise ValueError(f"{where}: action {item!r} is not 'c<3 digits> <start> <end>'")
        actions.append(
            CharadesAction(int(match[1]), _number(fields[1], "start", where), _number(fields[2], "end", where))
        )
    return tuple(actions)


def read_charades_csv(path: str | os.PathLike[str]) -> list[CharadesVideo]:
    """Parse ``Charades_v1_{train,test}.csv``; a malformed line raises ``ValueError("<file>:<line>: <reason>")``.

    Action times are kept as written (no ordering check between start and end, so that no real file is
    rejected for an annotator's slip); consumers decide how to treat a reversed interval.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path}: line 1: bad header {header}, expected {','.join(COLUMNS)}")
        videos = []
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise ValueError(f"{where}: expected {len(COLUMNS)} fields, got {len(row)}")
            rec = dict(zip(COLUMNS, row))
            if not _ID.fullmatch(rec["id"]):
                raise ValueError(f"{where}: id must match [A-Za-z0-9_-]+, got {rec['id']!r}")
            length = _number(rec["length"], "length", where) if rec["length"].strip() else None
            videos.append(
                CharadesVideo(
                    id=rec["id"],
                    actions=_parse_actions(rec["actions"], where),
                    length=length,
                    **{k: rec[k] for k in COLUMNS[1:9]},
                )
            )
    return videos


def _format_seconds(value: float) -> str:
    return f"{value:.2f}"


def write_charades_csv(videos: Iterable[CharadesVideo], path: str | os.PathLike[str]) -> None:
    """Write videos in the official column order (times with 2 decimals, as the official files), atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for v in videos:
        actions = ";".join(f"c{a.cls:03d} {_format_seconds(a.start)} {_format_seconds(a.end)}" for a in v.actions)
        length = "" if v.length is None else _format_seconds(v.length)
        writer.writerow(
            (v.id, v.subject, v.scene, v.quality, v.relevance, v.verified, v.script, v.objects, v.descriptions,
             actions, length)
        )  # fmt: skip
    write_text_atomic(path, buf.getvalue())


def read_charades_classes(path: str | os.PathLike[str]) -> list[str]:
    """Parse ``Charades_v1_classes.txt`` (``c000 Holding some clothes`` per line) into names indexed by class id."""
    path = Path(path)
    names: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            code, _, name = line.partition(" ")
            match = _CLASS.fullmatch(code)
            if match is None or not name.strip():
                raise ValueError(f"{path}: line {lineno}: expected 'c<3 digits> <class name>', got {line!r}")
            if int(match[1]) != len(names):
                raise ValueError(f"{path}: line {lineno}: class ids must be consecutive from c000, got {code}")
            names.append(name.strip())
    return names


def write_charades_classes(names: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Write the class list in the official format, ids ``c000`` upwards, atomically."""
    write_text_atomic(path, "".join(f"c{i:03d} {name}\n" for i, name in enumerate(names)))
