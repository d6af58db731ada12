"""SlowFast Networks for Video Recognition (Feichtenhofer, Fan, Malik, He, ICCV 2019).

The library behind the pipeline: models (``slowfast.models``), data (``slowfast.data``), the training and
evaluation engine (``slowfast.engine``), metrics (``slowfast.metrics``) and detection (``slowfast.detection``).
"""

__version__ = "0.1.0"


def load_model(path, *, map_location="cpu"):  # noqa: ANN001, ANN201 - re-exported for `slowfast.load_model(PATH)`
    """Rebuild a model from a checkpoint of this package's format alone, in eval mode (weights_only load)."""
    from slowfast.models.checkpoint import load_model as _load_model

    return _load_model(path, map_location=map_location)
