"""Hostile payloads for the loaders' tests: objects that would leave a trace if any loader ever ran them."""

from __future__ import annotations

import os
from pathlib import Path


class SideEffect:
    """Pickles to a call of ``os.system`` that creates ``marker``: if the file exists, a loader ran foreign code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
