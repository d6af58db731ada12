"""Training killed in a subprocess (SIGKILL, SIGTERM) resumes to exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slowfast.engine import EXIT_INTERRUPTED, TrainConfig, train
from slowfast.engine.checkpointing import list_states
from tests.engine.engine_toy import TinyNet, ToyClips

SCRIPT = Path(__file__).with_name("engine_toy.py")
DELAY = 0.02  # seconds per clip: a 16-clip epoch takes ~0.3 s, long enough to interrupt


def _start(out: Path, config: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(SCRIPT), str(out), "--config", repr(config), "--delay", str(DELAY)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list_states(out / "checkpoints")
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def _reference(tmp_path: Path, config: dict) -> tuple[dict, list[dict]]:
    torch.manual_seed(0)
    model = TinyNet()
    result = train(model, ToyClips(16), TrainConfig(**config), out_dir=tmp_path / "reference")
    return model.state_dict(), result.history


def _finish(out: Path, config: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), str(out), "--config", repr(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _assert_same_run(out: Path, weights: dict, history: list[dict]) -> None:
    final = torch.load(out / "final_rank0.pt", weights_only=True)
    for key, value in weights.items():
        assert torch.equal(final[key], value), key
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    strip = [{k: v for k, v in r.items() if k != "clips_per_s"} for r in records]
    assert strip == [{k: v for k, v in r.items() if k != "clips_per_s"} for r in history]


def test_sigkill_mid_epoch_then_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    # 16 clips, batch 4: 4 steps per epoch; checkpoints every 3 steps land mid-epoch.
    config = {"iterations": 12, "batch_size": 4, "base_lr": 0.5, "checkpoint_every": 3, "warmup": 2}
    out = tmp_path / "run"
    proc = _start(out, config)
    first = _wait_for_checkpoint(proc, out)
    assert proc.poll() is None, "the run must still be going when it is killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final_rank0.pt").exists()
    killed_at = torch.load(list_states(out / "checkpoints")[0], weights_only=True)["step"]
    assert first.name == "state_000000003.pt" and killed_at < 12

    resumed = _finish(out, config)
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {killed_at} of 12" in resumed.stderr  # it continued, it did not start over
    _assert_same_run(out, *_reference(tmp_path, config))


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_the_run_resumes_exactly(tmp_path):
    config = {"epochs": 3, "batch_size": 4, "base_lr": 0.5, "checkpoint_every": 1}
    out = tmp_path / "run"
    proc = _start(out, config)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "SIGTERM received" in stderr and "training interrupted by SIGTERM" in stderr
    stopped_at = int(re.search(r"stopped by SIGTERM after step (\d+)", stderr).group(1))
    state = torch.load(list_states(out / "checkpoints")[0], weights_only=True)
    assert state["step"] == stopped_at and 4 <= stopped_at < 12  # the checkpoint is of the moment it stopped

    resumed = _finish(out, config)
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {state['step']} of 12" in resumed.stderr
    _assert_same_run(out, *_reference(tmp_path, config))
