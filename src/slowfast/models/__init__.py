"""SlowFast models (Feichtenhofer et al., ICCV 2019): config, network, presets, cost statistics.

``create_model("slowfast_4x16_r50")`` builds a preset; ``build_model(SlowFastConfig(...))`` any configuration;
``pack_pathways(frames, config)`` turns a clip of αT frames into the model's input list.
"""

from __future__ import annotations

from typing import Any

from .config import SlowFastConfig
from .presets import PRESETS, Preset, create_model, get_preset, preset_config
from .slowfast import SlowFast, build_model, pack_pathways
from .stats import count_flops, count_params, example_inputs, preset_stats

__all__ = [
    "PRESETS", "Preset", "SlowFast", "SlowFastConfig", "build_model", "count_flops", "count_params",
    "create_model", "example_inputs", "get_preset", "load_model", "pack_pathways", "preset_config",
    "preset_stats",
]


def load_model(path: Any, **kwargs: Any) -> SlowFast:
    """Load a model saved with ``slowfast.models.checkpoint.save_model`` (see that module)."""
    from .checkpoint import load_model as _load

    return _load(path, **kwargs)
