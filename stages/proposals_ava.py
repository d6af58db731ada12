"""Stage `proposals_ava`: person proposals for every AVA validation keyframe (Sec. 5).

A person detector is pre-trained on rendered scenes (the role COCO plays for the paper's Faster R-CNN), fine-tuned
on the train split's person boxes, and run on every validation keyframe; boxes scoring above
``ava.proposals.score_threshold`` (0.8, as the paper) are the proposals. Reports person AP@0.5 over all detections
and recall / precision of the kept ones (the paper: 93.9 AP@50, 91.1% recall, 90.7% precision on AVA). With
``ava.proposals.import_file`` set, published proposals (PySlowFast CSV or MMAction2 pickle) are used instead; the
file must lie in the repository's ``proposals/`` folder, a dependency of this stage in ``dvc.yaml``, so that a new or
changed file re-runs the stage (and everything scored on its proposals).

    python -m stages.proposals_ava --raw data/raw/ava --shards data/shards/ava --out models/proposals_ava \
        --proposals data/proposals/ava_val.csv --metrics reports/proposals_ava.json
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from slowfast.data.sampling import frame_of_time
from slowfast.data.shards import FrameShards
from slowfast.data.sources import AvaSource
from slowfast.detection.person import (
    build_person_detector,
    detect_persons,
    person_detection_metrics,
    render_person_scenes,
    save_person_detector,
    train_person_detector,
)
from slowfast.detection.proposals import filter_proposals, proposals_from_detections, read_proposals, write_proposals_csv
from slowfast.engine.train import seed_everything
from slowfast.config import ConfigError
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.proposals_ava")

IMPORT_DIR = "proposals"  # the stage's DVC dependency for imported proposals (dvc.yaml)


def check_import_file(path: str) -> Path:
    """``ava.proposals.import_file`` must be an existing file inside ``proposals/`` (relative to the repository), the
    folder dvc.yaml lists as this stage's dependency; anything else could change without DVC noticing."""
    file = Path(path)
    inside = not file.is_absolute() and file.parts[:1] == (IMPORT_DIR,) and ".." not in file.parts
    if not inside:
        raise ConfigError("ava.proposals.import_file", f"got {path!r}; must be a file in {IMPORT_DIR}/ (the stage's "
                          f"DVC dependency), e.g. {IMPORT_DIR}/{file.name}")
    if not file.is_file():
        raise ConfigError("ava.proposals.import_file", f"{path} does not exist")
    return file


def keyframes(source: AvaSource, shards: FrameShards, split: str, video_start_sec: int):
    """(keys, keyframe images (N, H, W, 3) uint8, ground-truth person boxes per keyframe) of ``split``."""
    boxes = source.boxes(split)
    boxes = boxes[boxes["video_id"].isin(set(shards.videos()))]
    keys, images, people = [], [], []
    for (video_id, timestamp), frame in boxes.groupby(["video_id", "timestamp"], sort=True):
        info = shards.info(video_id)
        index = min(frame_of_time(int(timestamp) - video_start_sec, info.fps), info.num_frames - 1)
        index -= index % info.keep_every  # shards that keep every 2nd frame (decode.frames.keep_every)
        keys.append((str(video_id), int(timestamp)))
        images.append(shards.read(video_id, [index])[0])
        people.append(frame.drop_duplicates(["person_id"])[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
    return keys, np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8), people


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "out", "proposals", "metrics"], argv)
    p = params.ava.proposals
    import_file = check_import_file(p.import_file) if p.import_file else None
    source = AvaSource(args.raw, video_start_sec=params.ava.video_start_sec, files=params.ava.files)
    shards = FrameShards(args.shards)
    val_keys, val_images, val_people = keyframes(source, shards, params.ava.evaluate.split,
                                                 params.ava.video_start_sec)
    with tracked("proposals_ava", args, params, "ava") as run:
        if import_file is not None:
            imported = read_proposals(import_file)
            # The stage's model output names where its proposals came from (there is no detector to save).
            write_json_atomic(Path(args.out) / "imported.json", {"import_file": import_file.as_posix(),
                                                                 "sha256": hashlib.sha256(import_file.read_bytes())
                                                                 .hexdigest()})
            by_key = {key: g[["x1", "y1", "x2", "y2", "score"]].to_numpy(np.float32)
                      for key, g in imported.groupby(["video_id", "timestamp"])}
            detections = [by_key.get(key, np.zeros((0, 5), np.float32)) for key in val_keys]
            proposals = filter_proposals(imported, p.score_threshold)
            # The stage's model output exists either way (DVC requires it): here it says where proposals came from.
            write_json_atomic(Path(args.out) / "imported.json", {"import_file": str(p.import_file)})
        else:
            seed_everything(p.seed)  # the initial weights: the same on every run
            model = build_person_detector(p.detector)
            if p.pretrain_scenes:
                height, width = val_images.shape[1:3]
                images, boxes = render_person_scenes(p.pretrain_scenes, seed=p.seed, height=height, width=width)
                train_person_detector(model, images, boxes, p.pretrain, seed=p.seed,
                                      on_epoch_end=lambda e, m: run.log_metrics(
                                          {f"pretrain_{k}": v for k, v in m.items()}, step=e))
            _, train_images, train_people = keyframes(source, shards, "train", params.ava.video_start_sec)
            if not len(train_images):
                raise SystemExit(f"proposals_ava: no annotated train keyframe of {args.raw} is in the shards")
            train_person_detector(model, train_images, train_people, p.finetune, seed=p.seed + 1,
                                  on_epoch_end=lambda e, m: run.log_metrics(
                                      {f"finetune_{k}": v for k, v in m.items()}, step=e))
            save_person_detector(model, Path(args.out) / "person_detector.pt")
            detections = detect_persons(model, val_images, score_threshold=0.0)  # all scores, for AP
            proposals = filter_proposals(proposals_from_detections(val_keys, detections), p.score_threshold)
        metrics = person_detection_metrics(detections, val_people, iou=0.5, score_threshold=p.score_threshold)
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics.update(keyframes=len(val_keys), proposals=len(proposals))
        write_proposals_csv(proposals, args.proposals)
        write_json_atomic(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.proposals)
        log.info("person AP@0.5 %.3f, recall %.3f, precision %.3f; %d proposals on %d keyframes",
                 metrics.get("ap50", float("nan")), metrics.get("recall", float("nan")),
                 metrics.get("precision", float("nan")), len(proposals), len(val_keys))
    return 0


if __name__ == "__main__":
    run_stage(main)
