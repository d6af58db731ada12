"""Stage `download`: fetch every file of the manifest named by ``download.manifest`` into ``--out`` (resumable,
verified, atomic; archives extracted safely). Failed items are recorded with their reasons in ``--failures`` and
counted in ``--metrics``; the others finish.

    python -m stages.download --out data/raw --metrics reports/download.json --failures reports/download_failures.json
"""

from __future__ import annotations

import argparse
import logging

from slowfast.config import to_mapping
from slowfast.data.download import download_manifest, load_manifest
from slowfast.params import load_params, run_stage, section
from slowfast.tracking.runs import stage_run
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.download")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--failures", required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    manifest = load_manifest(params.download.manifest)
    with stage_run("download", params=section(args.params, "download"),
                   experiment=params.tracking.experiment, system_metrics=False) as run:
        report = download_manifest(manifest, args.out, workers=params.download.workers,
                                   retries=params.download.retries)
        metrics = {"items": len(manifest.items), "downloaded": len(report.downloaded),
                   "skipped": len(report.skipped), "extracted": len(report.extracted),
                   "failures": len(report.failures), "bytes_transferred": report.bytes_transferred}
        write_json_atomic(args.failures, [to_mapping(f) for f in report.failures])
        write_json_atomic(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.failures)
        for failure in report.failures:
            log.error("failed: %s (%s): %s", failure.name, failure.url, failure.reason)
    return 0


if __name__ == "__main__":
    run_stage(main)
