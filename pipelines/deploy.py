"""Create the scheduled deployment of the pipeline flow (nightly by default) and serve it.

    python -m pipelines.deploy                      # nightly at 02:00, serves scheduled runs until stopped
    python -m pipelines.deploy --cron "0 */6 * * *" # every six hours
    python -m pipelines.deploy --interval 600       # every ten minutes
    python -m pipelines.deploy --apply-only         # only register the deployment (a worker or `serve` runs it)
    python -m pipelines.deploy --dask-address tcp://scheduler:8786  # decode stages fan out over that Dask cluster

Against a Prefect server (``prefect server start`` or Prefect Cloud, via ``PREFECT_API_URL``); each scheduled run
executes ``dvc repro`` through the flow in ``pipelines.flow``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.flow import slowfast_pipeline

NIGHTLY = "0 2 * * *"
REPO_ROOT = str(Path(__file__).resolve().parents[1])


def build_deployment(*, name: str = "nightly", cron: str | None = NIGHTLY, interval: float | None = None,
                     repo_root: str = REPO_ROOT, dask_address: str | None = None):
    """The deployment object: the pipeline flow on ``repo_root`` on a cron schedule, or every ``interval`` seconds
    when given (and a Dask cluster for the decode stages' chunks when ``dask_address`` is given)."""
    if interval is not None and interval <= 0:
        raise ValueError(f"interval: must be > 0 seconds, got {interval}")
    parameters = {"repo_root": repo_root, **({"dask_address": dask_address} if dask_address else {})}
    schedule = {"interval": interval} if interval is not None else {"cron": cron}
    return slowfast_pipeline.to_deployment(
        name=name, parameters=parameters, tags=["slowfast", "dvc"],
        description="dvc repro of the SlowFast pipeline, tracked in MLflow", **schedule,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="nightly")
    parser.add_argument("--cron", default=NIGHTLY, help=f"cron schedule (default {NIGHTLY!r}: nightly)")
    parser.add_argument("--interval", type=float, help="run every this many seconds instead of on the cron schedule")
    parser.add_argument("--repo-root", default=REPO_ROOT)
    parser.add_argument("--apply-only", action="store_true", help="register the deployment and exit")
    parser.add_argument("--dask-address", help="decode stages fan out over the Dask scheduler at this address")
    args = parser.parse_args(argv)
    try:
        deployment = build_deployment(name=args.name, cron=args.cron, interval=args.interval,
                                      repo_root=args.repo_root, dask_address=args.dask_address)
    except ValueError as exc:
        parser.error(str(exc))
    when = f"every {args.interval:g} s" if args.interval is not None else f"with cron {args.cron!r}"
    if args.apply_only:
        deployment_id = deployment.apply()
        print(f"deployment slowfast-pipeline/{args.name} ({deployment_id}) scheduled {when}")
        return 0
    print(f"serving slowfast-pipeline/{args.name} scheduled {when} (Ctrl-C stops)", flush=True)
    from prefect import serve

    serve(deployment)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
