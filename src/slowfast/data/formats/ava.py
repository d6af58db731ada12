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


PROTOCOLS = ("activitynet-2019", "activitynet-2020")


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def _describe_fields(row: list[str], allowed: tuple[int, ...]) -> str:
    """What is wrong with a row of ``len(row)`` fields, in words a user can act on."""
    n, expected = len(row), " or ".join(str(k) for k in allowed)
    joined = next((f for f in row if ";" in f), None)
    if joined is not None:
        return f"{n} fields, one of them {joined!r}: two rows joined by ';'? (expected {expected} fields)"
    if n - 1 in allowed and n > 1 and row[-1].strip() == "":
        return f"{n} fields, the last one empty: a trailing comma? (expected {expected} fields)"
    if n - 1 in allowed and n > 3 and _is_int(row[0]) and _is_int(row[2]) and int(row[2]) > 1:
        return (f"{n} fields starting {','.join(row[:3])!r}: an extra leading column (an index?) before the video "
                f"id (expected {expected} fields)")
    return f"{n} fields, expected {expected}"


def csv_rows(path: PathLike, allowed: tuple[int, ...]) -> tuple[list[list[str]], np.ndarray]:
    """Rows of a headerless CSV as Python's ``csv`` module (the official evaluator's reader) splits them, with their
    1-based line numbers; blank lines are skipped, and a row with a number of fields not in ``allowed`` fails naming
    the file, the line and what was found."""
    rows, lines = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) not in allowed:
                    raise _fail(path, reader.line_num, _describe_fields(row, allowed))
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise _fail(path, reader.line_num, f"not a CSV row ({exc})") from None
    return rows, np.array(lines, dtype=np.int64)


def _read_ava_csv_fast(
    path: PathLike, names: list[str], last: str, keyframe_rows: list[str] | None
) -> pd.DataFrame | None:
    """pyarrow's multi-threaded reader with fixed column types; None for anything unusual (rows of another number of
    fields, missing or non-numeric values, out-of-range boxes), which the line-tracking reader then reports.

    With ``keyframe_rows`` (the 2020 protocol), 2-field rows are skipped and their text appended to it."""
    types = dict.fromkeys(names, pa.float64())
    types.update(video_id=pa.string(), timestamp=pa.int64(), action_id=pa.int64())
    if last == "person_id":
        types[last] = pa.int64()

    def invalid(row) -> str:
        if keyframe_rows is not None and row.actual_columns == 2:
            keyframe_rows.append(row.text)
            return "skip"
        return "error"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError):
        return None
    if any(column.null_count for column in table.columns):
        return None
    out = table.to_pandas()
    out["video_id"] = out["video_id"].astype(str)
    return None if _bad_rows(out, last).any() else out


def _keyframes(path: PathLike, rows: list[list[str]], lines: np.ndarray) -> set[tuple[str, int]]:
    if not rows:
        return set()
    df = pd.DataFrame(rows, columns=["video_id", "timestamp"])
    return set(zip(df["video_id"].tolist(), _numeric(df, "timestamp", lines, path, integer=True).tolist()))


def _read_boxes(path: PathLike, *, detections: bool, keyframe_rows: bool) -> tuple[pd.DataFrame, set[tuple[str, int]]]:
    """The box rows of an AVA CSV and, with ``keyframe_rows``, the keyframes its 2-field rows list."""
    last = "score" if detections else "person_id"
    names = [*GROUNDTRUTH_COLUMNS[:-1], last]
    listed: list[str] | None = [] if keyframe_rows else None
    fast = _read_ava_csv_fast(path, names, last, listed)
    if fast is not None:
        text = [next(csv.reader([line])) for line in listed or ()]
        try:
            return fast, _keyframes(path, text, np.zeros(len(text), dtype=np.int64))
        except ValueError:
            pass  # a malformed keyframe row: the line-tracking reader below names its line
    # The official reader takes rows of 7 or 8 fields (7: score 1.0); a detection without its score is a malformed
    # submission here. The 2020 evaluator's ground truth also lists keyframes without actions as 2-field rows.
    allowed = (8,) if detections else ((2, 7, 8) if keyframe_rows else (7, 8))
    rows, lines = csv_rows(path, allowed)
    short = np.array([len(r) == 2 for r in rows], dtype=bool)
    keyframes = _keyframes(path, [r for r, s in zip(rows, short) if s], lines[short])
    rows, lines = [r + [""] * (8 - len(r)) for r, s in zip(rows, short) if not s], lines[~short]
    df = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame(columns=names, dtype=object)
    out = pd.DataFrame({"video_id": df["video_id"].astype(str)})
    out["timestamp"] = _numeric(df, "timestamp", lines, path, integer=True)
    for column in BOX_COLUMNS:
        out[column] = _numeric(df, column, lines, path, integer=False)
    out["action_id"] = _numeric(df, "action_id", lines, path, integer=True)
    # As the evaluator, a missing 8th column of the ground truth means score 1.0 (and here person id -1).
    df[last] = df[last].replace("", "-1")
    out[last] = _numeric(df, last, lines, path, integer=not detections)
    bad = _bad_rows(out, last)
    if bad.any():
        i = int(np.argmax(bad))
        box = tuple(out[list(BOX_COLUMNS)].to_numpy()[i].tolist())
        raise _fail(path, int(lines[i]), f"box {box} must be normalised to [0, 1] with x1 <= x2 and y1 <= y2")
    return out, keyframes


def read_ava_csv(path: PathLike, *, detections: bool = False) -> pd.DataFrame:
    """Read an AVA box CSV into columns ``video_id, timestamp, x1, y1, x2, y2, action_id`` and ``person_id`` (int,
    ground truth) or ``score`` (float, ``detections=True``).

    Ground-truth rows have 7 or 8 fields, as the official evaluator reads them (no 8th: person id -1, which the
    evaluator scores as 1.0); detection rows have 8. Boxes must be normalised (within [0, 1]) with ``x1 <= x2`` and
    ``y1 <= y2``. Any other row fails with a ``ValueError`` naming the file, the line and what was found.
    """
    return _read_boxes(path, detections=detections, keyframe_rows=False)[0]


def read_ava_groundtruth(
    path: PathLike, *, protocol: str = "activitynet-2019"
) -> tuple[pd.DataFrame, set[tuple[str, int]]]:
    """Read a ground-truth CSV for an evaluation ``protocol``: the boxes (as :func:`read_ava_csv`) and the keyframes
    the file lists without actions.

    ``"activitynet-2019"`` (the evaluator the paper uses) takes rows of 7 or 8 fields; ``"activitynet-2020"`` (the
    current ActivityNet evaluator) also 2-field ``video_id,timestamp`` rows: keyframes without actions, which are
    returned in the set (empty under 2019).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: got {protocol!r}, allowed: {', '.join(PROTOCOLS)}")
    return _read_boxes(path, detections=False, keyframe_rows=protocol == "activitynet-2020")


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
    rows, lines = csv_rows(path, (2,))
    return _keyframes(path, rows, lines)


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
