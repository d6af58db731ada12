"""Two CPU processes under torchrun (gloo) train like one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slowfast.engine import EvalConfig, TrainConfig, evaluate, read_scores, train
from tests.engine.engine_toy import TinyNet, ToyClips, ToyViews

SCRIPT = Path(__file__).with_name("engine_toy.py")


def test_two_process_ddp_replicas_agree_and_match_one_process_with_the_global_batch(tmp_path):
    config = {"epochs": 2, "batch_size": 2, "base_lr": 0.5, "device": "cpu", "warmup": 1}
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
           str(out), "--config", repr(config), "--bn", "0", "--dropout", "0",
           "--val", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1 of 2 (gloo)" in done.stderr

    rank0 = torch.load(out / "final_rank0.pt", weights_only=True)
    rank1 = torch.load(out / "final_rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"replicas diverged at {key}"

    # One process, batch 2·2 = 4: the same clips per step (the epoch permutation is dealt round-robin to ranks).
    torch.manual_seed(0)
    single = TinyNet(bn=False, dropout=0.0)
    initial = {k: v.clone() for k, v in single.state_dict().items()}
    result = train(single, ToyClips(16), TrainConfig(**{**config, "batch_size": 4}), out_dir=tmp_path / "single",
                   val_set=ToyViews(5))
    for key, value in single.state_dict().items():
        torch.testing.assert_close(rank0[key], value, rtol=1e-5, atol=1e-6, msg=key)
        assert not torch.allclose(initial[key], value), f"{key} did not train"

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [r["step"] for r in result.history] == [4, 8]
    assert [r["loss"] for r in records] == pytest.approx([r["loss"] for r in result.history], rel=1e-5)
    for key in ("train_top1", "val_top1"):
        assert [r[key] for r in records] == [r[key] for r in result.history], key

    # Distributed multi-view testing: each process scores every 2nd video; gathered back in dataset order.
    scores = read_scores(out / "val_scores.parquet")
    expected = evaluate(single, ToyViews(5), EvalConfig(views_per_batch=2))
    assert scores.video_ids == expected.video_ids == [f"video{i}" for i in range(5)]
    np.testing.assert_allclose(scores.scores, expected.scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(scores.labels, expected.labels)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["state_000000004.pt", "state_000000008.pt"]
