"""Stage `download`: fetch every file of the manifest named by ``download.manifest`` into ``--out`` (resumable,
verified, atomic; archives extracted safely). Failed items are recorded with their reasons in ``--failures`` and
counted in ``--metrics``; the others finish.

    python -m stages.download --out data/raw --metrics reports/download.json --failures reports/download_failures.json
"""

from __future__ import annotations

import logging

from slowfast.config import to_mapping
from slowfast.data.download import download_manifest, load_manifest
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.utils.io import write_json_atomic

log = logging.getLogger("stages.download")


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["out", "metrics", "failures"], argv)
    manifest = load_manifest(params.download.manifest)
    with tracked("download", args, params, "download", system_metrics=False) as run:
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
