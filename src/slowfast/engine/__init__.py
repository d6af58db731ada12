"""The training and evaluation engine: the paper's recipe (Sec. 5, Appendix A.2) for any pathway-list model.

``train`` (exact resume, SIGTERM checkpoints, non-finite-loss guard, torchrun/DDP), ``evaluate`` (multi-view
testing), their configuration dataclasses ``TrainConfig`` / ``EvalConfig``, and the learning-rate schedule.
"""

from slowfast.engine.config import EvalConfig, TrainConfig
from slowfast.engine.evaluate import VideoScores, evaluate, read_scores, write_scores
from slowfast.engine.schedule import learning_rate
from slowfast.engine.train import EXIT_INTERRUPTED, TrainingInterrupted, TrainResult, seed_everything, train

__all__ = [
    "EXIT_INTERRUPTED",
    "EvalConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "VideoScores",
    "evaluate",
    "learning_rate",
    "read_scores",
    "seed_everything",
    "train",
    "write_scores",
]
