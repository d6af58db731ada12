"""What every DVC stage does at its edges: parse its paths, validate params.yaml, open its MLflow child run.

    args, params = stage_args(__doc__, ["raw", "shards", "out", "metrics"], argv)
    with tracked("pretrain", args, params, "model", "pretrain") as run:
        ...
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slowfast.config import ConfigError
from slowfast.params import PipelineParams, load_params, section
from slowfast.tracking.runs import read_params_file, stage_run
from slowfast.utils.lifeline import follow_dvc
from slowfast.utils.lock import folder_lock

log = logging.getLogger(__name__)


def stage_args(
    doc: str,
    paths: Sequence[str],
    argv: list[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, PipelineParams]:
    """Parse ``--<path>`` for each of ``paths`` (required) plus ``--params``, set up logging, and load and validate
    the whole params file before any work. Under ``dvc repro`` the stage stops when ``dvc`` does
    (:mod:`slowfast.utils.lifeline`)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for name in paths:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--params", default="params.yaml")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    follow_dvc()  # under `dvc repro`: stop (checkpointing first) when dvc does, never run on as an orphan
    return args, load_params(args.params)


def checkpoints_arg(parser: argparse.ArgumentParser) -> None:
    """``--checkpoints DIR`` of a training stage: its resumable states (default: ``--out``). The pipeline keeps them in
    ``runs/<stage>/``, a folder DVC does not manage, so the model in ``--out`` can be a cached output that DVC restores
    from its run cache, while an interrupted run still resumes after DVC removed ``--out``."""
    parser.add_argument("--checkpoints", help="folder of the resumable training states (default: --out)")


def tracked(name: str, args: argparse.Namespace, params: PipelineParams, *sections: str, **kwargs: Any):
    """The stage's MLflow child run, logging the raw ``sections`` of the params file as its parameters."""
    kwargs.setdefault("system_metrics", params.tracking.system_metrics)
    kwargs.setdefault("pipeline_params", read_params_file(args.params))  # all of it, for the parent run
    return stage_run(name, params=section(args.params, *sections), experiment=params.tracking.experiment, **kwargs)


def write_status(out: str | Path, *, enabled: bool, metrics: str | Path | None = None) -> None:
    """Record in ``out/status.json`` whether an optional stage (the ``custom`` ones) ran; an off stage also writes
    ``{"enabled": false}`` as its metrics. DVC cannot skip a stage by a parameter, so an off stage still runs and
    leaves these small files as its outputs (its persistent output folder otherwise untouched)."""
    from slowfast.utils.io import write_json_atomic

    Path(out).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out) / "status.json", {"enabled": enabled})
    if metrics is not None and not enabled:
        write_json_atomic(metrics, {"enabled": False})
        logging.getLogger("slowfast.stage").info("custom.enabled is false: nothing to do")


def check_split(key: str, split: str | None, available: Sequence[str]) -> None:
    """A split named in params.yaml that the dataset does not have: a one-line error naming the key, before work."""
    if split is not None and split not in available:
        raise ConfigError(key, f"split {split!r} is not in the dataset; available: {', '.join(available)}")


def missing_videos(stage: str, **datasets: Any) -> dict[str, int]:
    """Log how many listed videos of each dataset (``train=..., val=...``) are not in the shards (their download or
    decode failed) and return the counts for the stage's metrics (``missing_videos``, ``val_missing_videos``)."""
    counts: dict[str, int] = {}
    for name, dataset in datasets.items():
        if dataset is None:
            continue
        missing, listed = dataset.missing_videos, dataset.listed_videos
        counts["missing_videos" if name == "train" else f"{name}_missing_videos"] = missing
        if missing:
            log.warning("%s: %d of %d listed %s videos are missing from the shards (failed to download or decode); "
                        "training uses the other %d", stage, missing, listed, name, listed - missing)
        else:
            log.info("%s: all %d listed %s videos are in the shards", stage, listed, name)
    return counts


def output_lock(folder: str, stage: str):  # noqa: ANN201 (a context manager)
    """The stage's write lock on its output folder (:func:`slowfast.utils.lock.folder_lock`)."""
    return folder_lock(folder, stage)
