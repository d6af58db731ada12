"""Modules imported on first use, so that command-line start-up (``slowfast --help``) does not pay for numpy/pandas
(about a second under load) when a command only parses its arguments."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        # Later look-ups find the module's attributes directly in this proxy's namespace.
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy_module(name: str) -> types.ModuleType:
    """The module ``name`` if it is already imported, else a stand-in that imports it on first attribute access."""
    return sys.modules.get(name) or _LazyModule(name)
