"""Datasets: sources in their official layouts, download, decoding into frame shards, and clip datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slowfast.data.shards import FrameShards

__all__ = ["FrameShards"]


def __getattr__(name: str) -> Any:
    # Imported on use: `slowfast.data.formats` (the AVA evaluator's CSV readers) must not pull in the video stack.
    if name == "FrameShards":
        from slowfast.data.shards import FrameShards

        return FrameShards
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
