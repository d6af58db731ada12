"""The served model takes a video: `mlflow models serve` answers a posted encoded video with named classes.

The registered model is a real tiny SlowFast logged to a sqlite store; the server is a real `mlflow models serve
--env-manager local` on 127.0.0.1; the videos are real H.264 files made with PyAV. The expected answer is
`slowfast predict`'s protocol (predict_video) on the same file with the same views.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from slowfast.data.decode import DecodeConfig
from slowfast.engine.predict import predict_video
from slowfast.tracking.models import load_local, log_model
from tests.conftest import BIN, free_port, start_server, stop_server
from tests.data.videos import make_video
from tests.engine.test_predict import CLASSES, TINY_SAMPLING, TINY_TRANSFORM, make_checkpoint

NAME, ALIAS = "slowfast-served", "champion"
VIEWS = {"clips": 2, "crops": 1}


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """(tracking URI, checkpoint, video) with the checkpoint logged and registered as NAME@ALIAS."""
    root = tmp_path_factory.mktemp("served")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    checkpoint = make_checkpoint(root / "ckpt")
    video = make_video(root / "clip.mp4", width=80, height=60, num_frames=90)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        log_model(checkpoint, classes=CLASSES, sampling=TINY_SAMPLING, transform=TINY_TRANSFORM,
                  decode=DecodeConfig(short_side=64), registered_name=NAME, alias=ALIAS)
    yield uri, checkpoint, video
    mlflow.set_tracking_uri(previous)


def _expected(checkpoint, video, **views):
    model, classes, pre = load_local(checkpoint)
    pre = pre.__class__(sampling=TINY_SAMPLING, transform=TINY_TRANSFORM, decode=DecodeConfig(short_side=64))
    scores = predict_video(video, model, pre, **views)
    order = np.argsort(-scores, kind="stable")
    return [classes[i] for i in order], scores[order]


def test_pyfunc_answers_a_video_path_and_its_bytes_with_the_predict_protocols_named_classes(registered, monkeypatch):
    uri, checkpoint, video = registered
    monkeypatch.setenv("SLOWFAST_SERVE_VIDEO_ROOT", str(video.parent))
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@{ALIAS}")
    names, scores = _expected(checkpoint, video, **VIEWS)
    params = {"top_k": 2, **VIEWS}
    by_path = pyfunc.predict({"path": video.name}, params=params)
    by_bytes = pyfunc.predict(video.read_bytes(), params=params)
    by_b64 = pyfunc.predict({"video": base64.b64encode(video.read_bytes()).decode()}, params=params)
    for answer in (by_path, by_bytes, by_b64):
        assert len(answer) == 1 and answer[0]["views"] == 2
        assert [t["class"] for t in answer[0]["top"]] == names[:2]
        np.testing.assert_allclose([t["score"] for t in answer[0]["top"]], scores[:2], atol=1e-6)


@pytest.mark.parametrize("payload, params, message", [
    (np.zeros((1, 3, 32, 16, 16), np.float32), None, r"expected \(N, 3, 32, 64, 64\).*got shape \(1, 3, 32, 16, 16\)"),
    (np.zeros((2, 3, 8, 64, 64), np.float32), None, r"got shape \(2, 3, 8, 64, 64\)"),
    ({"video": "not base64!"}, None, "not valid base64"),
    ({"video": base64.b64encode(b"not a video at all").decode()}, None, "cannot be decoded"),
    ({"clip": "x"}, None, "expected the key 'video'"),
    (b"\x00", {"crops": 2}, "params.crops: got 2, allowed: 1 or 3"),
    (b"\x00", {"top_k": 4}, "params.top_k: got 4, allowed: 1..3"),
])
def test_a_request_the_model_cannot_take_is_a_short_error_without_the_values(registered, payload, params, message):
    uri = registered[0]
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@{ALIAS}")
    with pytest.raises(MlflowException, match=message) as info:
        pyfunc.predict(payload, params=params)
    assert len(info.value.message) < 300 and "\n" not in info.value.message
    assert "0., 0." not in info.value.message and "0.0, 0.0" not in info.value.message


@pytest.fixture(scope="module")
def served(registered, tmp_path_factory):
    """`mlflow models serve -m models:/NAME@ALIAS --env-manager local` on 127.0.0.1; yields its base URL."""
    uri = registered[0]
    root = tmp_path_factory.mktemp("serve-log")
    port = free_port()
    # mlflow runs `uvicorn` by name: the venv's bin must be on PATH even when the venv is not activated (make test)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    base = f"http://127.0.0.1:{port}"
    proc = start_server([str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@{ALIAS}", "--env-manager",
                         "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                        base + "/ping", root / "serve.log", what="mlflow models serve", timeout=180, env=env,
                        start_new_session=True)  # its own session: the server and its uvicorn worker
    yield base
    stop_server(proc)


def _post(base: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(base + "/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_served_model_answers_a_posted_encoded_video_with_named_classes(registered, served, tmp_path):
    _, checkpoint, video = registered
    other = make_video(tmp_path / "other.mkv", width=96, height=64, num_frames=75, codec="mpeg4")
    body = {"inputs": {"video": [base64.b64encode(p.read_bytes()).decode() for p in (video, other)]},
            "params": {"top_k": 3, **VIEWS}}
    status, answer = _post(served, body)
    assert status == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == 2
    for path, prediction in zip((video, other), predictions):
        names, scores = _expected(checkpoint, path, **VIEWS)
        assert [t["class"] for t in prediction["top"]] == names
        np.testing.assert_allclose([t["score"] for t in prediction["top"]], scores, atol=1e-5)
        assert set(names) == set(CLASSES)


def test_served_model_refuses_a_clip_of_the_wrong_size_with_a_short_400(served):
    status, answer = _post(served, {"inputs": np.zeros((1, 3, 32, 16, 16)).tolist()})
    assert status == 400
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "got shape (1, 3, 32, 16, 16)" in answer["message"] and len(answer["message"]) < 300


def test_path_requests_read_nothing_unless_a_video_root_is_set_and_never_outside_it(registered, monkeypatch,
                                                                                  tmp_path):
    uri, _, video = registered
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@{ALIAS}")
    monkeypatch.delenv("SLOWFAST_SERVE_VIDEO_ROOT", raising=False)
    with pytest.raises(MlflowException, match="reading videos by path is off"):
        pyfunc.predict({"path": str(video)})
    monkeypatch.setenv("SLOWFAST_SERVE_VIDEO_ROOT", str(tmp_path))
    with pytest.raises(MlflowException, match="outside SLOWFAST_SERVE_VIDEO_ROOT"):
        pyfunc.predict({"path": str(video)})
    with pytest.raises(MlflowException, match="outside SLOWFAST_SERVE_VIDEO_ROOT"):
        pyfunc.predict({"path": "../" + video.name})
