"""Stage `download`: fetch every file of the manifest named by ``download.manifest`` into ``--out`` (resumable,
verified, atomic; archives extracted safely). Failed items are recorded with their reasons in ``--failures`` and
counted in ``--metrics``; the others finish. More than ``download.max_failures`` failed items (0 by default) make
the stage exit 1 once everything else is done, so that DVC does not record it as done and the next ``dvc repro``
(or the Prefect flow's retry) runs it again: verified files are kept, only what is missing is fetched.

    python -m stages.download --out data/raw --metrics reports/download.json --failures reports/download_failures.json
"""

from __future__ import annotations

import logging
from pathlib import Path

from slowfast.config import ConfigError, to_mapping
from slowfast.data.download import download_manifest, load_manifest
from slowfast.params import run_stage
from slowfast.stage import stage_args, tracked
from slowfast.utils.io import OutputError, write_json_atomic
from slowfast.utils.lock import folder_lock

log = logging.getLogger("stages.download")


def read_manifest(path: str):  # noqa: ANN201 (a Manifest)
    """The manifest of ``download.manifest``; a missing file is a one-line error naming the key."""
    if not Path(path).is_file():
        raise ConfigError("download.manifest", f"{path}: no such manifest file")
    return load_manifest(path)


def main(argv: list[str] | None = None) -> int:
    args, params = stage_args(__doc__, ["out", "metrics", "failures"], argv)
    manifest = read_manifest(params.download.manifest)
    with folder_lock(args.out, "download"), tracked("download", args, params, "download", system_metrics=False) as run:
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
        allowed = params.download.max_failures
        if len(report.failures) > allowed:  # raised inside the run, so that it ends FAILED
            raise OutputError(
                f"download: {len(report.failures)} of {len(manifest.items)} items failed (download.max_failures = "
                f"{allowed}; reasons in {args.failures}); the verified files are kept and a re-run fetches only the "
                "missing ones")
    if report.failures:
        log.warning("%d failed items tolerated (download.max_failures = %d)", len(report.failures), allowed)
    return 0


if __name__ == "__main__":
    run_stage(main)
