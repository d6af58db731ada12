"""Datasets: sources in their official layouts, download, decoding into frame shards, and clip datasets."""

from slowfast.data.shards import FrameShards

__all__ = ["FrameShards"]
