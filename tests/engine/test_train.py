"""The training loop in one process: non-finite losses, accumulation, metrics files, checkpoints and resume."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

from slowfast.engine import TrainConfig, TrainingInterrupted, train
from slowfast.engine.checkpointing import list_states
from tests.engine.engine_toy import TinyNet, ToyClips, ToyViews


def _fresh_model(**kwargs) -> TinyNet:
    torch.manual_seed(0)
    return TinyNet(**kwargs)


def _run(out_dir, data=None, model=None, **config):
    model = model or _fresh_model()
    result = train(model, data or ToyClips(16), TrainConfig(**config), out_dir=out_dir)
    return model, result


def test_nan_loss_stops_before_the_optimizer_step_naming_epoch_iteration_and_value(tmp_path):
    model = _fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    with pytest.raises(FloatingPointError, match=r"epoch 1, iteration 1 .*loss: nan"):
        train(model, ToyClips(8, nan_from=0), TrainConfig(epochs=1, batch_size=4), out_dir=tmp_path)
    for key, value in before.items():
        if "running" not in key:  # BN statistics move in the forward pass; weights must not
            assert torch.equal(model.state_dict()[key], value), key
    assert list_states(tmp_path / "checkpoints") == []


class _PoisonFromEpoch2(torch.utils.data.Dataset):
    """ToyClips whose inputs are NaN from the second epoch on."""

    def __init__(self, base):
        self.base, self.epoch = base, 0

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = self.base[i]
        if self.epoch >= 1:
            item["inputs"] = [x * float("nan") for x in item["inputs"]]
        return item


def test_nan_loss_later_in_a_run_names_that_epoch_and_iteration(tmp_path):
    with pytest.raises(FloatingPointError, match=r"epoch 2, iteration 3 \(this process's loss: nan\)"):
        train(_fresh_model(), _PoisonFromEpoch2(ToyClips(8)), TrainConfig(epochs=3, batch_size=4), out_dir=tmp_path)
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [2]


def test_gradient_accumulation_equals_the_larger_batch_for_a_bn_free_model(tmp_path):
    a, ra = _run(tmp_path / "a", model=_fresh_model(bn=False, dropout=0.0), epochs=2, batch_size=8, base_lr=0.5)
    b, rb = _run(tmp_path / "b", model=_fresh_model(bn=False, dropout=0.0), epochs=2, batch_size=4, accumulate=2,
                 base_lr=0.5)
    assert ra.step == rb.step == 4
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6, msg=key)
    assert [r["loss"] for r in ra.history] == pytest.approx([r["loss"] for r in rb.history], rel=1e-5)
    assert not torch.equal(a.fc.weight, _fresh_model(bn=False, dropout=0.0).fc.weight)  # it did train


def test_metrics_file_and_callback_get_one_record_per_epoch(tmp_path):
    seen = []
    model = _fresh_model()
    result = train(model, ToyClips(16), TrainConfig(epochs=3, batch_size=4, base_lr=0.5), out_dir=tmp_path,
                   val_set=ToyViews(), on_epoch_end=lambda epoch, m: seen.append((epoch, m)))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e for e, _ in seen] == [1, 2, 3] == [r["epoch"] for r in lines]
    assert [m for _, m in seen] == lines == result.history
    for record in lines:
        assert {"epoch", "step", "loss", "lr", "train_top1", "val_top1", "clips_per_s"} <= set(record)
        assert math.isfinite(record["loss"]) and 0 <= record["train_top1"] <= 1 and 0 <= record["val_top1"] <= 1
    assert [r["step"] for r in lines] == [4, 8, 12]
    assert lines[-1]["loss"] < lines[0]["loss"]


def test_checkpoint_loads_with_weights_only_and_holds_the_training_state(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".state_000000004.pt.x1y2.tmp").write_bytes(b"left by a killed writer")
    model, result = _run(tmp_path, epochs=2, batch_size=4, keep_checkpoints=1)
    assert list((tmp_path / "checkpoints").iterdir()) == [result.checkpoint]
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "step", "epoch", "position", "config", "history"} <= set(state)
    assert state["step"] == 8 and state["epoch"] == 2 and state["position"] == 0
    assert state["config"]["epochs"] == 2
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "random"}
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value), key
    assert state["optimizer"]["state"], "momentum buffers are saved"


@pytest.mark.parametrize(
    ("config", "steps"),
    [
        ({"iterations": 10}, [4, 8, 10]),  # default: at each epoch's end (4 steps per epoch) and at the end
        ({"iterations": 10, "checkpoint_every": 3}, [3, 6, 9, 10]),
        ({"epochs": 3, "checkpoint_every": 2}, [8, 12]),
    ],
)
def test_checkpoints_are_written_at_the_configured_interval_and_at_the_end(tmp_path, config, steps):
    _run(tmp_path, batch_size=4, keep_checkpoints=10, **config)
    assert sorted(int(p.stem.split("_")[1]) for p in list_states(tmp_path / "checkpoints")) == steps


def test_rerunning_a_finished_run_trains_nothing_and_leaves_files_unchanged(tmp_path):
    model, first = _run(tmp_path, epochs=2, batch_size=4)
    metrics = (tmp_path / "metrics.jsonl").read_bytes()
    calls = []
    again = _fresh_model()
    result = train(again, ToyClips(16), TrainConfig(epochs=2, batch_size=4), out_dir=tmp_path,
                   on_epoch_end=lambda *a: calls.append(a))
    assert calls == [] and result.step == first.step
    assert (tmp_path / "metrics.jsonl").read_bytes() == metrics
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def _strip_speed(history):
    return [{k: v for k, v in r.items() if k != "clips_per_s"} for r in history]


def test_starting_over_without_resume_discards_the_earlier_runs_states(tmp_path):
    _run(tmp_path, epochs=3, batch_size=4)
    model = _fresh_model()
    result = train(model, ToyClips(16), TrainConfig(epochs=1, batch_size=4), out_dir=tmp_path, resume=False)
    assert list_states(tmp_path / "checkpoints") == [result.checkpoint]
    assert result.checkpoint.name == "state_000000004.pt"
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1 == len(result.history)


def test_resume_from_any_mid_run_checkpoint_is_bit_identical(tmp_path):
    reference, ref = _run(tmp_path / "ref", iterations=10, batch_size=4, checkpoint_every=3, keep_checkpoints=10)
    states = list_states(tmp_path / "ref" / "checkpoints")
    assert [p.name for p in states] == [f"state_{s:09d}.pt" for s in (10, 9, 6, 3)]
    for state in states[1:]:  # steps 9, 6, 3: the 4-step epochs make most of them mid-epoch
        run = tmp_path / f"from_{state.name}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / state.name).write_bytes(state.read_bytes())
        model, result = _run(run, model=TinyNet(), iterations=10, batch_size=4, checkpoint_every=3)
        for key, value in reference.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), (state.name, key)
        assert _strip_speed(result.history) == _strip_speed(ref.history)


def test_resume_skips_an_unreadable_newest_checkpoint(tmp_path, caplog):
    reference, ref = _run(tmp_path / "ref", iterations=10, batch_size=4, checkpoint_every=3, keep_checkpoints=10)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    good = "state_000000006.pt"
    (run / "checkpoints" / good).write_bytes((tmp_path / "ref" / "checkpoints" / good).read_bytes())
    (run / "checkpoints" / "state_000000009.pt").write_bytes(b"truncated by a crashed copy")
    model, result = _run(run, model=TinyNet(), iterations=10, batch_size=4, checkpoint_every=3)
    assert "skipping unreadable training state" in caplog.text
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert _strip_speed(result.history) == _strip_speed(ref.history)


class _SigtermAtCall(torch.utils.data.Dataset):
    """ToyClips that sends SIGTERM to its own process when item number ``at`` (counting every fetch) is loaded."""

    def __init__(self, base, at):
        self.base, self.at, self.calls = base, at, 0

    def set_epoch(self, epoch):
        self.base.set_epoch(epoch)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.base[i]


def test_sigterm_mid_step_finishes_the_whole_accumulated_step_then_resumes_exactly(tmp_path):
    config = dict(epochs=3, batch_size=2, accumulate=2, base_lr=0.5, checkpoint_every=1)
    reference, ref = _run(tmp_path / "ref", **config)
    handler = signal.getsignal(signal.SIGTERM)
    # 16 clips, 4 per optimizer step: fetch 21 is in the first micro-batch of step 6 (epoch 2, position 2).
    with pytest.raises(TrainingInterrupted) as info:
        _run(tmp_path / "run", _SigtermAtCall(ToyClips(16), at=21), **config)
    assert info.value.exit_code == 75 and info.value.step == 6
    state = torch.load(info.value.checkpoint, weights_only=True)
    assert (state["step"], state["epoch"], state["position"]) == (6, 1, 2)
    assert signal.getsignal(signal.SIGTERM) == handler  # the engine's handler is removed again
    model, result = _run(tmp_path / "run", model=TinyNet(), **config)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert _strip_speed(result.history) == _strip_speed(ref.history)


def test_loader_workers_do_not_change_the_result(tmp_path):
    a, ra = _run(tmp_path / "a", iterations=6, batch_size=4, num_workers=0)
    b, rb = _run(tmp_path / "b", iterations=6, batch_size=4, num_workers=2)
    for key, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], value), key
    assert _strip_speed(ra.history) == _strip_speed(rb.history)


def test_multilabel_bce_training_learns_which_classes_are_absent_on_held_out_clips(tmp_path):
    """Each toy clip has two of three classes (c and c+1); after BCE training the absent one must score lowest on
    clips the model never saw (chance: 1 in 3), and the loss must fall well below the 0.69 of an untrained head."""
    model = _fresh_model()
    result = train(model, ToyClips(24, multilabel=True), TrainConfig(epochs=10, batch_size=4, loss="bce"),
                   out_dir=tmp_path)
    assert all(math.isfinite(r["loss"]) and 0 <= r["train_top1"] <= 1 for r in result.history)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    held_out = ToyClips(30, multilabel=True, seed=1)
    model.eval()
    with torch.no_grad():
        right = sum(int(model([x[None] for x in item["inputs"]])[0].argmin() == item["label"].argmin())
                    for item in (held_out[i] for i in range(len(held_out))))
    assert right >= 27, right


def test_adamw_runs_resume_bit_identically_and_keep_weight_decay_off_norm_parameters(tmp_path):
    """``optimizer: adamw`` (the embedded default's): its moment estimates travel in the checkpoint like SGD's
    momentum, so a run resumed from a mid-run state ends with the same weights as one that never stopped."""
    from slowfast.engine.train import build_optimizer

    config = dict(iterations=8, batch_size=4, checkpoint_every=3, keep_checkpoints=10, optimizer="adamw",
                  base_lr=0.01, weight_decay=0.05)
    optimizer = build_optimizer(_fresh_model(), TrainConfig(**config))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.05]
    reference, ref = _run(tmp_path / "ref", **config)
    state = next(p for p in list_states(tmp_path / "ref" / "checkpoints") if p.name == "state_000000003.pt")
    run = tmp_path / "resumed"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / state.name).write_bytes(state.read_bytes())
    model, result = _run(run, model=TinyNet(), **config)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert _strip_speed(result.history) == _strip_speed(ref.history)
    sgd, _ = _run(tmp_path / "sgd", **{**config, "optimizer": "sgd"})
    assert any(not torch.equal(sgd.state_dict()[k], v) for k, v in reference.state_dict().items())
