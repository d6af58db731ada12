"""A training stage dies with the `dvc repro` that started it, checkpointing first, and the next repro resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from slowfast.engine.checkpointing import list_states

BIN = Path(sys.executable).parent
TOY = Path(__file__).with_name("engine_toy.py")
ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 300.0  # seconds: only a hung process gets near it


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_to_dvc_stops_the_trainer_after_a_checkpoint_and_the_next_repro_resumes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    config = {"epochs": 3, "batch_size": 4, "base_lr": 0.5, "checkpoint_every": 1}
    cmd = f'{sys.executable} {TOY} run --config "{config}" --hold hold --follow-dvc 2> hold/trainer.log'
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"cmd": cmd, "outs": [{"run": {"persist": True}}]}}}))
    (repo / "hold").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    (repo / ".gitignore").write_text("/hold/\n")

    dvc = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=repo, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: (repo / "hold" / "holding").exists() or dvc.poll() is not None, "the trainer's first checkpoint")
    assert dvc.poll() is None, "dvc ended before the trainer was under way"
    trainer = psutil.Process(int((repo / "hold" / "holding").read_text()))
    first = list_states(repo / "run" / "checkpoints")[0]

    dvc.send_signal(signal.SIGTERM)  # as `kill -TERM` of a `setsid dvc repro`
    dvc.wait(timeout=DEADLINE)
    log = repo / "hold" / "trainer.log"
    _wait(lambda: "SIGTERM received" in log.read_text(), "the trainer to get SIGTERM from its watcher")
    assert "dvc (pid %d) has exited: stopping this stage" % dvc.pid in log.read_text()
    (repo / "hold" / "release").touch()  # only now: the step under way finishes, then the checkpoint is written
    _wait(lambda: not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE, "the trainer to stop")
    assert not (repo / "run" / "final_rank0.pt").exists()  # it stopped, it did not train on as an orphan
    last = list_states(repo / "run" / "checkpoints")[0]
    step = torch.load(last, weights_only=True)["step"]
    assert last != first and 4 < step < 12  # the SIGTERM checkpoint of the step it was in

    resumed = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"step {step} of 12" in log.read_text()  # the second trainer (same log) continued from that checkpoint
    assert (repo / "run" / "final_rank0.pt").exists()
