"""MLflow "models from code" entry point of a logged SlowFast model (see :mod:`slowfast.tracking.models`).

:func:`slowfast.tracking.models.log_model` hands this file's path to ``mlflow.pyfunc.log_model``: MLflow copies the
file into the logged model and, when the model is loaded, runs it to get the model object set below. Nothing is
pickled: the weights are the ``checkpoint`` artifact (our ``slowfast/1`` format, read with
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import torch


class SlowFastPyfunc(mlflow.pyfunc.PythonModel):
    """Clips in, class scores out: ``(N, 3, αT, H, W)`` float32 normalised frames → ``(N, K)`` float32.

    Scores are the softmax of the logits (a multi-label model gives per-class sigmoids in eval mode already),
    what multi-view testing aggregates (Sec. 5.1): average the rows of a video's views for its prediction.
    """

    def load_context(self, context: Any) -> None:
        from slowfast.models import load_model

        self.model = load_model(context.artifacts["checkpoint"], map_location="cpu")
        with open(context.artifacts["classes"], encoding="utf-8") as fh:
            self.classes = json.load(fh)

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        # No type hints: MLflow would turn them into an input schema; the logged signature is the schema.
        from slowfast.models import pack_pathways

        clips = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.inference_mode():
            out = self.model(pack_pathways(clips, self.model.config))
            scores = out if self.model.config.multilabel else out.softmax(dim=1)
        return scores.float().numpy()


mlflow.models.set_model(SlowFastPyfunc())
