"""Person proposals for AVA: published box files imported into one in-memory form, and written back.

The paper (Sec. 5) detects actions on person boxes from a Faster R-CNN fine-tuned on AVA, kept when their score is
above 0.8. Those boxes were published; real-AVA users import them here instead of running a detector:

* PySlowFast / Long-Term Feature Bank CSVs (``ava_{train,val,test}_predicted_boxes.csv``,
  ``person_box_67091280_iou90/ava_detection_*_boxes_and_labels*.csv``), no header, one row per box (and label):
  ``video_id,timestamp,x1,y1,x2,y2,label,score`` with the box normalised to [0, 1], ``label`` an action id, empty
  or -1. PySlowFast keys a keyframe's boxes by their coordinates, so a box listed once per label is one proposal;
  so here (the first row of a box is kept).
* MMAction2's pickles (``ava_dense_proposals_{train,val,test}.FAIR.recall_93.9.pkl``): a dict
  ``{"<video_id>,<timestamp:04d>": float ndarray (N, 5) [x1, y1, x2, y2, score]}`` (MMAction2 also accepts (N, 4)
  arrays without scores; those boxes get score 1.0). Read with
  :class:`slowfast.utils.safe_pickle.ArrayUnpickler`, which refuses every global but numpy's array machinery before
  it runs, so a crafted file cannot execute code.

The in-memory form is a DataFrame with columns :data:`COLUMNS`: ``video_id`` (str), ``timestamp`` (int, seconds),
``x1, y1, x2, y2`` (float, normalised) and ``score`` (float). :func:`filter_proposals` applies the paper's
threshold (score > 0.8).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from slowfast.data.formats.ava import csv_rows, write_ava_csv
from slowfast.utils.safe_pickle import load_array_pickle

PathLike = str | os.PathLike[str]

COLUMNS = ("video_id", "timestamp", "x1", "y1", "x2", "y2", "score")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
_CSV_COLUMNS = ("video_id", "timestamp", *BOX_COLUMNS, "label", "score")
_PICKLE_KEY = re.compile(r"(?P<video_id>[^,\s]+),(?P<timestamp>\d+)")


def _frame(video_id: Sequence[str], timestamp: np.ndarray, boxes: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"video_id": pd.Series(video_id, dtype=object).astype(str)})
    df["timestamp"] = np.asarray(timestamp, dtype=np.int64)
    for i, column in enumerate(BOX_COLUMNS):
        df[column] = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, i]
    df["score"] = np.asarray(score, dtype=np.float64)
    return df


def _bad_boxes(boxes: np.ndarray) -> np.ndarray:
    """Rows that are not finite boxes normalised to [0, 1] with x1 <= x2 and y1 <= y2."""
    return (
        ~np.isfinite(boxes).all(axis=1)
        | (boxes < 0).any(axis=1)
        | (boxes > 1).any(axis=1)
        | (boxes[:, 0] > boxes[:, 2])
        | (boxes[:, 1] > boxes[:, 3])
    )


def read_proposals_csv(path: PathLike) -> pd.DataFrame:
    """Read a PySlowFast proposal CSV (``video_id,timestamp,x1,y1,x2,y2,label,score`` rows, no header).

    Malformed rows raise ValueError naming the file and the 1-based line; a box repeated on one keyframe (one row
    per action label) is kept once, at its first row.
    """
    # Split as csv.reader does, so a leading index column, a trailing comma or rows joined by ';' are reported
    # with their line instead of shifting the fields (pandas would take a leading column for the index).
    rows, lines = csv_rows(path, (len(_CSV_COLUMNS),))
    if not rows:
        return _frame([], np.zeros(0), np.zeros((0, 4)), np.zeros(0))
    raw = pd.DataFrame(rows, columns=list(_CSV_COLUMNS))

    def fail(row: int, message: str) -> ValueError:
        return ValueError(f"{path}: line {lines[row]}: {message}")

    missing = ((raw["video_id"] == "") | (raw["score"] == "")).to_numpy()
    if missing.any():
        row = int(np.argmax(missing))
        count = int((raw.iloc[row] != "").sum())
        raise fail(row, f"{count} non-empty columns; expected 8: {','.join(_CSV_COLUMNS)} (label may be empty)")
    numbers = {}
    for column in ("timestamp", *BOX_COLUMNS, "label", "score"):
        text = raw[column].replace("", "-1") if column == "label" else raw[column]
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if column in ("timestamp", "label"):
            bad |= np.where(bad, False, values % 1 != 0)
        if bad.any():
            row = int(np.argmax(bad))
            kind = "an integer" if column in ("timestamp", "label") else "a number"
            raise fail(row, f"{column} {raw[column].iloc[row]!r} is not {kind}")
        numbers[column] = values
    boxes = np.stack([numbers[c] for c in BOX_COLUMNS], axis=1)
    bad = _bad_boxes(boxes)
    if bad.any():
        row = int(np.argmax(bad))
        raise fail(row, f"box {tuple(boxes[row].tolist())} must be normalised to [0, 1] with x1 <= x2, y1 <= y2")
    df = _frame(raw["video_id"].tolist(), numbers["timestamp"], boxes, numbers["score"])
    # PySlowFast's key for a box is its coordinates as written, so compare the text, not the floats.
    first = ~raw.duplicated(subset=["video_id", "timestamp", *BOX_COLUMNS]).to_numpy()
    return df[first].reset_index(drop=True)


def read_proposals_pickle(path: PathLike) -> pd.DataFrame:
    """Read an MMAction2 proposal pickle (``{"video_id,timestamp": (N, 5) or (N, 4) array}``) without running code
    from it; keys or arrays of another shape raise ValueError naming the file and the key."""
    data = load_array_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict keyed 'video_id,timestamp', got {type(data).__name__}")
    video_ids, timestamps, rows = [], [], []
    for key, value in data.items():
        match = _PICKLE_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"{path}: key {key!r} is not 'video_id,timestamp' (e.g. '1j20qq1JyX4,0902')")
        if (
            not isinstance(value, np.ndarray)
            or value.dtype.kind not in "fiu"
            or value.ndim != 2
            or value.shape[1] not in (4, 5)
        ):
            shape = getattr(value, "shape", None)
            raise ValueError(f"{path}: key {key!r}: expected a numeric (N, 5) or (N, 4) array, got "
                             f"{type(value).__name__} {shape if shape is not None else ''}".rstrip())
        array = value.astype(np.float64)
        if array.shape[1] == 4:
            array = np.concatenate([array, np.ones((len(array), 1))], axis=1)
        bad = _bad_boxes(array[:, :4]) | ~np.isfinite(array[:, 4])
        if bad.any():
            raise ValueError(
                f"{path}: key {key!r}: row {int(np.argmax(bad))} {tuple(array[int(np.argmax(bad))].tolist())} "
                "is not a box normalised to [0, 1] with x1 <= x2, y1 <= y2 and a finite score"
            )
        video_ids += [match["video_id"]] * len(array)
        timestamps.append(np.full(len(array), int(match["timestamp"])))
        rows.append(array)
    rows_all = np.concatenate(rows) if rows else np.zeros((0, 5))
    stamps = np.concatenate(timestamps) if timestamps else np.zeros(0)
    return _frame(video_ids, stamps, rows_all[:, :4], rows_all[:, 4])


def read_proposals(path: PathLike) -> pd.DataFrame:
    """Read a proposal file by its extension: ``.csv`` (PySlowFast) or ``.pkl`` / ``.pickle`` (MMAction2)."""
    suffix = os.fspath(path).lower().rsplit(".", 1)[-1]
    if suffix == "csv":
        return read_proposals_csv(path)
    if suffix in ("pkl", "pickle"):
        return read_proposals_pickle(path)
    raise ValueError(f"{path}: unknown proposal file type; allowed: .csv (PySlowFast), .pkl / .pickle (MMAction2)")


def filter_proposals(df: pd.DataFrame, score_threshold: float = 0.8) -> pd.DataFrame:
    """The proposals scoring strictly above ``score_threshold`` (the paper keeps person boxes with score > 0.8)."""
    return df[df["score"].to_numpy() > score_threshold].reset_index(drop=True)


def proposals_from_detections(
    keyframes: Sequence[tuple[str, int]], detections: Sequence[np.ndarray]
) -> pd.DataFrame:
    """Per-keyframe detector output (``(K, 5)`` ``[x1, y1, x2, y2, score]`` arrays, as
    :func:`slowfast.detection.person.detect_persons` returns) as a proposal DataFrame."""
    if len(keyframes) != len(detections):
        raise ValueError(f"keyframes: {len(keyframes)} keyframes for {len(detections)} detection arrays")
    arrays = [np.asarray(d, dtype=np.float64).reshape(-1, 5) for d in detections]
    counts = [len(a) for a in arrays]
    rows = np.concatenate(arrays) if arrays else np.zeros((0, 5))
    video_ids = [str(v) for (v, _), c in zip(keyframes, counts) for _ in range(c)]
    stamps = np.repeat([int(t) for _, t in keyframes], counts) if keyframes else np.zeros(0)
    return _frame(video_ids, stamps, rows[:, :4], rows[:, 4])


def write_proposals_csv(df: pd.DataFrame, path: PathLike) -> None:
    """Write proposals in PySlowFast's CSV format, atomically: ``video_id,timestamp(4 digits),x1,y1,x2,y2,-1,score``
    (label -1 = no action, as PySlowFast reads an empty label; boxes with 3 decimals as the published files)."""
    write_ava_csv(df.assign(action_id=-1)[[*COLUMNS[:6], "action_id", "score"]], path)
