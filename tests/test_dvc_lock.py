"""The committed dvc.lock and reports/ belong to the code and params of the same commit.

A fresh clone's `make run` must leave `git status` clean (README "DVC workflows"): if a commit changes code that
a stage depends on (or params.yaml) without the `dvc repro` that records it, every user's first run re-runs the
stages below it and rewrites dvc.lock. Real DVC answers (`dvc status` in this checkout); its data and model
outputs are absent here, so only what git holds is compared: the code and params dependencies, and the metrics and
curves kept in git.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git_tracked(path: str) -> bool:
    listed = subprocess.run(["git", "ls-files", "--", path], cwd=REPO, capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


def test_the_committed_dvc_lock_records_this_commits_code_params_and_metrics():
    # A user's machine has bytecode caches beside the sources once anything imported them (ours may run with
    # PYTHONDONTWRITEBYTECODE); they must not count in the code hashes (.dvcignore), so they are made here first.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "src", "stages", "pipelines"], cwd=REPO, check=True)
    dvc = Path(sys.executable).parent / "dvc"
    done = subprocess.run([str(dvc), "status", "--json"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    stale = []
    for stage, changes in json.loads(done.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):  # "changed command", "always changed": the stage itself differs
                stale.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                for path, state in paths.items():
                    # params show as {key: "modified"}; a file or folder as "modified" / "deleted" / "new"
                    if isinstance(state, dict) or (_git_tracked(path) and state != "not in cache"):
                        stale.append(f"{stage}: {kind} {path}: {state}")
    assert not stale, ("dvc.lock or reports/ do not match this commit; run `dvc repro` and commit dvc.lock and "
                       "reports/ with the change:\n" + "\n".join(stale))
