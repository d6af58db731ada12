"""``slowfast demo VIDEO``: the video re-encoded with what the model sees in it.

    slowfast demo clip.mp4 --checkpoint models/pretrain/model.pt --out clip.demo.mp4
    slowfast demo clip.mp4 --model models:/slowfast-kinetics@champion --out clip.demo.mp4 --cam
    slowfast demo movie.mkv --checkpoint models/ava/model.pt --person-detector models/person/model.pt --out m.mp4

What is drawn, as PySlowFast's demo (``tools/demo_net.py``) does it: the video is cut into segments of ``every``
seconds (1 s by default); each segment is scored with one clip of the model's geometry (αT frames, one every τ/α at
the model's rate) **centred on it**, and its result is drawn on all of its frames.

* A classifier: the top-k classes and their scores (softmax; per-class sigmoid for a multi-label model) at the top
  left, changing every segment.
* An AVA detector (Sec. 5): at each keyframe (the start of every segment, or the timestamps of an imported
  proposals file) person boxes come from our person detector or from the file; each box is labelled with the
  actions scoring at least ``threshold`` (best first, at most k), and the boxes are held until the next keyframe.
* ``cam``: a Grad-CAM panel per pathway (Slow, Fast) beside the video: the heat map of the top class (for the
  detector: of each box's top action) over the frame the pathway read nearest in time (:mod:`.gradcam`).

The model's frames come from the same decoder as training and evaluation (:func:`slowfast.data.decode.decode_videos`
into a temporary shard folder, the whole frame at the model's test size, as AVA inference), so the scores are those
the evaluate stages would compute for that clip. The drawn video is a second decode of the file at its own frame
rate (or ``fps``) and size (upright: rotation applied), written as H.264 yuv420p (:class:`.video.H264Writer`): it
lasts as long as the input and plays in a browser. Audio is not copied.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slowfast.data.decode import (VideoError, decode_videos, frame_rgb, open_video, output_size, resample,
                                  stream_origin)
from slowfast.data.sampling import centered_indices, frame_of_time
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import apply_view, full_view, normalize, view_boxes
from slowfast.models.slowfast import SlowFast, pack_pathways, slow_indices
from slowfast.tracking.models import Preprocessing
from slowfast.visualize.config import DemoConfig
from slowfast.visualize.draw import blend_heatmap, caption, draw_boxes, draw_labels
from slowfast.visualize.gradcam import grad_cam
from slowfast.visualize.video import H264Writer

log = logging.getLogger(__name__)

#: ``progress(phase, done, total)``: phase "score" (segments) then "draw" (output frames)
Progress = Callable[[str, int, int], None]
_VIDEO_ID = "video"


@dataclasses.dataclass
class Segment:
    """One scored clip: shown from ``start`` (seconds) until the next segment's start."""

    start: float
    labels: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # classifier: top-k
    boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))  # normalised
    box_labels: list[list[tuple[str, float]]] = dataclasses.field(default_factory=list)
    cams: list[np.ndarray] | None = None  # per pathway (T_p, h, w) float16 in [0, 1]
    cam_times: list[np.ndarray] | None = None  # per pathway: the seconds of its T_p frames


@dataclasses.dataclass(frozen=True)
class DemoResult:
    path: Path
    frames: int
    fps: float
    width: int
    height: int
    segments: list[Segment]


# ----------------------------------------------------------------------------------------------------- scoring
class _ModelFrames:
    """The video as the model reads it: decoded once into shards (model rate, short side = test size)."""

    def __init__(self, video: Path, tmp: str, pre: Preprocessing, max_seconds: float | None):
        decode = dataclasses.replace(pre.decode, short_side=pre.transform.test_size)
        windows = None
        if max_seconds is not None:  # stored frames: the first seconds plus half a clip (the last clip's end)
            half = pre.sampling.slow_frames * pre.sampling.tau / pre.sampling.fps / 2 + 1 / decode.fps
            windows = {_VIDEO_ID: [(0.0, max_seconds + half)]}
        report = decode_videos({_VIDEO_ID: video}, tmp, decode, windows=windows, progress=False)
        if report.failures:
            raise ValueError(f"video {video} cannot be decoded: {report.failures[0]['reason']}")
        self.shards = FrameShards(tmp)
        self.info = self.shards.info(_VIDEO_ID)
        self.pre = pre
        self.last = self.info.stored_frames - 1  # windows start at 0, so frames 0..last are stored
        self.duration = self.info.num_frames / self.info.fps
        if max_seconds is not None:
            self.duration = min(self.duration, max_seconds)
        self.view = full_view(self.info.height, self.info.width, pre.transform.test_size)

    def clip(self, seconds: float) -> tuple[np.ndarray, torch.Tensor]:
        """(frame indices, normalised clip (1, 3, αT, h, w)) of the clip centred at ``seconds``."""
        info = self.info
        center = min(frame_of_time(seconds, info.fps), self.last)
        idx = np.minimum(centered_indices(center, info.num_frames, self.pre.sampling, info.fps), self.last)
        frames = self.shards.read(_VIDEO_ID, idx)
        return idx, normalize(apply_view(frames, self.view)[None], self.pre.transform)

    def image(self, seconds: float) -> np.ndarray:
        """The stored (model-size) frame at ``seconds``, uint8 (h, w, 3)."""
        return self.shards.read(_VIDEO_ID, [min(frame_of_time(seconds, self.info.fps), self.last)])[0]


def _pathway_times(model: SlowFast, idx: np.ndarray, fps: float) -> list[np.ndarray]:
    """Seconds of the frames each pathway reads from the clip ``idx`` (as :func:`pack_pathways` picks them)."""
    times = []
    for name in model.config.pathways:
        if name == "slow" and len(idx) != model.config.slow_frames:
            times.append(idx[slow_indices(len(idx), model.config.slow_frames).numpy()] / fps)
        else:
            times.append(idx / fps)
    return times


def _scores(model: SlowFast, inputs: list[torch.Tensor], boxes: torch.Tensor | None,
            cam: bool) -> tuple[torch.Tensor, list[np.ndarray] | None]:
    """The model's scores of one clip (and its boxes), with the per-pathway Grad-CAM maps when ``cam``."""
    if cam:
        result = grad_cam(model, inputs, boxes=boxes)  # one clip: maps (1, T_p, h, w)
        return result.scores, [m[0].numpy().astype(np.float16) for m in result.maps]
    with torch.inference_mode():
        return (model(inputs) if boxes is None else model(inputs, boxes)), None


def score_classifier(model: SlowFast, frames: _ModelFrames, classes: Sequence[str], config: DemoConfig,
                     progress: Progress | None = None) -> list[Segment]:
    """One segment per ``every`` seconds, scored by the clip centred on it: top-k (class, score)."""
    n = max(1, math.ceil(frames.duration / config.every - 1e-9))
    segments = []
    for k in range(n):
        start = k * config.every
        middle = min(start + config.every / 2, frames.duration)
        idx, clip = frames.clip(middle)
        scores, cams = _scores(model, pack_pathways(clip, model.config), None, config.cam)
        probs = scores[0] if model.config.multilabel else torch.softmax(scores[0].float(), dim=0)
        top = torch.argsort(probs, descending=True, stable=True)[: config.top_k]
        segments.append(Segment(start, labels=[(classes[i], float(probs[i])) for i in top.tolist()], cams=cams,
                                cam_times=_pathway_times(model, idx, frames.info.fps) if cams else None))
        if progress:
            progress("score", k + 1, n)
    return segments


def score_detector(detector: SlowFast, frames: _ModelFrames, classes: Sequence[str], config: DemoConfig, *,
                   person_detector: Any = None, proposals: Sequence[tuple[float, np.ndarray]] | None = None,
                   progress: Progress | None = None) -> list[Segment]:
    """AVA: a segment per keyframe (every ``every`` seconds, or the ``proposals``' ``(seconds, (K, 4) boxes)``),
    its boxes scored by the clip centred on it; each box keeps its actions scoring >= ``threshold``."""
    from slowfast.detection.person import detect_persons

    if proposals is None:
        if person_detector is None:
            raise ValueError("an AVA detector needs person boxes: give a person detector or a proposals file")
        n = max(1, math.ceil(frames.duration / config.every - 1e-9))
        keyframes: list[tuple[float, np.ndarray | None]] = [(k * config.every, None) for k in range(n)]
    else:
        keyframes = sorted(((t, b) for t, b in proposals if 0 <= t < frames.duration + 1e-9), key=lambda p: p[0])
    segments = []
    for k, (t, boxes) in enumerate(keyframes):
        if boxes is None:
            found = detect_persons(person_detector, frames.image(t)[None], score_threshold=config.person_threshold)
            boxes = found[0][:, :4]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        segment = Segment(t, boxes=boxes)
        if len(boxes):
            idx, clip = frames.clip(t)
            pixels = torch.from_numpy(view_boxes(boxes, frames.info.height, frames.info.width, frames.view))
            rois = torch.cat([torch.zeros(len(pixels), 1), pixels], dim=1)
            scores, cams = _scores(detector, pack_pathways(clip, detector.config), rois, config.cam)
            for row in scores.float():
                order = torch.argsort(row, descending=True, stable=True)[: config.top_k].tolist()
                segment.box_labels.append([(classes[i], float(row[i])) for i in order if row[i] >= config.threshold])
            segment.cams = cams
            segment.cam_times = _pathway_times(detector, idx, frames.info.fps) if cams else None
        segments.append(segment)
        if progress:
            progress("score", k + 1, len(keyframes))
    return segments


# ----------------------------------------------------------------------------------------------------- drawing
def _panel_size(width: int, height: int, rotation: int, config: DemoConfig) -> tuple[int, int]:
    """(width, height) of the upright output panel: the input's, or its long side scaled to ``max_side``."""
    w, h = output_size(width, height, rotation, min(width, height))
    if config.max_side is not None and max(w, h) > config.max_side:
        scale = config.max_side / max(w, h)
        w, h = max(2, round(w * scale)), max(2, round(h * scale))
    return w, h


def _cam_panel(image: np.ndarray, segment: Segment | None, p: int, t: float, name: str) -> np.ndarray:
    if segment is None or segment.cams is None:
        return caption(image, f"{name}: -")
    times = segment.cam_times[p]
    j = int(np.argmin(np.abs(times - t)))
    return caption(blend_heatmap(image, segment.cams[p][j].astype(np.float32)), f"Grad-CAM {name}")


def draw_frame(image: np.ndarray, segment: Segment | None, t: float, *, pathways: Sequence[str] = (),
               detector: bool = False) -> np.ndarray:
    """The output frame at ``t`` seconds: ``image`` with the segment's labels or boxes, and one Grad-CAM panel per
    pathway beside it when the segment has maps."""
    if segment is None:
        main = image.copy()
    elif detector:
        main = draw_boxes(image, segment.boxes, segment.box_labels or [[] for _ in segment.boxes])
    else:
        main = draw_labels(image, segment.labels)
    if not pathways:
        return main
    return np.concatenate([main] + [_cam_panel(image, segment, p, t, name.capitalize())
                                    for p, name in enumerate(pathways)], axis=1)


def render_demo(video: str | os.PathLike[str], out: str | os.PathLike[str], segments: Sequence[Segment],
                config: DemoConfig, *, pathways: Sequence[str] = (), detector: bool = False,
                progress: Progress | None = None) -> DemoResult:
    """Re-encode ``video`` into ``out`` (H.264 yuv420p) with ``segments`` drawn (see the module docstring)."""
    video, out = Path(video), Path(out)
    try:
        container, stream = open_video(video)
    except VideoError as exc:
        raise ValueError(f"video {video} cannot be decoded: {exc}") from None
    starts = [s.start for s in segments]
    try:
        rate = Fraction(config.fps).limit_denominator(1001) if config.fps else (
            stream.average_rate or stream.guessed_rate or Fraction(30))
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
            container.duration / 1e6 if container.duration else None)
        limit = config.max_seconds
        total = math.ceil(min(x for x in (declared, limit, 1e9) if x is not None) * rate)
        size = None
        with H264Writer(out, rate) as writer:
            for k, frame, _ in resample(container.decode(stream), rate, origin=stream_origin(stream)):
                t = k / rate
                if limit is not None and t >= limit:
                    break
                if size is None:
                    size = _panel_size(frame.width, frame.height, int(getattr(frame, "rotation", 0) or 0), config)
                image = frame_rgb(frame, *size)
                i = bisect.bisect_right(starts, float(t)) - 1
                segment = segments[i] if i >= 0 else None
                writer.write(draw_frame(image, segment, float(t), pathways=pathways if config.cam else (),
                                        detector=detector))
                if progress:
                    progress("draw", writer.frames, max(total, writer.frames))
    finally:
        container.close()
    height, width = size[1], size[0] * (1 + (len(pathways) if config.cam else 0))
    log.info("wrote %s: %d frames at %.3f fps, %dx%d", out, writer.frames, float(rate), width, height)
    return DemoResult(out, writer.frames, float(rate), width, height, list(segments))


def run_demo(video: str | os.PathLike[str], out: str | os.PathLike[str], model: SlowFast, classes: Sequence[str],
             preprocessing: Preprocessing, config: DemoConfig = DemoConfig(), *, person_detector: Any = None,
             proposals: Sequence[tuple[float, np.ndarray]] | None = None,
             progress: Progress | None = None) -> DemoResult:
    """Score ``video`` with ``model`` (a classifier, or an AVA detector with person boxes from ``person_detector``
    or ``proposals``) and write the drawn video to ``out``. ``classes`` name the model's outputs in order."""
    from slowfast.models.detector import AvaDetector

    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"video {video} does not exist")
    if len(classes) != model.config.num_classes:
        raise ValueError(f"classes: {len(classes)} names for a model with {model.config.num_classes} outputs")
    is_detector = isinstance(model, AvaDetector)
    model.eval()
    with tempfile.TemporaryDirectory(prefix="slowfast-demo-") as tmp:
        frames = _ModelFrames(video, tmp, preprocessing, config.max_seconds)
        if is_detector:
            segments = score_detector(model, frames, classes, config, person_detector=person_detector,
                                      proposals=proposals, progress=progress)
        else:
            segments = score_classifier(model, frames, classes, config, progress=progress)
    return render_demo(video, out, segments, config, pathways=model.config.pathways, detector=is_detector,
                       progress=progress)


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a video file (any format FFmpeg reads)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path,
                        help="a slowfast/1 classifier or slowfast-ava-detector/1 checkpoint (classes.json beside it)")
    source.add_argument("--model", help="an MLflow model URI: models:/NAME@ALIAS, models:/NAME/VERSION, "
                        "runs:/RUN_ID/model")
    parser.add_argument("--tracking-uri",
                        help="MLflow store of --model (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4, or .mkv / .mov)")
    parser.add_argument("--classes", type=Path, help="JSON list of class names (default: classes.json beside)")
    parser.add_argument("--top", type=int, default=3, help="classes per segment, actions per box")
    parser.add_argument("--every", type=float, default=1.0, help="seconds per scored clip / between AVA keyframes")
    parser.add_argument("--cam", action="store_true", help="add a Grad-CAM panel per pathway (Slow, Fast)")
    parser.add_argument("--fps", type=float, help="output frame rate (default: the input's)")
    parser.add_argument("--max-seconds", type=float, help="only the first seconds of the video")
    parser.add_argument("--max-side", type=int, help="scale the output so that its long side is at most this")
    parser.add_argument("--short-side", type=int, help="model input short side (default: the model's test size)")
    ava = parser.add_argument_group("AVA detector")
    boxes = ava.add_mutually_exclusive_group()
    boxes.add_argument("--person-detector", type=Path, help="person detector checkpoint (slowfast-person-detector/1)")
    boxes.add_argument("--proposals", type=Path, help="person boxes: PySlowFast CSV or MMAction2 pickle")
    ava.add_argument("--video-id", help="the video's id in --proposals (default: the file name without suffix)")
    ava.add_argument("--video-start-sec", type=int, default=0,
                     help="timestamp of the video's first frame in --proposals (AVA movies: 900)")
    ava.add_argument("--threshold", type=float, default=0.3, help="least action score drawn on a box")
    ava.add_argument("--person-threshold", type=float, help="person box score threshold (default: the detector's)")


def _classifier_twin(config: Any) -> Any:
    """The classifier config a detector was built from (the preset's res5 and head), to find its preset's geometry:
    :func:`~slowfast.models.detector.build_detector` only sets res5 dilation 2 and a multi-label head."""
    from slowfast.models.config import SlowFastConfig

    plain = SlowFastConfig()
    return dataclasses.replace(config, res5_dilation=plain.res5_dilation, multilabel=plain.multilabel)


def _load(args: argparse.Namespace) -> tuple[SlowFast, list[str], Preprocessing]:
    """(model, class names, preprocessing) of ``--checkpoint`` (classifier or AVA detector) or ``--model``."""
    from slowfast.config import from_mapping
    from slowfast.data.labels import read_class_file
    from slowfast.models.checkpoint import DETECTOR_FORMAT, read_class_names, torch_load_weights_only
    from slowfast.models.detector import load_detector
    from slowfast.tracking.models import ARTIFACTS, _read_json, infer_preprocessing, resolve_model
    from slowfast.tracking.runs import TrackingUnavailableError, tracking_uri

    if args.model:
        try:
            model, classes, pre = resolve_model(args.model, tracking_uri=args.tracking_uri or tracking_uri("."))
        except TrackingUnavailableError as exc:
            raise ValueError(str(exc)) from None
    else:
        path = args.checkpoint
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        payload = torch_load_weights_only(path)
        if isinstance(payload, dict) and payload.get("format") == DETECTOR_FORMAT:
            model = load_detector(path)
            classes = read_class_names(path, model.config.num_classes)
            pre_path = path.with_name(ARTIFACTS["preprocessing"])
            pre = (from_mapping(Preprocessing, _read_json(pre_path, "preprocessing"), prefix=str(pre_path))
                   if pre_path.is_file() else infer_preprocessing(_classifier_twin(model.config),
                                                                  payload.get("meta") or {}))
        else:
            model, classes, pre = resolve_model(path)
    if args.classes is not None:
        if not args.classes.is_file():
            raise FileNotFoundError(f"--classes: {args.classes} does not exist")
        classes = [str(c) for c in read_class_file(args.classes)]
        if len(classes) != model.config.num_classes:
            raise ValueError(f"--classes: {args.classes} names {len(classes)} classes, the model has "
                             f"{model.config.num_classes} outputs")
    if args.short_side is not None:
        pre = dataclasses.replace(pre, transform=dataclasses.replace(pre.transform, test_size=args.short_side))
    return model, classes, pre


def _proposals(args: argparse.Namespace) -> list[tuple[float, np.ndarray]]:
    from slowfast.detection.proposals import read_proposals

    df = read_proposals(args.proposals)
    video_id = args.video_id or args.video.stem
    mine = df[df["video_id"] == video_id]
    if mine.empty:
        known = ", ".join(sorted(map(str, df["video_id"].unique()))[:5]) or "none"
        raise ValueError(f"--proposals: no boxes for video id {video_id!r} in {args.proposals} (ids: {known}; "
                         "set --video-id)")
    return [(float(ts) - args.video_start_sec, g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
            for ts, g in mine.groupby("timestamp", sort=True)]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    config = DemoConfig(top_k=args.top, every=args.every, threshold=args.threshold,
                        person_threshold=args.person_threshold, cam=args.cam, fps=args.fps,
                        max_seconds=args.max_seconds, max_side=args.max_side)
    if args.short_side is not None and not 8 <= args.short_side <= 4096:
        raise ValueError(f"--short-side: got {args.short_side}, allowed: 8..4096")
    if not args.video.is_file():
        raise FileNotFoundError(f"video {args.video} does not exist")
    model, classes, pre = _load(args)
    from slowfast.models.detector import AvaDetector

    person = proposals = None
    if isinstance(model, AvaDetector):
        if args.proposals:
            proposals = _proposals(args)
        elif args.person_detector:
            from slowfast.detection.person import load_person_detector

            if not args.person_detector.is_file():
                raise FileNotFoundError(f"--person-detector: {args.person_detector} does not exist")
            person = load_person_detector(args.person_detector)
        else:
            raise ValueError("an AVA detector checkpoint needs person boxes: --person-detector CKPT or "
                             "--proposals FILE")
    bars: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if phase not in bars:
            for bar in bars.values():
                bar.close()
            bars[phase] = tqdm(total=total, desc={"score": "scoring clips", "draw": "drawing frames"}[phase],
                               unit="clip" if phase == "score" else "frame", leave=False)
        bar = bars[phase]
        bar.total = max(bar.total or 0, total)
        bar.update(done - bar.n)

    try:
        result = run_demo(args.video, args.out, model, classes, pre, config, person_detector=person,
                          proposals=proposals, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    log.info("%s: %d frames, %.3f fps, %dx%d, %d scored clips", result.path, result.frames, result.fps,
             result.width, result.height, len(result.segments))
    return 0
