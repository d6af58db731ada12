"""The trained model in MLflow: logged from code (no pickle), registered with an alias, loaded and resolved back."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from slowfast.cli import main
from slowfast.data.datasets import KineticsDataset
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.shards import FrameShards
from slowfast.models import load_model, pack_pathways
from slowfast.models.checkpoint import read_checkpoint
from slowfast.tracking.models import load_mlflow_dir, log_model, resolve_model
from tests.data.videos import make_video
from tests.engine.test_predict import CLASSES, TINY_SAMPLING, TINY_TRANSFORM, make_checkpoint

NAME, ALIAS = "slowfast-test", "champion"


def _log(checkpoint: Path, uri: str, **kw):
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        return log_model(checkpoint, classes=CLASSES, sampling=TINY_SAMPLING, transform=TINY_TRANSFORM,
                         decode=DecodeConfig(short_side=64), **kw)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store holding one logged and registered model; yields (uri, checkpoint, video, model info)."""
    root = tmp_path_factory.mktemp("mlflow-models")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    checkpoint = make_checkpoint(root / "ckpt")
    video = make_video(root / "clip.mp4", width=64, height=48, num_frames=90)
    info = _log(checkpoint, uri, registered_name=NAME, alias=ALIAS)
    yield uri, checkpoint, video, info
    mlflow.set_tracking_uri(previous)


def _real_clips(video: Path, directory: Path) -> torch.Tensor:
    """The 30 test views of ``video`` as normalised (V, 3, αT, H, W) clips, through the evaluate stage's data path."""
    decode_videos({"v": video}, directory, DecodeConfig(short_side=64), progress=False)
    dataset = KineticsDataset(FrameShards(directory), [("v", 0)], sampling=TINY_SAMPLING, transform=TINY_TRANSFORM,
                              pack=lambda clip: [clip], train=False)
    return dataset.normalize(dataset[0]["inputs"][0])  # uint8 -> the model's floats, as the engine does


def test_pyfunc_loaded_by_alias_scores_real_clips_like_the_checkpoint(store, tmp_path):
    uri, checkpoint, video, info = store
    mlflow.set_tracking_uri(uri)
    clips = _real_clips(video, tmp_path / "shards")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@{ALIAS}")
    answers = pyfunc.predict(clips.numpy(), params={"top_k": 3})
    model = load_model(checkpoint)
    with torch.inference_mode():
        expected = model(pack_pathways(clips, model.config)).softmax(dim=1).numpy()
    assert len(answers) == 30
    for row, answer in zip(expected, answers):
        assert [t["class"] for t in answer["top"]] == [CLASSES[i] for i in np.argsort(-row, kind="stable")]
        np.testing.assert_allclose([t["score"] for t in answer["top"]], np.sort(row)[::-1], atol=1e-6)
    assert int(info.registered_model_version) == 1


def test_logged_model_holds_no_pickle_only_our_checkpoint_and_a_signature(store, tmp_path):
    uri, checkpoint, _, _ = store
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}@{ALIAS}", dst_path=str(tmp_path),
                                                     tracking_uri=uri, registry_uri=uri))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in flavor
    assert "mlflow.models.set_model" in (local / Path(flavor["model_code_path"]).name).read_text()
    serialized = []
    for path in local.rglob("*"):
        if path.is_file():
            assert path.suffix not in (".pkl", ".pickle", ".cloudpickle"), path
            head = path.read_bytes()[:2]
            if head == b"\x80\x04" or head == b"\x80\x05" or zipfile.is_zipfile(path):  # a pickle or a torch.save
                serialized.append(path)
    assert [p.relative_to(local).as_posix() for p in serialized] == [flavor["artifacts"]["checkpoint"]["path"]]
    assert read_checkpoint(serialized[0])["format"] == "slowfast/1"  # loads with weights_only=True
    params = {p["name"]: p["default"] for p in json.loads(mlmodel["signature"]["params"])}
    assert params == {"top_k": 3, "clips": 10, "crops": 3}  # top 5 of 3 classes: 3  # a request holds a video or clips: no input schema


def test_predict_with_the_registered_alias_gives_the_checkpoint_scores(store, capsys):
    uri, checkpoint, video, _ = store
    common = [str(video), "--json", "--top", "3", "--clips", "3"]
    assert main(["predict", "--model", f"models:/{NAME}@{ALIAS}", "--tracking-uri", uri, *common]) == 0
    by_alias = json.loads(capsys.readouterr().out)
    assert main(["predict", "--checkpoint", str(checkpoint), *common]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert [t["class"] for t in by_alias["top"]] == [t["class"] for t in by_file["top"]]
    np.testing.assert_allclose([t["score"] for t in by_alias["top"]], [t["score"] for t in by_file["top"]], atol=1e-6)


def test_resolved_model_carries_weights_classes_and_the_logged_preprocessing(store):
    uri, checkpoint, _, _ = store
    model, classes, pre = resolve_model(f"models:/{NAME}@{ALIAS}", tracking_uri=uri)
    original = load_model(checkpoint).state_dict()
    assert classes == CLASSES and not model.training
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    assert (pre.sampling, pre.transform, pre.decode.short_side) == (TINY_SAMPLING, TINY_TRANSFORM, 64)


def test_every_uri_form_resolves_in_the_given_store_whatever_the_global_one(store, tmp_path):
    uri, checkpoint, _, info = store
    mlflow.set_tracking_uri(f"file:{tmp_path / 'elsewhere'}")  # MLflow's own resolution would look here
    try:
        for form in (f"models:/{NAME}@{ALIAS}", f"models:/{NAME}/1", info.model_uri, f"runs:/{info.run_id}/model"):
            assert resolve_model(form, tracking_uri=uri).classes == CLASSES, form
    finally:
        mlflow.set_tracking_uri(uri)


def test_unknown_alias_is_an_error_listing_the_known_aliases(store):
    uri = store[0]
    with pytest.raises(ValueError, match=f"aliases of '{NAME}': {ALIAS}"):
        resolve_model(f"models:/{NAME}@nope", tracking_uri=uri)
    with pytest.raises(ValueError, match="no registered model 'other'"):
        resolve_model("models:/other@champion", tracking_uri=uri)


@pytest.mark.parametrize("alias", ["latest", "v2", "bad alias"])
def test_reserved_or_malformed_alias_is_refused_before_logging(store, alias):
    uri, checkpoint, _, _ = store
    with pytest.raises(ValueError, match="alias: got"):
        _log(checkpoint, uri, registered_name=NAME, alias=alias)
    assert len(mlflow.MlflowClient(uri).search_model_versions(f"name = '{NAME}'")) == 1


def test_an_artifact_path_leaving_the_model_directory_is_refused(store, tmp_path):
    uri = store[0]
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}@{ALIAS}", dst_path=str(tmp_path / "m"),
                                                     tracking_uri=uri, registry_uri=uri))
    outside = tmp_path / "outside.pt"
    shutil.copy(store[1], outside)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["artifacts"]["checkpoint"]["path"] = "../../outside.pt"
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ValueError, match="leaves the model directory"):
        load_mlflow_dir(local)


def test_log_register_and_predict_through_a_real_tracking_server(mlflow_server, tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "ckpt", seed=1)
    video = make_video(tmp_path / "clip.mp4", width=64, height=48, num_frames=70)
    previous = mlflow.get_tracking_uri()
    try:
        info = _log(checkpoint, mlflow_server, registered_name="served", alias="current")
    finally:
        mlflow.set_tracking_uri(previous)
    capsys.readouterr()  # MLflow prints links to the run it ended
    assert mlflow.MlflowClient(mlflow_server).get_model_version_by_alias("served", "current").version == str(
        info.registered_model_version)
    common = [str(video), "--json", "--top", "3", "--clips", "1", "--crops", "1"]
    assert main(["predict", "--model", "models:/served@current", "--tracking-uri", mlflow_server, *common]) == 0
    served = json.loads(capsys.readouterr().out)
    assert main(["predict", "--checkpoint", str(checkpoint), *common]) == 0
    local = json.loads(capsys.readouterr().out)
    assert [t["class"] for t in served["top"]] == [t["class"] for t in local["top"]]
    np.testing.assert_allclose([t["score"] for t in served["top"]], [t["score"] for t in local["top"]], atol=1e-6)
