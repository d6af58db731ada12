"""The download stage under DVC: failed items make it exit non-zero, so a later `dvc repro` fetches what is missing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def _repo(tmp_path: Path, max_failures: int | None = None) -> tuple[Path, dict[str, str], Path]:
    """A git+DVC repo whose only stage is the real download stage, on a manifest of two file:// items."""
    repo, src = tmp_path / "repo", tmp_path / "src"
    repo.mkdir()
    src.mkdir()
    data = b"present " * 1000
    (src / "present.bin").write_bytes(data)
    late = src / "late.bin"
    manifest = {"version": 1, "items": [
        {"name": "present", "url": (src / "present.bin").as_uri(), "dest": "extra/present.bin",
         "sha256": hashlib.sha256(data).hexdigest()},
        {"name": "late", "url": late.as_uri(), "dest": "extra/late.bin"}]}
    (repo / "manifest.json").write_text(json.dumps(manifest))
    download = {"manifest": "manifest.json", "retries": 0}
    if max_failures is not None:
        download["max_failures"] = max_failures
    (repo / "params.yaml").write_text(json.dumps({"download": download}))
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          download:
            cmd: {sys.executable} -m stages.download --out data/raw --metrics reports/download.json
              --failures reports/download_failures.json
            deps: [manifest.json]
            params: [download]
            outs:
              - data/raw:
                  persist: true
            metrics:
              - reports/download.json:
                  cache: false
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("SLOWFAST_PIPELINE_ID", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(ROOT)
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env, late


def _repro(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), "repro", "-s", "download"], cwd=repo, env=env, capture_output=True,
                          text=True)


def test_failed_download_makes_stage_exit_nonzero_and_the_rerun_fetches_only_what_is_missing(tmp_path):
    repo, env, late = _repo(tmp_path)
    first = _repro(repo, env)
    assert first.returncode != 0, first.stdout + first.stderr
    assert "1 of 2 items failed (download.max_failures = 0" in first.stderr
    assert "Traceback" not in first.stderr
    raw = repo / "data" / "raw" / "extra"
    assert sorted(p.name for p in raw.iterdir()) == ["present.bin"]  # verified item kept, nothing partial
    assert json.loads((repo / "reports" / "download.json").read_text())["failures"] == 1

    late.write_bytes(b"data\n")
    second = _repro(repo, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "didn't change, skipping" not in second.stdout
    assert (raw / "late.bin").read_bytes() == b"data\n"
    metrics = json.loads((repo / "reports" / "download.json").read_text())
    assert (metrics["downloaded"], metrics["skipped"], metrics["failures"]) == (1, 1, 0)
    assert not list((repo / "data" / "raw").glob(".slowfast.lock"))  # the lock leaves nothing in the output


def test_tolerated_failures_let_the_download_stage_succeed(tmp_path):
    repo, env, _ = _repo(tmp_path, max_failures=1)
    result = _repro(repo, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((repo / "reports" / "download.json").read_text())["failures"] == 1


@pytest.mark.parametrize("value", [-1])
def test_negative_max_failures_is_refused_naming_the_key(tmp_path, value):
    repo, env, _ = _repo(tmp_path, max_failures=value)
    result = subprocess.run([sys.executable, "-m", "stages.download", "--out", "data/raw", "--metrics", "m.json",
                             "--failures", "f.json"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: download.max_failures: must be >= 0, got -1 (in params.yaml)"]
    assert not (repo / "data").exists()


def test_missing_manifest_is_a_one_line_error_naming_the_key(tmp_path):
    repo, env, _ = _repo(tmp_path)
    (repo / "manifest.json").unlink()
    result = subprocess.run([sys.executable, "-m", "stages.download", "--out", "data/raw", "--metrics", "m.json",
                             "--failures", "f.json"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: download.manifest: manifest.json: no such manifest file"]
