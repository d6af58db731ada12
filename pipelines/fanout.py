"""Run one DVC stage's command with its chunks fanned out over a Dask cluster, through Prefect's DaskTaskRunner.

The flow of ``pipelines.flow`` starts this for a stale stage marked ``meta: {fan_out: true}`` in ``dvc.yaml`` when
it is given a Dask scheduler address. It runs where and as ``dvc repro`` would run the stage's command (repository
root as working directory, the pipeline id in the environment), so the stage's ``main(argv, map_chunks=...)`` does
all it does under DVC (params, paths, MLflow child run, metrics files); only its chunks run elsewhere, one Prefect
task per chunk on the Dask workers::

    python -m pipelines.fanout --dask-address tcp://scheduler:8786 \
        python -m stages.decode --dataset kinetics --raw data/raw/kinetics --out data/shards/kinetics ...

The workers need the project importable and the repository's files at the same paths (a shared file system).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from slowfast.params import run_stage
from slowfast.utils.io import write_json_atomic


def module_command(cmd: str) -> tuple[str, list[str]]:
    """``python -m MODULE ARGS...`` -> (MODULE, ARGS); the only command shape a fan-out stage may have."""
    parts = shlex.split(cmd)
    if len(parts) < 3 or not parts[0].split("/")[-1].startswith("python") or parts[1] != "-m":
        raise ValueError(f"a fan-out stage's cmd must be 'python -m MODULE ARGS...', got {cmd!r}")
    return parts[2], parts[3:]


@task(task_run_name="chunk {index}", cache_policy=NO_CACHE)
def run_chunk(fn: Callable[[Any], Any], chunk: Any, index: int) -> tuple[Any, str]:
    """``fn(chunk)`` on a Dask worker; returns the result and the worker's address."""
    from distributed import get_worker

    return fn(chunk), get_worker().address


@flow(name="slowfast-fan-out")
def fan_out(module: str, argv: list[str]) -> dict[str, Any]:
    """``MODULE.main(argv, map_chunks=...)`` with one task per chunk on this flow's task runner (a Dask cluster);
    returns ``{"chunks": n, "workers": {worker address: chunks it ran}}``."""
    workers: Counter[str] = Counter()

    def map_chunks(fn: Callable[[Any], Any], chunks: Sequence[Any]) -> Iterator[Any]:
        futures = [run_chunk.submit(fn, chunk, i) for i, chunk in enumerate(chunks)]
        for future in as_completed(futures):
            result, worker = future.result()
            workers[worker] += 1
            yield result

    code = importlib.import_module(module).main(argv, map_chunks=map_chunks)
    if code:
        raise RuntimeError(f"{module} {shlex.join(argv)} exited with {code}")
    return {"chunks": sum(workers.values()), "workers": dict(workers)}


def main(argv: list[str] | None = None) -> int:
    from prefect_dask import DaskTaskRunner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dask-address", required=True, help="the Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--summary", help="write the chunks each Dask worker ran here (JSON)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the stage's command: python -m MODULE ARGS...")
    args = parser.parse_args(argv)
    module, stage_argv = module_command(shlex.join(args.command))
    runner = DaskTaskRunner(address=args.dask_address)
    name = f"fan out {module} {shlex.join(stage_argv)}"
    summary = fan_out.with_options(task_runner=runner, flow_run_name=name)(module, stage_argv)
    if args.summary:
        write_json_atomic(args.summary, summary)
    return 0


if __name__ == "__main__":
    run_stage(main)
