"""`slowfast demo`: real encoded videos of several containers and codecs in, a browser-playable H.264 video out,
with the labels / AVA boxes / Grad-CAM panels drawn where they belong and the rest of the picture untouched."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from slowfast.cli import main
from slowfast.data.decode import frame_rgb
from slowfast.detection.person import build_person_detector, load_person_detector, save_person_detector
from slowfast.models import create_model
from slowfast.models.checkpoint import save_model
from slowfast.models.detector import build_detector, load_detector
from slowfast.tracking.models import infer_preprocessing, load_local
from slowfast.visualize.demo import DemoConfig, run_demo
from tests.data.videos import make_video

CLASSES = ["waving", "jumping", "sitting"]
ACTIONS = ["stand", "sit", "walk"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A random slowfast_tiny with a wide fc (scores far from uniform) and classes.json beside it."""
    root = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    model = create_model("slowfast_tiny", num_classes=3)
    torch.nn.init.normal_(model.head.fc.weight, std=2.0)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    return save_model(model, root / "model.pt", meta={"preset": "slowfast_tiny"})


@pytest.fixture(scope="module")
def detector(tmp_path_factory, classifier) -> Path:
    """A random AVA detector of the slowfast_tiny architecture whose fc makes every action score high."""
    root = tmp_path_factory.mktemp("detector")
    torch.manual_seed(0)
    model = build_detector(load_local(classifier).model.config, num_classes=3)
    torch.nn.init.constant_(model.head.fc.bias, 3.0)  # sigmoid(3) = 0.95: every action drawn above 0.3
    (root / "classes.json").write_text(json.dumps(ACTIONS))
    return save_model(model, root / "model.pt")


def decoded(path: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream, dict]:
    """Upright RGB frames of ``path`` and facts of its stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = []
        for frame in container.decode(stream):
            rotation = int(getattr(frame, "rotation", 0) or 0)
            w, h = (frame.height, frame.width) if rotation % 180 else (frame.width, frame.height)
            frames.append(frame_rgb(frame, w, h))
        facts = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                 "rate": stream.average_rate, "duration": float(container.duration / 1e6) if container.duration
                 else None}
    return frames, stream, facts


def demo(*args) -> int:
    return main(["demo", *map(str, args)])


VIDEOS = {  # name: (suffix, make_video keyword arguments)
    "mp4-h264": (".mp4", {"codec": "libx264"}),
    "mkv-vp9": (".mkv", {"codec": "libvpx-vp9"}),
    "mkv-mpeg4": (".mkv", {"codec": "mpeg4"}),
    "webm-vp9": (".webm", {"codec": "libvpx-vp9"}),
    "avi-mjpeg": (".avi", {"codec": "mjpeg"}),
    "avi-mjpeg-odd-size-25fps": (".avi", {"codec": "mjpeg", "width": 81, "height": 61, "rate": 25}),
    "mp4-rotated": (".mp4", {"codec": "libx264", "rotation": 90}),
}


@pytest.mark.parametrize("name", list(VIDEOS))
def test_demo_of_any_container_is_browser_h264_of_the_same_duration_with_labels_drawn(name, classifier, tmp_path):
    suffix, kwargs = VIDEOS[name]
    kwargs = {"width": 96, "height": 64, "num_frames": 60, **kwargs}
    video = make_video(tmp_path / f"in{suffix}", **kwargs)
    out = tmp_path / "out.mp4"
    assert demo(video, "--checkpoint", classifier, "--out", out) == 0

    source, _, src = decoded(video)
    drawn, _, dst = decoded(out)
    assert dst["codec"] == "h264" and dst["pix_fmt"] == "yuv420p"
    assert dst["rate"] == src["rate"] == Fraction(kwargs.get("rate", 30))
    assert len(drawn) == len(source) == kwargs["num_frames"]
    assert dst["duration"] == pytest.approx(kwargs["num_frames"] / float(src["rate"]), abs=1.5 / float(src["rate"]))
    h, w = source[0].shape[:2]
    if kwargs.get("rotation"):
        assert (h, w) == (kwargs["width"], kwargs["height"])  # upright: sides swapped
    assert drawn[0].shape[:2] == (h + h % 2, w + w % 2)  # yuv420p: odd sides get one repeated row / column
    for i in (0, len(source) // 2, len(source) - 1):
        a, b = source[i].astype(np.int16), drawn[i][:h, :w].astype(np.int16)
        label = np.abs(a[: h // 6, : w // 3] - b[: h // 6, : w // 3]).mean()
        far = np.abs(a[h // 2 :, w // 2 :] - b[h // 2 :, w // 2 :]).mean()
        assert label > 20, f"frame {i}: the label panel is not drawn (mean difference {label:.1f})"
        assert far < 8, f"frame {i}: pixels away from the labels changed (mean difference {far:.1f})"


def test_labels_change_per_second_and_follow_the_fps_flag(classifier, tmp_path):
    video = make_video(tmp_path / "in.mp4", width=96, height=64, num_frames=90)
    out = tmp_path / "out.mp4"
    model, classes, pre = load_local(classifier)
    result = run_demo(video, out, model, classes, pre, DemoConfig(fps=10, top_k=2))
    assert [s.start for s in result.segments] == [0.0, 1.0, 2.0]  # one clip per second of the 3 s video
    assert all(len(s.labels) == 2 and s.labels[0][1] >= s.labels[1][1] for s in result.segments)
    drawn, _, facts = decoded(out)
    assert facts["rate"] == 10 and len(drawn) == result.frames == 30  # 3 s at 10 fps

    short = run_demo(video, tmp_path / "short.mp4", model, classes, pre, DemoConfig(max_seconds=1.5, max_side=48))
    drawn, _, facts = decoded(tmp_path / "short.mp4")
    assert len(drawn) == short.frames == 45 and [s.start for s in short.segments] == [0.0, 1.0]
    assert drawn[0].shape[:2] == (32, 48)  # 96x64 scaled to a 48 px long side


def test_ava_boxes_from_proposals_are_drawn_and_held_until_the_next_keyframe(detector, tmp_path):
    video = make_video(tmp_path / "movie.mp4", width=160, height=120, num_frames=90)
    boxes = {0: (0.55, 0.45, 0.95, 0.95), 2: (0.05, 0.45, 0.45, 0.95)}  # right box at 0 s, left box at 2 s
    (tmp_path / "proposals.csv").write_text("".join(
        f"movie,{900 + t},{x1},{y1},{x2},{y2},,0.99\n" for t, (x1, y1, x2, y2) in boxes.items()))
    out = tmp_path / "out.mp4"
    assert demo(video, "--checkpoint", detector, "--proposals", tmp_path / "proposals.csv",
                "--video-start-sec", 900, "--out", out) == 0
    source, _, _ = decoded(video)
    drawn, _, facts = decoded(out)
    assert facts["codec"] == "h264" and len(drawn) == 90

    def box_edge(frame: np.ndarray, box) -> float:
        """Mean difference to the source along the box's left edge (below the label, above its bottom)."""
        x1, y1, x2, y2 = box
        x, ya, yb = round(x1 * 160), round((y1 + 0.1) * 120), round((y2 - 0.05) * 120)
        return float(np.abs(frame[ya:yb, x : x + 2].astype(np.int16) - source_frame[ya:yb, x : x + 2]).mean())

    for i, (shown, hidden) in {15: (0, 2), 45: (0, 2), 75: (2, 0)}.items():  # 0.5 s, 1.5 s (held), 2.5 s
        source_frame = source[i].astype(np.int16)
        assert box_edge(drawn[i], boxes[shown]) > 30, f"frame {i}: the box of keyframe {shown} s is not drawn"
        assert box_edge(drawn[i], boxes[hidden]) < 10, f"frame {i}: the box of keyframe {hidden} s is drawn"
    # the label above the right box names an action
    x1, y1 = round(0.55 * 160), round(0.45 * 120)
    label = np.s_[y1 - 8 : y1, x1 : x1 + 30]
    assert np.abs(drawn[15][label].astype(np.int16) - source[15][label]).mean() > 20


def test_ava_boxes_from_the_person_detector_at_every_keyframe(detector, tmp_path):
    video = make_video(tmp_path / "movie.mkv", codec="mpeg4", width=128, height=96, num_frames=60)
    person = save_person_detector(build_person_detector(), tmp_path / "person.pt")
    out = tmp_path / "out.mp4"
    assert demo(video, "--checkpoint", detector, "--person-detector", person, "--person-threshold", 0.0,
                "--every", 0.5, "--out", out) == 0
    drawn, _, facts = decoded(out)
    assert facts["codec"] == "h264" and len(drawn) == 60
    det = load_detector(detector)
    result = run_demo(video, tmp_path / "again.mp4", det, ACTIONS, infer_preprocessing(det.config),
                      DemoConfig(every=0.5, person_threshold=0.0), person_detector=load_person_detector(person))
    assert [s.start for s in result.segments] == [0.0, 0.5, 1.0, 1.5]
    assert all(len(s.boxes) >= 1 and len(s.box_labels) == len(s.boxes) for s in result.segments)
    assert all(lines and all(score >= 0.3 for _, score in lines) for s in result.segments for lines in s.box_labels)


def test_ava_detector_without_person_boxes_is_a_one_line_error(detector, tmp_path, capsys):
    video = make_video(tmp_path / "movie.mp4", num_frames=30)
    assert demo(video, "--checkpoint", detector, "--out", tmp_path / "out.mp4") == 2
    err = capsys.readouterr().err
    assert "--person-detector" in err and "Traceback" not in err and not (tmp_path / "out.mp4").exists()


def test_bad_flags_fail_before_any_work_naming_the_flag(classifier, tmp_path, capsys):
    video = make_video(tmp_path / "in.mp4", num_frames=30)
    assert demo(video, "--checkpoint", classifier, "--out", tmp_path / "o.mp4", "--every", "0") == 2
    assert "every" in capsys.readouterr().err
    assert demo(tmp_path / "missing.mp4", "--checkpoint", classifier, "--out", tmp_path / "o.mp4") == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "o.mp4").exists()


def test_cam_adds_one_heat_map_panel_per_pathway(classifier, detector, tmp_path):
    video = make_video(tmp_path / "in.webm", codec="libvpx-vp9", width=96, height=64, num_frames=45)
    out = tmp_path / "out.mp4"
    assert demo(video, "--checkpoint", classifier, "--cam", "--out", out) == 0
    source, _, _ = decoded(video)
    drawn, _, facts = decoded(out)
    assert facts["codec"] == "h264" and len(drawn) == 45
    assert drawn[0].shape[:2] == (64, 3 * 96)  # video | Grad-CAM Slow | Grad-CAM Fast
    for panel in (1, 2):
        tinted = drawn[20][: 48, panel * 96 : (panel + 1) * 96].astype(np.int16) - source[20][:48].astype(np.int16)
        assert np.abs(tinted).mean() > 10  # heat colours blended over the frame

    proposals = tmp_path / "p.csv"
    proposals.write_text("in,0,0.2,0.2,0.8,0.9,,0.9\nin,1,0.2,0.2,0.8,0.9,,0.9\n")
    assert demo(video, "--checkpoint", detector, "--proposals", proposals, "--cam", "--out", out) == 0
    drawn, _, _ = decoded(out)
    assert drawn[0].shape[:2] == (64, 3 * 96)


def test_demo_of_a_registered_model_draws_its_class_names(classifier, tmp_path):
    """``--model models:/NAME@ALIAS``: the model, its class names and its preprocessing come from the registry."""
    import mlflow

    from slowfast.data.sampling import SamplingConfig
    from slowfast.data.transforms import TransformConfig
    from slowfast.tracking.models import log_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run():
            log_model(classifier, classes=["alpha", "beta", "gamma"], registered_name="sf", alias="champion",
                      sampling=SamplingConfig(slow_frames=4, alpha=8, tau=16),
                      transform=TransformConfig(train_scale=(64, 80), crop=64, test_size=64))
    finally:
        mlflow.set_tracking_uri(previous)
    video = make_video(tmp_path / "in.mp4", width=96, height=64, num_frames=45)
    out = tmp_path / "out.mp4"
    assert demo(video, "--model", "models:/sf@champion", "--tracking-uri", uri, "--out", out) == 0
    drawn, _, facts = decoded(out)
    assert facts["codec"] == "h264" and len(drawn) == 45
    # the registry's model, names and preprocessing: the segments of the local checkpoint under those names
    from slowfast.tracking.models import Preprocessing, resolve_model

    registered = resolve_model("models:/sf@champion", tracking_uri=uri)
    assert registered.classes == ["alpha", "beta", "gamma"]
    pre = Preprocessing(sampling=SamplingConfig(slow_frames=4, alpha=8, tau=16),
                        transform=TransformConfig(train_scale=(64, 80), crop=64, test_size=64))
    local = run_demo(video, tmp_path / "local.mp4", load_local(classifier).model, registered.classes, pre)
    via_registry = run_demo(video, tmp_path / "registry.mp4", *registered)
    assert [s.labels for s in via_registry.segments] == [s.labels for s in local.segments]
    assert {name for s in local.segments for name, _ in s.labels} == {"alpha", "beta", "gamma"}
