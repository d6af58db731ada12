"""Learning-rate schedules: the paper's half-period cosine with linear warm-up, and step-wise decay.

Sec. 5 / Appendix A.2: "we adopt a half-period cosine schedule of learning rate decaying: the learning rate at the
n-th iteration is η·0.5·[cos(n/n_max·π)+1]", with a linear warm-up (Goyal et al.) at the start. The warm-up, as in
PySlowFast, rises linearly from ``warmup_start_lr`` to the value the main schedule has where the warm-up ends.
Fine-tuning (Charades, AVA) multiplies the rate by 0.1 at given steps instead.

The rate is a pure function of training progress, so the schedule has no state beyond the step counter stored in
the training checkpoint.
"""

from __future__ import annotations

import bisect
import math

from slowfast.engine.config import TrainConfig


def _main_schedule(config: TrainConfig, t: float) -> float:
    if config.schedule == "cosine":
        return config.end_lr + (config.base_lr - config.end_lr) * 0.5 * (math.cos(math.pi * t / config.length) + 1)
    return config.base_lr * config.lr_factor ** bisect.bisect_right(config.lr_steps, t)


def learning_rate(config: TrainConfig, t: float) -> float:
    """The learning rate at progress ``t`` in ``config.unit`` (fractional epochs, or iterations), 0 <= t <= length."""
    if t < config.warmup:
        end = _main_schedule(config, config.warmup)
        return config.warmup_start_lr + (end - config.warmup_start_lr) * t / config.warmup
    return _main_schedule(config, t)
