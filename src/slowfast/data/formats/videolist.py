"""Video list files of users' own classification datasets: MMAction2's list, PySlowFast's CSV, class names, splits.

* MMAction2 video list (``ann_file`` of its ``VideoDataset``): ``<path> <label index>`` per line, paths relative to
  its ``data_prefix``; class names in a separate file, one per line, line ``i`` naming label ``i``.
* PySlowFast CSV (``{train,val,test}.csv`` of ``DATA.PATH_TO_DATA_DIR``): ``<path> <label>`` per line separated by
  ``DATA.PATH_LABEL_SEPARATOR`` (a space), paths under ``DATA.PATH_PREFIX``; the label is an integer index.
* Split file (UCF101's ``trainlist01.txt`` / ``testlist01.txt``): a relative path first on each line, anything after
  it (UCF101's 1-based class number) ignored.

Both list formats read the same way: the label is the *last* whitespace-separated token and the path is everything
before it, so paths may contain spaces (``my videos/clip 1.mp4 3``). Blank lines and lines starting with ``#`` are
skipped. A line without a path and a label is returned as an entry with ``label=None`` and a ``problem``, so the
caller makes it a failure record naming the line instead of failing the whole file. Files are UTF-8 (a BOM is
ignored).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ListEntry", "read_class_names", "read_split_file", "read_video_list"]


@dataclass(frozen=True)
class ListEntry:
    """One line of a list file: the path as written, its label token (None when the line is malformed)."""

    line: int
    path: str
    label: str | None
    problem: str | None = None


def _lines(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    text = Path(path).read_text(encoding="utf-8-sig")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def read_video_list(path: str | os.PathLike[str]) -> list[ListEntry]:
    """The entries of an MMAction2 video list or a PySlowFast CSV (``<path> <label>``, label last)."""
    entries = []
    for number, line in _lines(path):
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            entries.append(ListEntry(number, line, None, "expected '<path> <label>'"))
        else:
            entries.append(ListEntry(number, parts[0].strip(), parts[1]))
    return entries


def read_split_file(path: str | os.PathLike[str]) -> list[ListEntry]:
    """The relative paths of a split file (first token of each line; UCF101's trailing class number ignored)."""
    entries = []
    for number, line in _lines(path):
        parts = line.rsplit(None, 1)
        # "<path> <class number>" (UCF101 train lists) or just "<path>" (test lists, paths may hold spaces).
        rel = parts[0] if len(parts) == 2 and parts[1].isdigit() else line
        entries.append(ListEntry(number, rel.strip(), None))
    return entries


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Class names, one per line in label order; a duplicate name is a ValueError naming both lines."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, line in _lines(path):
        if line in seen:
            raise ValueError(f"{path}: line {number}: class {line!r} already named on line {seen[line]}")
        seen[line] = number
        names.append(line)
    if not names:
        raise ValueError(f"{path}: no class name")
    return names
