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
DEADLINE = 300.0  # seconds: only a hung run gets near it (waits are on states, not on time windows)


def _start(out: Path, config: dict, hold: Path) -> subprocess.Popen:
    """Train in a subprocess that, after its first checkpoint, waits in ``hold`` until released (engine_toy)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    hold.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(SCRIPT), str(out), "--config", repr(config), "--hold", str(hold)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_until_held(proc: subprocess.Popen, out: Path, hold: Path) -> Path:
    """The run is past its first checkpoint and waiting mid-training; returns that checkpoint."""
    deadline = time.monotonic() + DEADLINE
    while not (hold / "holding").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never reached its hold point: {proc.communicate()}")
        time.sleep(0.01)
    return list_states(out / "checkpoints")[0]


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
    out, hold = tmp_path / "run", tmp_path / "hold"
    proc = _start(out, config, hold)
    first = _wait_until_held(proc, out, hold)
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
    out, hold = tmp_path / "run", tmp_path / "hold"
    proc = _start(out, config, hold)
    _wait_until_held(proc, out, hold)
    proc.send_signal(signal.SIGTERM)
    (hold / "release").touch()  # the step under way finishes, then the handler's checkpoint is written
    _, stderr = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "SIGTERM received" in stderr and "training interrupted by SIGTERM" in stderr
    stopped_at = int(re.search(r"stopped by SIGTERM after step (\d+)", stderr).group(1))
    state = torch.load(list_states(out / "checkpoints")[0], weights_only=True)
    assert state["step"] == stopped_at and 4 <= stopped_at < 12  # the checkpoint is of the moment it stopped

    resumed = _finish(out, config)
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {state['step']} of 12" in resumed.stderr
    _assert_same_run(out, *_reference(tmp_path, config))
