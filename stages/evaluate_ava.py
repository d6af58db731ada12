"""Stage `evaluate_ava`: the detector scores every person proposal of every validation keyframe (one clip centred
on the keyframe, short side ``transform.test_size``, fully convolutional), and frame mAP@0.5 over the label map's
classes is computed as the official ActivityNet evaluator of ``ava.evaluate.metric.protocol`` does (2019, the paper's:
excluded timestamps dropped; 2020: only keyframes of the ground truth; at most 50 detections per keyframe) on
``detections.csv``, the detections in the official CSV format, so ``slowfast eval-ava`` (or the official script) gives
the same number from that file. The chance baseline is the mAP of the same boxes with random scores.

Figure 3 of the paper (per-class AP, Slow-only vs SlowFast): the run records its architecture and a fingerprint of
its evaluation data in MLflow; when MLflow holds a finished run of the other architecture on the same data (e.g. the
Slow-only baseline of ``dvc exp run -S model.preset=slow_tiny``), the pair is drawn as ``figure3.png`` with its data
``figure3.csv`` (both in ``--out``); otherwise only this model's ``per_class_ap.png`` is written.

    python -m stages.evaluate_ava --raw data/raw/ava --shards data/shards/ava --model models/ava/model.pt \
        --proposals data/proposals/ava_val.csv --out reports/evaluate_ava --metrics reports/evaluate_ava.json
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from slowfast.data.datasets import AvaDataset
from slowfast.data.formats.ava import read_ava_csv, write_ava_csv
from slowfast.data.shards import FrameShards
from slowfast.data.sources import AvaSource
from slowfast.detection.proposals import read_proposals_csv
from slowfast.engine.detect import detect_actions
from slowfast.metrics.ava import evaluate_ava, plot_per_class_ap
from slowfast.models import pack_pathways
from slowfast.models.detector import load_detector
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.tracking.compare import (
    TAG_ARCH,
    TAG_EVAL_DATA,
    data_fingerprint,
    result_metrics,
    write_figure3_if_paired,
)
from slowfast.tracking.models import Preprocessing
from slowfast.utils.io import atomic_path, write_json_atomic
from slowfast.visualize.demo import run_demo

log = logging.getLogger("stages.evaluate_ava")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "model", "proposals", "out", "metrics"], argv)
    e = params.ava.evaluate

    source = AvaSource(args.raw, video_start_sec=params.ava.video_start_sec,
                       files=params.ava.files)
    label_map = source.label_map
    class_ids = sorted(label_map)
    detector = load_detector(args.model)
    arch = detector.config.arch
    proposals = read_proposals_csv(args.proposals).assign(action_id=class_ids[0])
    shards = FrameShards(args.shards)
    dataset = AvaDataset(shards, proposals, class_ids=class_ids,
                         sampling=params.model.sampling(fps=params.decode.frames.fps), transform=e.transform,
                         pack=functools.partial(pack_pathways, config=detector.config), train=False,
                         video_start_sec=params.ava.video_start_sec)
    groundtruth, exclusions = source.boxes(e.split), source.excluded(e.split)
    out = Path(args.out)
    eval_data = data_fingerprint(groundtruth, proposals, label_map=label_map, exclusions=sorted(exclusions))
    with tracked("evaluate_ava", args, params, "model", "ava", tags={TAG_ARCH: arch, TAG_EVAL_DATA: eval_data}) as run:
        detections = detect_actions(detector, dataset, class_ids, batch_size=e.batch_size)
        # Detections in the official CSV format, and the mAP of exactly that file: any evaluator scores it alike.
        write_ava_csv(detections, out / "detections.csv")
        detections = read_ava_csv(out / "detections.csv", detections=True)
        metric = dict(exclusions=exclusions if e.metric.protocol == "activitynet-2019" else None,
                      max_per_keyframe=e.metric.max_per_keyframe, iou=e.metric.iou, protocol=e.metric.protocol)
        result = evaluate_ava(groundtruth, detections, label_map, **metric)
        shuffled = detections.assign(score=np.random.default_rng(0).random(len(detections)))
        chance = evaluate_ava(groundtruth, shuffled, label_map, **metric)
        metrics = {"map": result.map, "chance_map": chance.map, "keyframes": len(dataset),
                   "proposals": len(proposals), "detections": len(detections)}
        with atomic_path(out / "per_class_ap.csv") as tmp:
            pd.DataFrame({"class_id": class_ids, "class": [label_map[c] for c in class_ids],
                          "ap": [result.per_class_ap.get(c, float("nan")) for c in class_ids],
                          "groundtruth": [result.num_groundtruth.get(c, 0) for c in class_ids]}).to_csv(tmp, index=False)
        plot_per_class_ap({params.model.preset: result}, label_map, out / "per_class_ap.png")
        write_json_atomic(args.metrics, metrics)
        run.log_metrics({**metrics, **result_metrics(result)})
        # The first movie's first seconds with its proposals and their actions, viewable in the MLflow UI.
        artifacts = ["per_class_ap.csv", "per_class_ap.png", "detections.csv"]
        if dataset.keyframes:
            movie = dataset.keyframes[0][0]
            keyframes = [(ts - params.ava.video_start_sec, g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
                         for ts, g in proposals[proposals["video_id"] == movie].groupby("timestamp")]
            run_demo(shards.info(movie).path, out / "demo.mp4", detector, [label_map[c] for c in class_ids],
                     Preprocessing(params.model.sampling(fps=params.decode.frames.fps), e.transform,
                                   params.decode.frames), e.demo, proposals=keyframes)
            artifacts.append("demo.mp4")
        else:
            log.warning("no proposal on any %s keyframe: no demo video", e.split)
        for name in artifacts:
            run.log_artifact(out / name)
        log.info("AVA frame mAP@0.5 %.4f (chance %.4f) on %d keyframes", result.map, chance.map, len(dataset))
        write_figure3_if_paired(result, arch=arch, eval_data=eval_data, label_map=label_map, out_dir=out,
                                experiment=params.tracking.experiment, run=run)
    return 0


if __name__ == "__main__":
    run_stage(main)
