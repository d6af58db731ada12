"""Stage `synthesize`: build the embedded synthetic Kinetics-, Charades- and AVA-like datasets and publish them
behind a download manifest (``OUT/manifest.json`` with file URLs), as a real dataset is published.

    python -m stages.synthesize --out data/published
"""

from __future__ import annotations

import time

from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.data.synthetic.release import publish


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["out"], argv, extra=lambda p: p.add_argument("--workers", type=int, default=2))
    with tracked("synthesize", args, params, "synthetic", system_metrics=False) as run:
        start = time.monotonic()
        manifest = publish(args.out, params.synthetic, workers=args.workers)
        run.log_metrics({"seconds": time.monotonic() - start})
        run.log_artifact(manifest)
    return 0


if __name__ == "__main__":
    run_stage(main)
