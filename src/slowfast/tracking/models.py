"""The trained model in MLflow: logged with a signature, registered under a name and an alias, and resolved back.

Loading must never unpickle. ``mlflow.pytorch.log_model`` pickles the whole ``nn.Module`` and loads it with
``torch.load(weights_only=False)``, which runs whatever code the artifact store holds, so it is not used. A model is
logged instead as an MLflow 3 *models from code* pyfunc: the code is :mod:`slowfast.tracking.model_code` (copied into
the logged model; MLflow runs it at load time, no cloudpickle), and the data are three artifacts:

- ``checkpoint``: our ``slowfast/1`` file (:mod:`slowfast.models.checkpoint`, read with ``weights_only=True``);
- ``classes``: ``classes.json``, the class names in index order;
- ``preprocessing``: ``preprocessing.json``, what the model expects of a video (:class:`Preprocessing`).

:func:`resolve_model` turns a local checkpoint or an MLflow URI (``models:/NAME@ALIAS``, ``models:/NAME/3``,
``runs:/RUN_ID/model``, ``models:/m-...``) into ``(model, classes, preprocessing)``; for a URI it downloads the
model's files and reads the checkpoint itself, without running the logged code.

The registry rule (:func:`assign_alias`, called by the ``evaluate`` stage once the evaluation metric is known): a new
version takes ``@champion`` only when it beats the current champion on that metric (``top1``) on the same
evaluation data (the same :func:`slowfast.tracking.compare.data_fingerprint`); otherwise it gets ``@challenger``.
Every version is tagged with its preset, the git commit, the checkpoint's digest and, once evaluated, its
evaluation data fingerprint and metrics, so the registry page says what each version is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

from slowfast.config import from_mapping, to_mapping
from slowfast.data.decode import DecodeConfig
from slowfast.data.sampling import SamplingConfig
from slowfast.data.transforms import TransformConfig
from slowfast.models.checkpoint import load_model, read_checkpoint, read_class_names
from slowfast.models.config import SlowFastConfig
from slowfast.models.presets import PRESETS, preset_config
from slowfast.models.slowfast import SlowFast
from slowfast.utils.io import write_json_atomic

log = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("model_code.py")
ARTIFACTS = {"checkpoint": "model.pt", "classes": "classes.json", "preprocessing": "preprocessing.json"}
URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")
_ALIAS = re.compile(r"[\w\-]{1,255}")

TAG_PRESET = "slowfast.preset"
TAG_GIT_COMMIT = "slowfast.git_commit"
TAG_CHECKPOINT = "slowfast.checkpoint_sha256"
TAG_EVAL_DATA = "slowfast.eval_data"  # the same tag name as slowfast.tracking.compare's
METRIC_TAG_PREFIX = "metric."
CHALLENGER = "challenger"
REGISTERED_MODEL_DESCRIPTION = (
    "SlowFast (Feichtenhofer et al., ICCV 2019) pretrained by the pipeline's `pretrain` stage, one version per "
    "training run. @champion is the best version on the evaluation metric (top-1 of the `evaluate` stage) on the "
    "same evaluation data (tag slowfast.eval_data); a version that does not beat it is @challenger. Tags: preset, "
    "git commit, checkpoint digest, evaluation data fingerprint, metric.*."
)


def check_alias(alias: str) -> None:
    """The model registry's rule for an alias: letters, digits, ``_`` and ``-``; ``latest`` and ``v<number>`` are
    reserved (they already mean the newest version and version <number>)."""
    if not _ALIAS.fullmatch(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise ValueError(f"alias: got {alias!r}, allowed: 1-255 letters, digits, '_' or '-', except the reserved "
                         "'latest' and 'v<number>' (e.g. 'champion', 'current')")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a video becomes the model's input: decoding (rate, short side), clip geometry, spatial test views."""

    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)


class ResolvedModel(NamedTuple):
    model: SlowFast
    classes: list[str]
    preprocessing: Preprocessing


def infer_preprocessing(config: SlowFastConfig, meta: dict[str, Any] | None = None) -> Preprocessing:
    """The preprocessing of a checkpoint that stores none: its ``meta["preprocessing"]`` if present, else the geometry
    of its preset (``meta["preset"]``, or the preset whose config it equals up to ``num_classes``).

    Without a preset the Fast pathway reads every 2nd frame at 30 fps (τ = 2α), the geometry of every preset of the
    paper (4×16: α = 8, τ = 16; 8×8: α = 4, τ = 8). Test views are the preset's ``test_crop`` (256 in the paper).
    """
    meta = meta or {}
    if isinstance(meta.get("preprocessing"), dict):
        return from_mapping(Preprocessing, meta["preprocessing"], prefix="meta.preprocessing")
    name = meta.get("preset") if meta.get("preset") in PRESETS else None
    if name is None:
        name = next((n for n in PRESETS if preset_config(n, num_classes=config.num_classes) == config), None)
    alpha = 1 if config.arch == "slow" else config.alpha
    tau = PRESETS[name].tau if name else 2 * config.alpha
    test_size = PRESETS[name].test_crop if name else TransformConfig().test_size
    log.info("preprocessing inferred from %s: T=%d, alpha=%d, tau=%d, test size %d",
             f"preset {name}" if name else "the model config", config.slow_frames, alpha, tau, test_size)
    return Preprocessing(
        sampling=SamplingConfig(slow_frames=config.slow_frames, alpha=alpha, tau=tau),
        transform=dataclasses.replace(TransformConfig(), test_size=test_size),
        decode=dataclasses.replace(DecodeConfig(), short_side=test_size),
    )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable {what}: {exc}") from None


def load_local(path: str | os.PathLike[str], *, classes_path: Path | None = None,
               preprocessing_path: Path | None = None) -> ResolvedModel:
    """A ``slowfast/1`` checkpoint with its class names (:func:`~slowfast.models.checkpoint.read_class_names`: stored
    in it, else ``classes.json`` beside it) and optionally ``preprocessing.json`` beside it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    model = load_model(path)
    classes = read_class_names(path, model.config.num_classes, classes_path=classes_path)
    pre_path = preprocessing_path or path.with_name(ARTIFACTS["preprocessing"])
    if pre_path.is_file():
        preprocessing = from_mapping(Preprocessing, _read_json(pre_path, "preprocessing"), prefix=str(pre_path))
    else:
        preprocessing = infer_preprocessing(model.config, read_checkpoint(path)["meta"])
    return ResolvedModel(model, classes, preprocessing)


def _inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, refused when it leaves ``root`` (paths in MLmodel come from the artifact store)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"{what}: path {relative!r} leaves the model directory {root}")
    return target


def load_mlflow_dir(model_dir: str | os.PathLike[str]) -> ResolvedModel:
    """A downloaded MLflow model logged by :func:`log_model`: its artifacts read from MLmodel (YAML), code not run."""
    import yaml

    root = Path(model_dir)
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise ValueError(f"{root}: not an MLflow model (no MLmodel file)")
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
    artifacts = flavor.get("artifacts") or {}
    missing = [name for name in ARTIFACTS if name not in artifacts]
    if missing:
        raise ValueError(f"{root}: not a SlowFast model logged by slowfast.tracking.models (no artifact "
                         f"{', '.join(missing)}; it has {', '.join(artifacts) or 'none'})")
    paths = {}
    for name in ARTIFACTS:
        relative = artifacts[name].get("path") if isinstance(artifacts[name], dict) else None
        if not isinstance(relative, str) or not relative:
            raise ValueError(f"{mlmodel}: artifact {name} has no path")
        paths[name] = _inside(root, relative, f"{mlmodel} artifact {name}")
    return load_local(paths["checkpoint"], classes_path=paths["classes"],
                      preprocessing_path=paths["preprocessing"])


def _mlflow_error(uri: str, exc: Exception, tracking: str | None) -> ValueError:
    """One line saying which model could not be found where, with the registry's hint (known aliases)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = ""
    if uri.startswith("models:/") and "@" in uri:
        import mlflow

        name = uri[len("models:/"):].split("@", 1)[0]
        try:
            aliases = sorted(mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
                             .get_registered_model(name).aliases)
            hint = f"; aliases of {name!r}: {', '.join(aliases) or 'none'}"
        except Exception:  # noqa: BLE001 - the hint is best effort; the first error is the one to report
            hint = f"; no registered model {name!r}"
    return ValueError(f"model {uri} (tracking {tracking or 'default'}): {message}{hint}")


def _artifact_location(uri: str, tracking: str | None) -> str:
    """Where the files of the model at ``uri`` are, asked of the store at ``tracking``: MLflow's own resolution of
    ``models:/NAME@ALIAS`` and ``runs:/`` consults the process-wide tracking/registry URI, not the one given."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    if uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/"):].partition("/")
        run = client.get_run(run_id)
        for output in (run.outputs.model_outputs if run.outputs else None) or []:
            logged = client.get_logged_model(output.model_id)
            if logged.name == path.strip("/"):
                return logged.artifact_location
        return f"{run.info.artifact_uri.rstrip('/')}/{path}"
    ref = uri[len("models:/"):] if uri.startswith("models:/") else None
    if ref is None:
        return uri
    if re.fullmatch(r"m-[0-9a-f]+", ref):  # a logged model's id (MLflow 3)
        return client.get_logged_model(ref).artifact_location
    name, at, alias = ref.partition("@")
    if at:
        version = client.get_model_version_by_alias(name, alias).version
    elif re.fullmatch(r"[^/]+/\d+", ref):
        name, version = ref.split("/")
    else:
        return uri
    return client.get_model_version_download_uri(name, version)


def resolve_model(uri_or_path: str | os.PathLike[str], *, tracking_uri: str | None = None) -> ResolvedModel:
    """(model in eval mode, class names, preprocessing) of a local checkpoint, a downloaded MLflow model directory,
    or an MLflow model URI (downloaded from ``tracking_uri``, checked to be reachable first)."""
    text = os.fspath(uri_or_path)
    if not text.startswith(URI_SCHEMES):
        path = Path(text)
        return load_mlflow_dir(path) if path.is_dir() else load_local(path)
    import mlflow
    from mlflow.exceptions import MlflowException

    from slowfast.tracking.runs import check_tracking_uri

    if tracking_uri:
        check_tracking_uri(tracking_uri)
        store = Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None
        if store is not None and not store.is_file():  # MLflow would create an empty store there
            raise FileNotFoundError(f"MLflow store {tracking_uri}: {store} does not exist")
    with tempfile.TemporaryDirectory(prefix="slowfast-model-") as tmp:
        try:
            location = _artifact_location(text, tracking_uri)
            local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri,
                                                        registry_uri=tracking_uri)
        except (MlflowException, OSError) as exc:
            raise _mlflow_error(text, exc, tracking_uri) from None
        return load_mlflow_dir(local)


def model_signature(config: SlowFastConfig, sampling: SamplingConfig) -> Any:
    """No input schema (a request holds a video or ``(-1, C, αT, S, S)`` float32 clips, checked by
    :mod:`slowfast.tracking.serving`, which a schema cannot say), the answer's parameters ``top_k``, ``clips`` and
    ``crops`` with their defaults."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    from slowfast.tracking.serving import PARAMS

    defaults = {**PARAMS, "top_k": min(PARAMS["top_k"], config.num_classes)}
    return ModelSignature(inputs=None, outputs=None,
                          params=ParamSchema([ParamSpec(name, "long", value) for name, value in defaults.items()]))


def _requirements() -> list[str]:
    """Pinned from this environment, so that MLflow does not load the model in a subprocess to infer them."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in ("slowfast-mlops", "torch", "numpy", "mlflow", "pyyaml"):
        try:
            pins.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def log_model(
    model_path: str | os.PathLike[str],
    *,
    classes: list[str],
    sampling: SamplingConfig,
    transform: TransformConfig,
    decode: DecodeConfig | None = None,
    registered_name: str | None = None,
    alias: str | None = None,
    name: str = "model",
    preset: str | None = None,
) -> Any:
    """Log the checkpoint at ``model_path`` to the active MLflow run as a pyfunc model with a signature; register
    it as ``registered_name`` (a new version) and point ``alias`` at that version. Returns MLflow's ``ModelInfo``.

    Call inside ``mlflow.start_run()`` (e.g. :func:`slowfast.tracking.runs.stage_run`). ``sampling``,
    ``transform`` and ``decode`` are what the evaluate stage uses, stored as the model's ``preprocessing``.
    """
    import mlflow

    if alias is not None and registered_name is None:
        raise ValueError("alias: needs registered_name (an alias names a version of a registered model)")
    if alias is not None:
        check_alias(alias)
    if mlflow.active_run() is None:
        raise RuntimeError("log_model: no active MLflow run (call it inside mlflow.start_run or stage_run)")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model_path: checkpoint {model_path} does not exist")
    config = load_model(model_path).config  # also proves the file loads with weights_only=True
    if len(classes) != config.num_classes:
        raise ValueError(f"classes: {len(classes)} names for a model with {config.num_classes} outputs")
    preprocessing = Preprocessing(sampling=sampling, transform=transform, decode=decode or DecodeConfig())
    with tempfile.TemporaryDirectory(prefix="slowfast-log-") as tmp:
        write_json_atomic(Path(tmp) / ARTIFACTS["classes"], [str(c) for c in classes])
        write_json_atomic(Path(tmp) / ARTIFACTS["preprocessing"], to_mapping(preprocessing))
        with warnings.catch_warnings():
            # An input example would be megabytes of JSON (one clip); the signature is given explicitly.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(MODEL_CODE),
                artifacts={"checkpoint": str(model_path.resolve()),
                           "classes": str(Path(tmp) / ARTIFACTS["classes"]),
                           "preprocessing": str(Path(tmp) / ARTIFACTS["preprocessing"])},
                signature=model_signature(config, sampling),
                pip_requirements=_requirements(),
                registered_model_name=registered_name,
            )
    if registered_name is not None:
        client = mlflow.MlflowClient()
        version = str(info.registered_model_version)
        if not client.get_registered_model(registered_name).description:
            client.update_registered_model(registered_name, description=REGISTERED_MODEL_DESCRIPTION)
        from slowfast.tracking.runs import git_commit

        tags = {TAG_CHECKPOINT: file_sha256(model_path), TAG_GIT_COMMIT: git_commit(".") or "unknown",
                **({TAG_PRESET: str(preset)} if preset else {})}
        for key, value in tags.items():
            client.set_model_version_tag(registered_name, version, key, value)
        if alias is not None:
            client.set_registered_model_alias(registered_name, alias, version)
            log.info("registered %s version %s as %s@%s", info.model_uri, version, registered_name, alias)
        else:
            log.info("registered %s as %s version %s (its alias is decided once it is evaluated)", info.model_uri,
                     registered_name, version)
    return info


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_version(registered_name: str, checkpoint: str | os.PathLike[str]) -> Any | None:
    """The newest registered version of ``registered_name`` logged from the very file ``checkpoint`` (its digest),
    or None (the model was never registered, e.g. trained outside the pipeline)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    sha = file_sha256(checkpoint)
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{registered_name}'")
    except MlflowException:
        return None
    matching = [v for v in versions if v.tags.get(TAG_CHECKPOINT) == sha]
    return max(matching, key=lambda v: int(v.version)) if matching else None


def assign_alias(
    registered_name: str,
    version: str,
    *,
    metrics: dict[str, float],
    metric: str,
    eval_data: str,
    champion: str = "champion",
    challenger: str = CHALLENGER,
) -> str:
    """Tag ``version`` with its evaluation (``metrics``, ``eval_data``) and give it ``champion`` when there is none,
    when it already is the champion, or when it beats the champion's ``metric`` (higher is better) on the same
    ``eval_data``; otherwise ``challenger``. Returns the alias given."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    version = str(version)
    client.set_model_version_tag(registered_name, version, TAG_EVAL_DATA, eval_data)
    for key, value in metrics.items():
        client.set_model_version_tag(registered_name, version, f"{METRIC_TAG_PREFIX}{key}", f"{float(value):.6g}")
    try:
        current = client.get_model_version_by_alias(registered_name, champion)
    except MlflowException:
        current = None
    value = float(metrics[metric])
    if current is None or str(current.version) == version:
        reason = "no champion yet" if current is None else "it is the champion, re-evaluated"
        alias = champion
    else:
        theirs = current.tags.get(f"{METRIC_TAG_PREFIX}{metric}")
        if current.tags.get(TAG_EVAL_DATA) != eval_data or theirs is None:
            alias, reason = challenger, f"champion v{current.version} was evaluated on other data: not comparable"
        elif value > float(theirs):
            alias, reason = champion, f"{metric} {value:.4f} > champion v{current.version}'s {float(theirs):.4f}"
        else:
            alias, reason = challenger, f"{metric} {value:.4f} <= champion v{current.version}'s {float(theirs):.4f}"
    client.set_registered_model_alias(registered_name, alias, version)
    if alias == champion and current is not None and str(current.version) != version:
        client.set_registered_model_alias(registered_name, challenger, str(current.version))  # the one it beat
    log.info("%s version %s is @%s: %s", registered_name, version, alias, reason)
    return alias


def describe_model(uri: str, *, tracking_uri: str | None = None) -> str | None:
    """For ``models:/NAME@ALIAS`` or ``models:/NAME/N``: "NAME version N (@aliases), preset P"; None otherwise."""
    import mlflow

    ref = uri[len("models:/"):] if uri.startswith("models:/") else None
    if ref is None or re.fullmatch(r"m-[0-9a-f]+", ref):
        return None
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name, at, alias = ref.partition("@")
    if at:
        mv = client.get_model_version_by_alias(name, alias)
    elif re.fullmatch(r"[^/]+/\d+", ref):
        name, number = ref.split("/")
        mv = client.get_model_version(name, number)
    else:
        return None
    aliases = ", ".join(f"@{a}" for a in sorted(mv.aliases or [])) or "no alias"
    return f"{name} version {mv.version} ({aliases}), preset {mv.tags.get(TAG_PRESET, 'unknown')}"
