"""Stage `evaluate_charades`: multi-view testing of the fine-tuned Charades model (Sec. 6: ``test_clips`` clips × 3
crops, sigmoid scores max-pooled over views) and mAP over the classes with at least one positive.

The chance baseline is stated beside it: the mAP of scores that carry no information, i.e. the mean over classes of
each class's positive rate (the expected AP of a random ranking).

    python -m stages.evaluate_charades --raw data/raw/charades --shards data/shards/charades \
        --model models/charades/model.pt --out reports/evaluate_charades --metrics reports/evaluate_charades.json
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pandas as pd

from slowfast.data.datasets import CharadesDataset
from slowfast.data.shards import FrameShards
from slowfast.data.sources import CharadesSource
from slowfast.engine.evaluate import evaluate, write_scores
from slowfast.metrics.charades import mean_average_precision
from slowfast.models import load_model, pack_pathways
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.utils.io import atomic_path, write_json_atomic

log = logging.getLogger("stages.evaluate_charades")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["raw", "shards", "model", "out", "metrics"], argv)
    e = params.charades.evaluate

    source = CharadesSource(args.raw)
    classes = source.classes
    model = load_model(args.model)
    sampling = params.model.sampling(fps=params.decode.frames.fps, test_clips=e.test_clips)
    dataset = CharadesDataset(FrameShards(args.shards), source.videos(e.split), num_classes=len(classes),
                              sampling=sampling, transform=e.transform,
                              pack=functools.partial(pack_pathways, config=model.config), train=False)
    out = Path(args.out)
    with tracked("evaluate_charades", args, params, "model", "charades") as run:
        scores = evaluate(model, dataset, e.eval)
        mean_ap, per_class = mean_average_precision(scores.scores, scores.labels)
        prevalence = scores.labels.mean(axis=0)
        metrics = {"map": float(mean_ap), "chance_map": float(prevalence[prevalence > 0].mean()),
                   "videos": len(scores.video_ids), "classes_with_positives": int((prevalence > 0).sum()),
                   "views_per_video": sampling.test_clips * e.transform.test_crops}
        write_scores(scores, out / "scores.parquet")
        with atomic_path(out / "per_class_ap.csv") as tmp:
            pd.DataFrame({"class": classes, "ap": per_class, "positives": scores.labels.sum(axis=0)}).to_csv(
                tmp, index=False)
        write_json_atomic(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(out / "per_class_ap.csv")
        log.info("Charades mAP %.4f (chance %.4f) over %d videos", metrics["map"], metrics["chance_map"],
                 metrics["videos"])
    return 0


if __name__ == "__main__":
    run_stage(main)
