"""``params.yaml`` → validated dataclasses: one section per stage, the only place a number of the pipeline lives.

Every stage loads and validates the *whole* file before doing any work, so a wrong value in any section fails the
first stage that runs, naming the key (``pretrain.train.base_lr: must be > 0, got -1``) and what is allowed.
Each section is built from the library's own configuration objects (``TrainConfig``, ``DecodeConfig``, ...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slowfast.config import ConfigError, from_mapping, require
from slowfast.data.decode import DecodeConfig
from slowfast.data.sampling import SamplingConfig
from slowfast.data.sources import AvaFiles, CustomDatasetConfig
from slowfast.data.synthetic.release import SyntheticParams
from slowfast.data.transforms import TransformConfig
from slowfast.detection.person import PersonDetectorConfig, PersonTrainConfig
from slowfast.engine.config import EvalConfig, TrainConfig
from slowfast.metrics.ava import AvaEvalConfig
from slowfast.models.config import SlowFastConfig
from slowfast.models.presets import Preset, get_preset, preset_config
from slowfast.visualize.config import DemoConfig


@dataclass(frozen=True)
class TrackingParams:
    """MLflow: the experiment of every run, and the registered name of the pretrained model."""

    experiment: str = "slowfast"
    registered_model: str = "slowfast-kinetics"
    #: the alias of the best evaluated model in the registry (`models:/slowfast-kinetics@champion`); a version that
    #: does not beat it on top-1 on the same evaluation data is `@challenger` (slowfast.tracking.models.assign_alias)
    alias: str = "champion"
    system_metrics: bool = True

    def __post_init__(self) -> None:
        from slowfast.tracking.models import check_alias

        try:
            check_alias(self.alias)
        except ValueError as exc:
            raise ConfigError("alias", str(exc).split(": ", 1)[-1]) from None


@dataclass(frozen=True)
class DownloadParams:
    #: the manifest of the files to fetch (https or file URLs); the default is the synthetic datasets' own
    manifest: str = "data/published/manifest.json"
    workers: int = 4
    retries: int = 4
    #: items that may fail while the stage still succeeds; more failures make it exit 1 (after every other item
    #: finished), so DVC does not record it as done and the next `dvc repro` fetches what is missing
    max_failures: int = 0

    def __post_init__(self) -> None:
        require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        require(self.retries >= 0, "retries", f"must be >= 0, got {self.retries}")
        require(self.max_failures >= 0, "max_failures", f"must be >= 0, got {self.max_failures}")


@dataclass(frozen=True)
class DecodeParams:
    workers: int = 2
    frames: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class ModelParams:
    """A preset of ``slowfast.models.PRESETS`` and overrides of its config (``num_classes`` comes from the data)."""

    preset: str = "slowfast_tiny"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_preset(self.preset)  # ConfigError naming "preset" and the allowed names
        require("num_classes" not in self.overrides, "overrides.num_classes", "is set from the dataset's classes")
        try:
            preset_config(self.preset, **self.overrides)
        except ConfigError as exc:
            raise ConfigError(f"overrides.{exc.key}", exc.message) from None

    @property
    def preset_info(self) -> Preset:
        return get_preset(self.preset)

    def config(self, num_classes: int) -> SlowFastConfig:
        return preset_config(self.preset, **self.overrides, num_classes=num_classes)

    def sampling(self, *, fps: float, test_clips: int = 10) -> SamplingConfig:
        """Clip geometry of the preset: T frames at stride τ for Slow, αT at stride τ/α for Fast (Sec. 3).

        A Slow-only model reads T frames at stride τ (as PySlowFast's SLOW_4x16), not every α-th of αT frames.
        """
        cfg, tau = self.config(1), self.preset_info.tau
        alpha = 1 if cfg.arch == "slow" else cfg.alpha
        return SamplingConfig(slow_frames=cfg.slow_frames, alpha=alpha, tau=tau, fps=fps, test_clips=test_clips)


@dataclass(frozen=True)
class PretrainParams:
    """Kinetics pretraining (Sec. 5): the recipe and the training-time augmentation."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1))
    transform: TransformConfig = field(default_factory=TransformConfig)
    #: split used for the per-epoch validation (one centre view per video); null = none
    val_split: str | None = "val"


@dataclass(frozen=True)
class EvaluateParams:
    """Multi-view testing (Sec. 5.1): ``test_clips`` clips × ``transform.test_crops`` crops, scores averaged."""

    split: str = "val"
    test_clips: int = 10
    transform: TransformConfig = field(default_factory=TransformConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    #: the demo video of the split's first video logged to MLflow (a short, small clip: it costs seconds)
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(max_seconds=4.0, max_side=160, cam=True))

    def __post_init__(self) -> None:
        require(self.test_clips >= 1, "test_clips", f"must be >= 1, got {self.test_clips}")


@dataclass(frozen=True)
class FinetuneParams:
    """Fine-tuning from the Kinetics model with a new head (Sec. 6: Charades, step-wise decay, per-class sigmoid)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, loss="bce", schedule="steps"))
    transform: TransformConfig = field(default_factory=TransformConfig)
    #: split used for the per-epoch validation (one centre view per video); null = none
    val_split: str | None = "test"

    def __post_init__(self) -> None:
        require(self.train.loss == "bce", "train.loss", "multi-label fine-tuning uses 'bce' (per-class sigmoid)")


@dataclass(frozen=True)
class CharadesParams:
    finetune: FinetuneParams = field(default_factory=FinetuneParams)
    #: Charades testing: scores max-pooled over the views (Sec. 6); the multi-label model already outputs sigmoids
    evaluate: EvaluateParams = field(default_factory=lambda: EvaluateParams(
        split="test", eval=EvalConfig(aggregate="max", activation="none")))


@dataclass(frozen=True)
class ProposalParams:
    """Person proposals for AVA (Sec. 5): a person detector pre-trained on rendered scenes (the part COCO plays
    for the paper's detector), fine-tuned on the train split's person boxes, run on every validation keyframe;
    boxes scoring above ``score_threshold`` are kept. ``import_file`` (a PySlowFast CSV or an MMAction2 pickle of
    published proposals) skips detection."""

    import_file: str | None = None
    score_threshold: float = 0.8
    pretrain_scenes: int = 1280
    seed: int = 0
    detector: PersonDetectorConfig = field(default_factory=PersonDetectorConfig)
    pretrain: PersonTrainConfig = field(default_factory=lambda: PersonTrainConfig(epochs=12))
    finetune: PersonTrainConfig = field(default_factory=lambda: PersonTrainConfig(epochs=10))

    def __post_init__(self) -> None:
        require(0.0 <= self.score_threshold < 1.0, "score_threshold", f"must be in [0, 1), got {self.score_threshold}")
        require(self.pretrain_scenes >= 0, "pretrain_scenes", f"must be >= 0, got {self.pretrain_scenes}")


@dataclass(frozen=True)
class AvaFinetuneParams:
    """The AVA detector (Sec. 5): trained on ground-truth boxes, weight decay 1e-7, warm-up then step decay."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=1, loss="bce", schedule="steps", weight_decay=1e-7))
    transform: TransformConfig = field(default_factory=TransformConfig)

    def __post_init__(self) -> None:
        require(self.train.loss == "bce", "train.loss", "AVA actions are multi-label: 'bce' (per-class sigmoid)")


@dataclass(frozen=True)
class AvaEvaluateParams:
    """Inference on the proposals: one clip centred on each keyframe, short side ``transform.test_size``."""

    split: str = "val"
    batch_size: int = 4
    transform: TransformConfig = field(default_factory=TransformConfig)
    metric: AvaEvalConfig = field(default_factory=AvaEvalConfig)
    #: the demo video of the split's first movie (its proposals, first seconds) logged to MLflow
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(max_seconds=6.0, max_side=160, cam=True))

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class AvaParams:
    video_start_sec: int = 900  # movies are stored from second 900 on (15-minute segments, as PySlowFast's)
    #: the dataset root (a user's own AVA-style set: any folder) and its file names (null: the official ones)
    root: str = "data/raw/ava"
    files: AvaFiles = field(default_factory=AvaFiles)
    proposals: ProposalParams = field(default_factory=ProposalParams)
    finetune: AvaFinetuneParams = field(default_factory=AvaFinetuneParams)
    evaluate: AvaEvaluateParams = field(default_factory=AvaEvaluateParams)


@dataclass(frozen=True)
class CustomFinetuneParams:
    """Fine-tuning on a user's own single-label classes (Sec. 6's transfer: the pretrained backbone, a new softmax
    head; step-wise decay by default)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, schedule="steps"))
    transform: TransformConfig = field(default_factory=TransformConfig)
    #: split used for the per-epoch validation (one centre view per video); null = none
    val_split: str | None = "val"

    def __post_init__(self) -> None:
        require(self.train.loss == "cross_entropy", "train.loss",
                "a folder / list dataset has one label per video: 'cross_entropy' (softmax)")
        require(self.val_split in (None, "train", "val"), "val_split",
                f"got {self.val_split!r}, allowed: train, val or null")


@dataclass(frozen=True)
class CustomParams:
    """A user's own classification videos: ``decode_custom -> finetune_custom -> evaluate_custom`` (README "Your own
    videos"). With ``enabled: false`` (the default) the three stages only record that they are off."""

    enabled: bool = False
    dataset: CustomDatasetConfig = field(default_factory=CustomDatasetConfig)
    #: the model fine-tuned from: the pretrain stage's, or a converted model-zoo checkpoint (`slowfast convert`)
    init: str = "models/pretrain/model.pt"
    #: the MLflow registry name of the fine-tuned model (its alias is tracking.alias)
    registered_model: str = "slowfast-custom"
    finetune: CustomFinetuneParams = field(default_factory=CustomFinetuneParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)

    def __post_init__(self) -> None:
        require(self.evaluate.split in ("train", "val"), "evaluate.split",
                f"got {self.evaluate.split!r}, allowed: train, val")
        require(bool(self.registered_model.strip()), "registered_model", "must be a non-empty name")


@dataclass(frozen=True)
class PipelineParams:
    tracking: TrackingParams = field(default_factory=TrackingParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    download: DownloadParams = field(default_factory=DownloadParams)
    decode: DecodeParams = field(default_factory=DecodeParams)
    model: ModelParams = field(default_factory=ModelParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    charades: CharadesParams = field(default_factory=CharadesParams)
    ava: AvaParams = field(default_factory=AvaParams)
    custom: CustomParams = field(default_factory=CustomParams)


def load_params(path: str | os.PathLike[str] = "params.yaml") -> PipelineParams:
    """Read and validate the whole ``params.yaml``; errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path}: not valid YAML: {exc}") from None
    try:
        return from_mapping(PipelineParams, raw)
    except ConfigError as exc:
        raise ConfigError(exc.key, f"{exc.message} (in {path})") from None


def section(path: str | os.PathLike[str], *names: str) -> dict[str, Any]:
    """The raw mappings of ``names`` in ``params.yaml`` (what a stage logs to MLflow as its parameters)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return {name: raw.get(name, {}) for name in names}


def run_stage(main: Callable[[], int]) -> None:
    """Run a stage's ``main`` and exit with its code; an invalid parameter exits 2 with the key, an output that
    cannot be written (disk full, folder locked by another writer, tracking store failed) exits 1, training stopped
    by SIGTERM exits 75 (``TrainingInterrupted``, checkpoint written); each prints one line, no traceback."""
    from slowfast.utils.io import OutputError

    try:
        code = main()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except RuntimeError as exc:  # training stopped by SIGTERM (checkpoint written): its own exit code, no traceback
        if not isinstance(getattr(exc, "exit_code", None), int):
            raise
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    raise SystemExit(code)
