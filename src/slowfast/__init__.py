"""SlowFast Networks for Video Recognition (Feichtenhofer, Fan, Malik, He, ICCV 2019).

The library behind the pipeline: models (``slowfast.models``), data (``slowfast.data``), the training and
evaluation engine (``slowfast.engine``), metrics (``slowfast.metrics``) and detection (``slowfast.detection``).
"""

__version__ = "0.1.0"
