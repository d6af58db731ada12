"""AVA inference (Sec. 5): score every box of every keyframe clip with the action detector.

The output is the official detections layout (``video_id, timestamp, x1, y1, x2, y2, action_id, score``, one row
per box and class, normalised boxes), ready for :func:`slowfast.metrics.ava.evaluate_ava` or ``write_ava_csv``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from slowfast.engine.evaluate import model_inputs


@torch.inference_mode()
def detect_actions(detector: nn.Module, dataset, class_ids: Sequence[int], *, batch_size: int = 4) -> pd.DataFrame:
    """Per-class scores of every box of ``dataset`` (an :class:`~slowfast.data.datasets.AvaDataset` built on the
    boxes to score, e.g. person proposals); ``class_ids`` are the label-map ids of the detector's outputs."""
    was_training = detector.training
    detector.eval()
    device = next(detector.parameters()).device
    ids = np.asarray(class_ids, dtype=np.int64)
    frames = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate):
        inputs = model_inputs(dataset, batch["inputs"], device)
        scores = detector(inputs, batch["boxes"].to(device)).float().cpu().numpy()
        row = 0
        for index in batch["index"]:
            video_id, timestamp, coords, _ = dataset.keyframes[index]  # coords: the normalised boxes, in item order
            k = len(coords)
            frames.append(pd.DataFrame({
                "video_id": video_id, "timestamp": timestamp,
                "x1": np.repeat(coords[:, 0], len(ids)), "y1": np.repeat(coords[:, 1], len(ids)),
                "x2": np.repeat(coords[:, 2], len(ids)), "y2": np.repeat(coords[:, 3], len(ids)),
                "action_id": np.tile(ids, k), "score": scores[row : row + k].reshape(-1)}))
            row += k
    detector.train(was_training)
    columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
