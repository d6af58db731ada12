"""Training-state checkpoints: everything needed to continue a run exactly where it stopped.

A state file holds the model and optimizer state dicts, the step/epoch/position counters (the learning rate is a
pure function of them, see ``schedule``), the partial-epoch metric sums, the metric history, the RNG states of
torch, CUDA, numpy and ``random`` (as tensors), and the ``TrainConfig`` as a plain mapping. Nothing in it is a
pickled object, so it loads with ``torch.load(weights_only=True)``. Files are written atomically
(``slowfast.utils.io.atomic_path``) as ``state_<step>.pt`` (temp files a killed writer left are removed at the next
save); loading walks from the newest to older ones and skips any that cannot be read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slowfast.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

FORMAT = "slowfast.training_state/1"
_NAME = re.compile(r"^state_(\d{9})\.pt$")


def state_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"state_{step:09d}.pt"


def list_states(directory: Path) -> list[Path]:
    """State files in ``directory``, newest (highest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def rng_state() -> dict[str, Any]:
    """The RNG states of torch (CPU and CUDA), numpy and ``random``, as tensors and plain numbers."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "random": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    r = state["random"]
    random.setstate((r["version"], tuple(int(v) for v in r["state"].tolist()), r["gauss"]))


def save_state(directory: Path, state: dict[str, Any], *, keep: int) -> Path:
    """Write ``state`` (which must contain ``step``) atomically; then delete all but the ``keep`` newest files."""
    path = state_path(directory, state["step"])
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    for old in list_states(directory)[keep:]:
        old.unlink(missing_ok=True)
    for leftover in Path(directory).glob(".state_*.tmp"):  # temp files of a writer killed mid-write
        leftover.unlink(missing_ok=True)
    return path


def load_latest_state(directory: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest readable state in ``directory`` and its path, or None; unreadable files are skipped with a warning."""
    for path in list_states(directory):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file must not stop a resume when an older one is fine
            log.warning("skipping unreadable training state %s: %s", path, exc)
            continue
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            log.warning("skipping %s: not a %s file", path, FORMAT)
            continue
        return state, path
    return None


def inputs_fingerprint(*, files: tuple[str | os.PathLike[str], ...] = (), **inputs: Any) -> dict[str, Any]:
    """What a training run depends on, for :func:`resume_allowed`: the JSON-able ``inputs``, the contents of
    ``files`` (e.g. the shard manifest, a pretrained checkpoint) and the installed ``slowfast`` source (a code
    change is a new run, as DVC sees it)."""
    import slowfast

    def sha256(paths: list[Path]) -> str:
        digest = hashlib.sha256()
        for path in paths:
            digest.update(path.as_posix().encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    return {**json.loads(json.dumps(inputs, sort_keys=True, default=str)),
            "files": {str(f): sha256([Path(f)]) for f in files},
            "code": sha256(sorted(Path(slowfast.__file__).parent.rglob("*.py")))}


def resume_allowed(out_dir: str | os.PathLike[str], fingerprint: dict[str, Any]) -> bool:
    """True when ``out_dir``'s training states were written for exactly these inputs (an interrupted run of the same
    job), False for a new job, whose run must start over; records ``fingerprint`` in ``out_dir/inputs.json``."""
    path = Path(out_dir) / "inputs.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    write_json_atomic(path, fingerprint)
    return previous == fingerprint
