"""Reading foreign pickles (Caffe2 weights, MMAction2 proposal files) without running code from them.

A pickle names each callable it wants to run (``GLOBAL module name``) and the unpickler resolves it in
``find_class``; :class:`ArrayUnpickler` resolves only numpy's array machinery and ``bytes``, so a malicious file
(e.g. one reducing to ``os.system``) fails before any of its code runs.
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np


def _numpy_globals() -> dict[str, Any]:
    """The only globals a pickle of numpy arrays needs, under the module names numpy 1.x and 2.x write."""
    core = importlib.import_module("numpy._core" if hasattr(np, "_core") else "numpy.core")
    allowed = {
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
        "collections.OrderedDict": OrderedDict,
        "_codecs.encode": codecs.encode,  # how protocol-2 pickles written by Python 3 spell bytes
        # protocol-2 pickles (mmcv.dump's default) spell the empty buffer of a (0, 5) array as bytes()
        "__builtin__.bytes": bytes,
        "builtins.bytes": bytes,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[f"{package}.multiarray._reconstruct"] = core.multiarray._reconstruct
        allowed[f"{package}.multiarray.scalar"] = core.multiarray.scalar
        allowed[f"{package}.numeric._frombuffer"] = core.numeric._frombuffer  # protocol-5 arrays
    return allowed


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, plain scalars and numpy arrays; refuses every other global before it is called."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get(f"{module}.{name}")
        if found is None:
            raise pickle.UnpicklingError(
                f"refused global '{module}.{name}': only numpy arrays, dicts and plain values may be unpickled"
            )
        return found


def load_array_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`ArrayUnpickler` (latin1, so Python 2 pickles read too); any failure is a
    ValueError naming the file."""
    try:
        with open(path, "rb") as fh:
            return ArrayUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse foreign bytes is a bad file, not a crash
        raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
