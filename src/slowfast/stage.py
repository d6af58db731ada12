"""What every DVC stage does at its edges: parse its paths, validate params.yaml, open its MLflow child run.

    args, params = stage_args(__doc__, ["raw", "shards", "out", "metrics"], argv)
    with tracked("pretrain", args, params, "model", "pretrain") as run:
        ...
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from typing import Any

from slowfast.params import PipelineParams, load_params, section
from slowfast.tracking.runs import stage_run


def stage_args(
    doc: str,
    paths: Sequence[str],
    argv: list[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, PipelineParams]:
    """Parse ``--<path>`` for each of ``paths`` (required) plus ``--params``, set up logging, and load and validate
    the whole params file before any work."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for name in paths:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--params", default="params.yaml")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args, load_params(args.params)


def checkpoints_arg(parser: argparse.ArgumentParser) -> None:
    """``--checkpoints DIR`` of a training stage: its resumable states (default: ``--out``). The pipeline keeps them in
    ``runs/<stage>/``, a folder DVC does not manage, so the model in ``--out`` can be a cached output that DVC restores
    from its run cache, while an interrupted run still resumes after DVC removed ``--out``."""
    parser.add_argument("--checkpoints", help="folder of the resumable training states (default: --out)")


def tracked(name: str, args: argparse.Namespace, params: PipelineParams, *sections: str, **kwargs: Any):
    """The stage's MLflow child run, logging the raw ``sections`` of the params file as its parameters."""
    kwargs.setdefault("system_metrics", params.tracking.system_metrics)
    return stage_run(name, params=section(args.params, *sections), experiment=params.tracking.experiment, **kwargs)
