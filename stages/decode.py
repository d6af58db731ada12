"""Stage `decode_<dataset>`: decode every video of one dataset once into Parquet frame shards.

Kinetics and Charades videos are decoded whole; for AVA only the windows around the annotated keyframes are
decoded (each keyframe's clip span, T·τ frames at the target fps, plus a margin), which is all that training and
testing read; in full movies (``ava.video_start_sec: 0``) the decoder seeks to them. Videos that cannot be decoded become failure records (``OUT/failures.json``) and the rest finish.

``--dataset custom`` decodes a user's own videos (``custom.dataset`` in params.yaml; ``--raw`` is its root): the
source's failure records (missing files, unknown labels, ...) and the decoder's are written together to
``--failures`` and counted in the metrics. With ``custom.enabled: false`` the stage only records that it is off
(DVC cannot skip a stage by a parameter; an off stage costs a directory listing).

    python -m stages.decode --dataset kinetics --raw data/raw/kinetics --out data/shards/kinetics \
        --metrics reports/decode_kinetics.json
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from slowfast.data.decode import ChunkMapper, decode_videos
from slowfast.data.sources import AvaSource, CharadesSource, CustomSource, KineticsSource
from slowfast.engine.finetune import decode_source
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked, write_status
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.decode")
SOURCES = {"kinetics": KineticsSource, "charades": CharadesSource, "ava": AvaSource, "custom": CustomSource}
AVA_MARGIN_SEC = 0.5  # frames beyond the clip span, so that resampling at the window edges has neighbours


def ava_windows(source: AvaSource, clip_sec: float) -> dict[str, list[tuple[float, float]]]:
    """Per movie, the merged time windows (seconds of the file) around every annotated keyframe."""
    half = clip_sec / 2 + AVA_MARGIN_SEC
    windows: dict[str, list[tuple[float, float]]] = {}
    for split in source.SPLITS:
        for video_id, timestamp in source.boxes(split)[["video_id", "timestamp"]].drop_duplicates().itertuples(
                index=False):
            centre = source.keyframe_time(int(timestamp))
            windows.setdefault(video_id, []).append((max(0.0, centre - half), centre + half))
    merged: dict[str, list[tuple[float, float]]] = {}
    for video_id, spans in windows.items():
        spans.sort()
        out = [spans[0]]
        for start, end in spans[1:]:
            if start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[video_id] = out
    return merged


def _portable(path: Path) -> Path:
    """A source path as the shard manifest records it: relative to the working directory (the repository, under
    DVC) when inside it, so the manifest, and the stage's dvc.lock entry, do not depend on the clone's path."""
    try:
        return Path(path).relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(path)


def main(argv: list[str] | None = None, *, map_chunks: ChunkMapper | None = None) -> int:
    """Run the stage; ``map_chunks`` runs the decode chunks elsewhere (``pipelines.fanout``: on a Dask cluster),
    by default in ``decode.workers`` processes."""
    def extra(parser):
        parser.add_argument("--dataset", required=True, choices=sorted(SOURCES))
        parser.add_argument("--failures", help="where the failure records go (custom: source and decoder)")

    args, params = stage_args(__doc__, ["raw", "out", "metrics"], argv, extra=extra)
    if args.dataset == "custom":
        return _decode_custom(args, params, map_chunks)
    if args.dataset == "ava":
        source = AvaSource(args.raw, video_start_sec=params.ava.video_start_sec, files=params.ava.files)
    else:
        source = SOURCES[args.dataset](args.raw)
    videos = {vid: _portable(path) for vid, path in source.video_paths().items()}
    windows = None
    if args.dataset == "ava":
        sampling = params.model.sampling(fps=params.decode.frames.fps)
        clip_sec = sampling.slow_frames * sampling.tau / sampling.fps
        windows = {vid: spans for vid, spans in ava_windows(source, clip_sec).items() if vid in videos}
    with tracked(f"decode_{args.dataset}", args, params, "decode") as run:
        report = decode_videos(videos, args.out, params.decode.frames, windows=windows,
                               workers=params.decode.workers, map_chunks=map_chunks)
        rejected = source.rejected_paths()
        # DVC's metrics say what the shards hold, not what this run had to do: a re-run that skips videos already
        # in valid shards (going back to a baseline re-runs this persistent stage) writes the same file.
        metrics = {"videos": len(videos), "decoded": len(report.decoded) + len(report.skipped),
                   "failures": len(report.failures) + len(rejected)}
        write_json_atomic(args.metrics, metrics)
        run.log_metrics({**metrics, "decoded_now": len(report.decoded), "skipped": len(report.skipped)})
        for failure in report.failures:
            log.error("failed: %s", failure)
        for path, reason in rejected.items():
            log.error("rejected path %s: %s", path, reason)
    return 0


def _decode_custom(args, params, map_chunks: ChunkMapper | None) -> int:
    if not params.custom.enabled:
        write_status(args.out, enabled=False, metrics=args.metrics)
        if args.failures:
            write_json_atomic(args.failures, [])
        return 0
    try:
        source = CustomSource(dataclasses.replace(params.custom.dataset, root=args.raw))
    except (FileNotFoundError, ValueError) as exc:  # a missing root or list file: one line, no traceback
        raise SystemExit(f"decode_custom: {exc}") from None
    with tracked("decode_custom", args, params, "decode", "custom") as run:
        report, failures = decode_source(source, args.out, params.decode.frames, workers=params.decode.workers,
                                         map_chunks=map_chunks)
        write_status(args.out, enabled=True)
        decoded = set(report.decoded) | set(report.skipped)
        metrics = {"enabled": True, "videos": len(source.video_paths()), "decoded": len(decoded),
                   "failures": len(failures), "classes": len(source.classes),
                   "train_videos": sum(vid in decoded for vid, _ in source.samples("train")),
                   "val_videos": sum(vid in decoded for vid, _ in source.samples("val"))}
        write_json_atomic(args.failures or Path(args.out) / "all_failures.json", failures)
        write_json_atomic(args.metrics, metrics)
        run.log_metrics({k: float(v) for k, v in metrics.items()})
        for failure in failures:
            log.error("failed: %s: %s", failure["video_id"], failure["reason"])
        if not metrics["train_videos"]:
            raise SystemExit(f"decode_custom: no usable training video in {args.raw} ({len(failures)} failure "
                             f"records in {args.failures})")
    return 0


if __name__ == "__main__":
    run_stage(main)
