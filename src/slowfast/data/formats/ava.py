"""AVA annotation files: box CSVs (ground truth and detections), label maps, excluded timestamps, movie lists.

The formats are those of the AVA release and of the official ActivityNet evaluator (``get_ava_performance.py``):

* box CSV, no header: ``video_id,timestamp,x1,y1,x2,y2,action_id[,person_id | score]`` with the box normalised to
  [0, 1] of the frame and the timestamp in whole seconds of the movie (keyframes at 1 fps, written with 4 digits);
* label map ``.pbtxt``: ``item { name: "bend/bow (at the waist)" id: 1 }`` blocks, or the full action list's
  ``label { name: "..." label_id: 1 label_type: PERSON_MOVEMENT }`` blocks;
* excluded timestamps: ``video_id,timestamp`` rows;
* movie list: one file name or video id per line.

Readers are vectorised with pandas (millions of rows in seconds) and raise ``ValueError`` naming the file and the
1-based line of the first malformed row.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from slowfast.utils.io import atomic_path, write_text_atomic

BOX_COLUMNS = ("x1", "y1", "x2", "y2")
GROUNDTRUTH_COLUMNS = ("video_id", "timestamp", *BOX_COLUMNS, "action_id", "person_id")
DETECTION_COLUMNS = ("video_id", "timestamp", *BOX_COLUMNS, "action_id", "score")

PathLike = str | os.PathLike[str]


def _fail(path: PathLike, line: int, message: str) -> ValueError:
    return ValueError(f"{path}: line {line}: {message}")


def _read_rows(
    path: PathLike, names: list[str], min_columns: int, *, strict: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a headerless CSV (numbers parsed by pandas' C parser; a column holding anything else stays text for
    :func:`_numeric` to report); returns the frame and the 1-based line number of each row.

    The first, fast read lets pandas map texts like "NA" to missing; if anything is missing the file is read again
    (``strict``, 3x slower) so that only empty fields count as missing and the rest are reported as they are.
    """
    try:
        with warnings.catch_warnings():
            # Mixed types in a column mean a malformed value, which _numeric reports with its line.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            df = pd.read_csv(
                path,
                header=None,
                names=names,
                dtype={names[0]: str},
                skip_blank_lines=False,
                engine="c",
                **({"keep_default_na": False, "na_values": [""]} if strict else {}),
            )
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            raise _fail(path, int(match[2]), f"{match[3]} columns, expected {min_columns}..{len(names)}") from None
        raise ValueError(f"{path}: {exc}") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame({n: pd.Series(dtype=object) for n in names}), np.zeros(0, dtype=np.int64)
    lines = np.arange(1, len(df) + 1)
    missing = df.isna().to_numpy()
    if not strict and missing.any():
        return _read_rows(path, names, min_columns, strict=True)
    blank = missing.all(axis=1)
    if blank.any():
        df, lines, missing = df[~blank].reset_index(drop=True), lines[~blank], missing[~blank]
    # Fewer fields than `names` come back as missing; every row needs at least `min_columns` of them.
    short = missing[:, : min_columns].any(axis=1)
    if short.any():
        i = int(np.argmax(short))
        raise _fail(path, int(lines[i]), f"{int((~missing[i]).sum())} columns, expected {min_columns}..{len(names)}")
    return df, lines


def _numeric(
    df: pd.DataFrame, column: str, lines: np.ndarray, path: PathLike, *, integer: bool
) -> np.ndarray:
    series = df[column]
    if series.dtype.kind in "iu":
        return series.to_numpy(dtype=np.int64) if integer else series.to_numpy(dtype=np.float64)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if integer:
        bad |= np.mod(values, 1, where=~bad, out=np.zeros_like(values)) != 0
    if bad.any():
        i = int(np.argmax(bad))
        kind = "an integer" if integer else "a number"
        raise _fail(path, int(lines[i]), f"{column} {series.iloc[i]!r} is not {kind}")
    return values.astype(np.int64) if integer else values


def _bad_rows(out: pd.DataFrame, last: str) -> np.ndarray:
    """Rows with a box outside [0, 1] or inverted, or a non-finite last column."""
    boxes = out[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
    bad = ~((boxes >= 0) & (boxes <= 1)).all(axis=1) | (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])
    return bad | ~np.isfinite(out[last].to_numpy(dtype=np.float64))


def _read_ava_csv_fast(path: PathLike, names: list[str], last: str) -> pd.DataFrame | None:
    """pyarrow's multi-threaded reader with fixed column types; None for anything unusual (7-column rows, missing or
    non-numeric values, out-of-range boxes), which the line-tracking reader then reports."""
    types = dict.fromkeys(names, pa.float64())
    types.update(video_id=pa.string(), timestamp=pa.int64(), action_id=pa.int64())
    if last == "person_id":
        types[last] = pa.int64()
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError):
        return None
    if any(column.null_count for column in table.columns):
        return None
    out = table.to_pandas()
    out["video_id"] = out["video_id"].astype(str)
    return None if _bad_rows(out, last).any() else out


def read_ava_csv(path: PathLike, *, detections: bool = False) -> pd.DataFrame:
    """Read an AVA box CSV into columns ``video_id, timestamp, x1, y1, x2, y2, action_id`` and ``person_id`` (int,
    ground truth) or ``score`` (float, ``detections=True``).

    As the official evaluator, rows may omit the 8th column: the person id is then -1 and the score 1.0. Boxes must be
    normalised (within [0, 1]) with ``x1 <= x2`` and ``y1 <= y2``.
    """
    last = "score" if detections else "person_id"
    names = [*GROUNDTRUTH_COLUMNS[:-1], last]
    fast = _read_ava_csv_fast(path, names, last)
    if fast is not None:
        return fast
    df, lines = _read_rows(path, names, min_columns=7)
    out = pd.DataFrame({"video_id": df["video_id"].astype(str)})
    out["timestamp"] = _numeric(df, "timestamp", lines, path, integer=True)
    for column in BOX_COLUMNS:
        out[column] = _numeric(df, column, lines, path, integer=False)
    out["action_id"] = _numeric(df, "action_id", lines, path, integer=True)
    # As the evaluator, a missing 8th column means score 1.0 (and here person id -1).
    df[last] = df[last].fillna(1.0 if detections else -1)
    out[last] = _numeric(df, last, lines, path, integer=not detections)
    bad = _bad_rows(out, last)
    if bad.any():
        i = int(np.argmax(bad))
        box = tuple(out[list(BOX_COLUMNS)].to_numpy()[i].tolist())
        raise _fail(path, int(lines[i]), f"box {box} must be normalised to [0, 1] with x1 <= x2 and y1 <= y2")
    return out


def write_ava_csv(df: pd.DataFrame, path: PathLike) -> None:
    """Write boxes in the AVA CSV format (no header, 4-digit timestamps, 3-decimal boxes); the 8th column is
    ``score`` (written with full precision, so scores and their ties survive a round trip) or ``person_id`` when
    present."""
    out = pd.DataFrame(
        {
            "video_id": df["video_id"].astype(str),
            "timestamp": df["timestamp"].astype(np.int64).map("{:04d}".format),
        }
    )
    for column in BOX_COLUMNS:
        out[column] = np.char.mod("%.3f", df[column].to_numpy(dtype=np.float64))
    out["action_id"] = df["action_id"].astype(np.int64)
    if "score" in df:
        out["score"] = df["score"].astype(np.float64).map(repr)
    elif "person_id" in df:
        out["person_id"] = df["person_id"].astype(np.int64)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, header=False, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


_PBTXT_TOKEN = re.compile(
    r'(?P<space>\s+)|(?P<comment>#[^\n]*)|(?P<open>\{)|(?P<close>\})|(?P<string>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<field>[A-Za-z_]\w*\s*:)|(?P<word>[A-Za-z_]\w*)|(?P<number>-?\d+)|(?P<other>.)"
)
_LABEL_FIELDS = ("name", "display_name", "id", "label_id", "label_type")


def _pbtxt_tokens(path: PathLike, text: str) -> list[tuple[str, str, int]]:
    tokens, line = [], 1
    for match in _PBTXT_TOKEN.finditer(text):
        kind, value = match.lastgroup, match.group()
        if kind == "other":
            raise _fail(path, line, f"unexpected character {value!r}")
        if kind not in ("space", "comment"):
            tokens.append((kind, value, line))
        line += value.count("\n")
    return tokens


def read_label_map(path: PathLike) -> dict[int, str]:
    """Read an AVA label map ``.pbtxt`` (``item { name id }`` or ``label { name label_id label_type }`` blocks) into
    ``{class_id: name}`` in file order."""
    tokens = _pbtxt_tokens(path, Path(path).read_text(encoding="utf-8"))
    label_map: dict[int, str] = {}
    i = 0
    while i < len(tokens):
        kind, value, line = tokens[i]
        if kind != "word" or value not in ("item", "label") or i + 1 >= len(tokens) or tokens[i + 1][0] != "open":
            raise _fail(path, line, f"unexpected {value!r}; expected 'item {{' or 'label {{'")
        block_line, fields, i = line, {}, i + 2
        while i < len(tokens) and tokens[i][0] != "close":
            kind, value, line = tokens[i]
            key = value.rstrip(": \t")
            if kind != "field" or key not in _LABEL_FIELDS:
                raise _fail(path, line, f"unknown field {value!r}; allowed: {', '.join(_LABEL_FIELDS)}")
            if i + 1 >= len(tokens):
                break
            vkind, raw, vline = tokens[i + 1]
            expected = {"name": "string", "display_name": "string", "label_type": "word"}.get(key, "number")
            if vkind != expected:
                raise _fail(path, vline, f"{key} must be a {'quoted string' if expected == 'string' else expected}")
            if expected == "string":
                fields[key] = re.sub(r"\\(.)", r"\1", raw[1:-1])
            elif expected == "number":
                fields["id"] = int(raw)
            i += 2
        if i >= len(tokens):
            raise _fail(path, block_line, "unterminated block")
        i += 1
        if "name" not in fields or "id" not in fields:
            raise _fail(path, block_line, "block needs a name and an id (or label_id)")
        if fields["id"] in label_map:
            raise _fail(path, block_line, f"duplicate class id {fields['id']}")
        label_map[fields["id"]] = fields["name"]
    return label_map


def write_label_map(label_map: Mapping[int, str], path: PathLike) -> None:
    """Write ``{class_id: name}`` as the evaluator's ``item { name: "..." id: N }`` label map."""
    out = io.StringIO()
    for class_id, name in label_map.items():
        escaped = str(name).replace("\\", "\\\\").replace('"', '\\"')
        out.write(f'item {{\n  name: "{escaped}"\n  id: {int(class_id)}\n}}\n')
    write_text_atomic(path, out.getvalue())


def read_exclusions(path: PathLike) -> set[tuple[str, int]]:
    """Read an excluded-timestamps CSV (``video_id,timestamp`` rows) into a set of ``(video_id, timestamp)``."""
    df, lines = _read_rows(path, ["video_id", "timestamp"], min_columns=2)
    timestamps = _numeric(df, "timestamp", lines, path, integer=True)
    return set(zip(df["video_id"].astype(str).tolist(), timestamps.tolist()))


def read_movie_list(path: PathLike) -> list[str]:
    """Read a movie list (one file name or video id per line; blank lines skipped).

    Entries are plain names: a path separator or ``..`` would let an annotation reach outside the data directory.
    """
    movies = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        name = raw.strip()
        if not name:
            continue
        if "/" in name or "\\" in name or name in (".", ".."):
            raise _fail(path, number, f"{name!r} is not a plain file name")
        movies.append(name)
    return movies
