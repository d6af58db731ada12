"""The learning-rate schedules of the paper's recipe (Sec. 5, Appendix A.2)."""

from __future__ import annotations

import math

import pytest

from slowfast.engine import TrainConfig, learning_rate


def test_cosine_without_warmup_follows_the_half_period_formula_and_reaches_zero():
    config = TrainConfig(iterations=1000, base_lr=1.6)
    for n in (0, 100, 250, 500, 999, 1000):
        assert learning_rate(config, n) == pytest.approx(1.6 * 0.5 * (math.cos(n / 1000 * math.pi) + 1))
    assert learning_rate(config, 0) == pytest.approx(1.6)
    assert learning_rate(config, 1000) == pytest.approx(0.0, abs=1e-12)


def test_warmup_rises_linearly_from_the_start_lr_to_the_cosine_value_then_decays_to_zero():
    config = TrainConfig(epochs=10, base_lr=1.0, warmup=2, warmup_start_lr=0.1)
    at_end_of_warmup = 0.5 * (math.cos(2 / 10 * math.pi) + 1)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 1) == pytest.approx((0.1 + at_end_of_warmup) / 2)
    assert learning_rate(config, 1.999999) == pytest.approx(at_end_of_warmup, rel=1e-5)
    assert learning_rate(config, 2) == pytest.approx(at_end_of_warmup)
    values = [learning_rate(config, t / 10) for t in range(20, 101)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.0, abs=1e-12)
    rising = [learning_rate(config, t / 10) for t in range(0, 21)]
    assert all(a < b for a, b in zip(rising, rising[1:]))


def test_step_decay_multiplies_by_the_factor_at_each_step():
    config = TrainConfig(iterations=24000, base_lr=0.0375, schedule="steps", lr_steps=(16000, 20000))
    assert learning_rate(config, 0) == pytest.approx(0.0375)
    assert learning_rate(config, 15999) == pytest.approx(0.0375)
    assert learning_rate(config, 16000) == pytest.approx(0.00375)
    assert learning_rate(config, 19999.5) == pytest.approx(0.00375)
    assert learning_rate(config, 20000) == pytest.approx(0.000375)
    assert learning_rate(config, 24000) == pytest.approx(0.000375)


def test_step_decay_warmup_ends_at_the_base_lr():
    config = TrainConfig(iterations=14000, base_lr=0.1, schedule="steps", lr_steps=(10000,), warmup=1000,
                         warmup_start_lr=0.0)
    assert learning_rate(config, 500) == pytest.approx(0.05)
    assert learning_rate(config, 1000) == pytest.approx(0.1)
