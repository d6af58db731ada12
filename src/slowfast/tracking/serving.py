"""What the served model (``mlflow models serve``, :mod:`slowfast.tracking.model_code`) answers.

A request holds one of:

- a video, ``{"inputs": {"video": "<base64 of the file's bytes>"}}`` (several: a list), or ``{"inputs": {"path":
  "clip.mp4"}}`` for a file on the serving machine; in Python, ``bytes`` or a :class:`~pathlib.Path`. The video is
  decoded and sampled as the evaluate stage does (:func:`slowfast.engine.predict.predict_video`: ``clips`` × ``crops``
  views, softmax averaged; Sec. 5.1), so the answer is the evaluation protocol's prediction for it;
- prepared clips, ``{"inputs": [[...]]}``: float32 (N, 3, αT, S, S), normalised frames at the model's test size S,
  each scored on its own.

and optional ``params``: ``top_k`` (default 5), ``clips`` (10) and ``crops`` (3). The answer is one item per video or
clip: ``{"top": [{"class": name, "score": p}, ...]}`` best first (plus ``"views"`` for a video). A request the model
cannot take (wrong shape, size or type, undecodable video, bad parameter) is an ``MlflowException`` with
``INVALID_PARAMETER_VALUE`` (HTTP 400) whose one-line message says what was expected and what came (the shape, never
the values).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from slowfast.models import SlowFast
from slowfast.tracking.models import Preprocessing

#: the largest decoded video accepted in a request (base64 is 4/3 of it).
MAX_VIDEO_BYTES = 512 * 2**20
#: the folder ``{"inputs": {"path": ...}}`` requests may read from; unset, a served model reads no file by name
#: (a request could otherwise make the server read any file it can)
VIDEO_ROOT_ENV = "SLOWFAST_SERVE_VIDEO_ROOT"
#: the most prepared clips in one request (each (3, αT, S, S) float32).
MAX_CLIPS = 64
PARAMS = {"top_k": 5, "clips": 10, "crops": 3}


class RequestError(MlflowException):
    """A request the model cannot take (HTTP 400). MLflow's scoring server rewrites the message of an exception
    raised by ``predict`` to ``"Failed to predict data '<repr of the whole input>'. \nError: <message>"``, which for
    a wrong clip echoes kilobytes of numbers; this exception keeps only its own message."""

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = str(value).rpartition("\nError: ")[2]


def bad_request(message: str) -> RequestError:
    return RequestError(message, error_code=INVALID_PARAMETER_VALUE)


def _params(params: Mapping[str, Any] | None, num_classes: int) -> dict[str, int]:
    out = {**PARAMS, "top_k": min(PARAMS["top_k"], num_classes)}  # the default never asks for more than there are
    for key, value in (params or {}).items():
        if key not in PARAMS:
            raise bad_request(f"params: unknown {key!r}; allowed: {', '.join(PARAMS)}")
        try:
            out[key] = int(value)
        except (TypeError, ValueError):
            raise bad_request(f"params.{key}: expected an integer, got {type(value).__name__}") from None
    checks = {"top_k": (1 <= out["top_k"] <= num_classes, f"1..{num_classes}"),
              "clips": (1 <= out["clips"] <= 30, "1..30"), "crops": (out["crops"] in (1, 3), "1 or 3")}
    for key, (ok, allowed) in checks.items():
        if not ok:
            raise bad_request(f"params.{key}: got {out[key]}, allowed: {allowed}")
    return out


def _top(scores: np.ndarray, classes: list[str], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"class": classes[i], "score": float(scores[i])} for i in order]


def _items(value: Any) -> list[Any]:
    """A request field as a list of items (MLflow hands JSON strings over as 0-d or 1-d numpy arrays)."""
    if isinstance(value, np.ndarray):
        return [v.item() if isinstance(v, np.generic) else v for v in value.reshape(-1)]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # a pandas Series
        return list(value.tolist())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _videos(model_input: Any) -> list[tuple[str, Any]] | None:
    """``[("bytes" | "path", value), ...]`` if the request is about videos, None if it should be clips."""
    if isinstance(model_input, (bytes, bytearray)):
        return [("bytes", bytes(model_input))]
    if isinstance(model_input, (str, os.PathLike)):
        return [("path", model_input)]
    if hasattr(model_input, "columns"):  # a DataFrame (dataframe_split / dataframe_records requests)
        model_input = {c: model_input[c] for c in model_input.columns}
    if isinstance(model_input, Mapping):
        keys = set(model_input)
        if keys not in ({"video"}, {"path"}):
            raise bad_request(f"inputs: expected the key 'video' (base64 of a video file) or 'path', got "
                              f"{', '.join(sorted(map(str, keys))) or 'none'}")
        key = keys.pop()
        return [("video" if key == "video" else "path", v) for v in _items(model_input[key])]
    if isinstance(model_input, (list, tuple)) and model_input and all(
            isinstance(v, (bytes, str, os.PathLike)) for v in model_input):
        return [("bytes" if isinstance(v, bytes) else "path", v) for v in model_input]
    return None


def _video_bytes(kind: str, value: Any) -> bytes | None:
    if kind == "bytes":
        data = value
    elif kind == "video":
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("ascii", errors="replace")
        if not isinstance(value, str):
            raise bad_request(f"inputs.video: expected a base64 string, got {type(value).__name__}")
        if len(value) > MAX_VIDEO_BYTES * 4 // 3 + 4:
            raise bad_request(f"inputs.video: larger than {MAX_VIDEO_BYTES // 2**20} MiB")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("inputs.video: not valid base64") from None
    else:
        return None
    if not data:
        raise bad_request("inputs.video: empty")
    return data


def _checked_path(value: Any) -> Path:
    """A video named by path: a :class:`~pathlib.Path` given in-process as is; a path string (what a request can
    send) only inside ``$SLOWFAST_SERVE_VIDEO_ROOT``."""
    if isinstance(value, os.PathLike):
        return Path(value)
    root = os.environ.get(VIDEO_ROOT_ENV, "").strip()
    if not root:
        raise bad_request(f"inputs.path: reading videos by path is off; post the video's bytes ('video': base64), "
                          f"or start the server with {VIDEO_ROOT_ENV}=FOLDER")
    path = Path(root, str(value)).resolve()
    if not path.is_relative_to(Path(root).resolve()):
        raise bad_request(f"inputs.path: {value!r} is outside {VIDEO_ROOT_ENV}")
    return path


def _score_video(kind: str, value: Any, model: SlowFast, pre: Preprocessing, p: dict[str, int]) -> np.ndarray:
    from slowfast.engine.predict import predict_video

    data = _video_bytes(kind, value)
    with tempfile.TemporaryDirectory(prefix="slowfast-serve-") as tmp:
        path = _checked_path(value) if data is None else Path(tmp) / "video"
        if data is not None:
            path.write_bytes(data)
        try:
            return predict_video(path, model, pre, clips=p["clips"], crops=p["crops"])
        except (ValueError, FileNotFoundError) as exc:
            message = (str(exc).splitlines() or [type(exc).__name__])[0]
            if data is not None:
                message = message.replace(str(path), "(the posted video)")
            raise bad_request(f"inputs.{'path' if data is None else 'video'}: {message}"[:300]) from None


def _clips(model_input: Any, model: SlowFast, pre: Preprocessing) -> np.ndarray:
    frames, size = pre.sampling.fast_frames, pre.transform.test_size
    channels = model.config.input_channels
    expected = f"(N, {channels}, {frames}, {size}, {size}) float32 normalised clips, 1 <= N <= {MAX_CLIPS}"
    try:
        clips = np.asarray(model_input, dtype=np.float32)
    except (TypeError, ValueError):
        raise bad_request(f"inputs: expected a video ('video': base64 or 'path') or {expected}; got "
                          f"{type(model_input).__name__} that is not a numeric array") from None
    if clips.ndim != 5 or clips.shape[1:] != (channels, frames, size, size) or not 1 <= clips.shape[0] <= MAX_CLIPS:
        raise bad_request(f"inputs: expected {expected}; got shape {tuple(clips.shape)}")
    if not np.isfinite(clips).all():
        raise bad_request("inputs: clips hold NaN or infinite values")
    return clips


def answer(model: SlowFast, classes: list[str], pre: Preprocessing, model_input: Any,
           params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The served model's answer to one request: one ``{"top": [...]}`` per video or clip (see the module doc)."""
    import torch

    from slowfast.models import pack_pathways

    p = _params(params, len(classes))
    videos = _videos(model_input)
    if videos is not None:
        views = p["clips"] * p["crops"]
        return [{"top": _top(_score_video(kind, value, model, pre, p), classes, p["top_k"]), "views": views}
                for kind, value in videos]
    clips = torch.from_numpy(_clips(model_input, model, pre))
    with torch.inference_mode():
        out = model(pack_pathways(clips, model.config))
        scores = out if model.config.multilabel else out.softmax(dim=1)
    return [{"top": _top(row, classes, p["top_k"])} for row in scores.float().numpy()]
