"""Stage `synthesize`: build the embedded synthetic Kinetics-, Charades- and AVA-like datasets and publish them
behind a download manifest (``OUT/manifest.json`` with file URLs), as a real dataset is published.

    python -m stages.synthesize --out data/published
"""

from __future__ import annotations

import argparse
import time

from slowfast.params import load_params, run_stage, section
from slowfast.tracking.runs import stage_run
from slowfast.data.synthetic.release import publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    with stage_run("synthesize", params=section(args.params, "synthetic"),
                   experiment=params.tracking.experiment, system_metrics=False) as run:
        start = time.monotonic()
        manifest = publish(args.out, params.synthetic, workers=args.workers)
        run.log_metrics({"seconds": time.monotonic() - start})
        run.log_artifact(manifest)
    return 0


if __name__ == "__main__":
    run_stage(main)
