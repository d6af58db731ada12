"""MLflow "models from code" entry point of a logged SlowFast model (see :mod:`slowfast.tracking.models`).

:func:`slowfast.tracking.models.log_model` hands this file's path to ``mlflow.pyfunc.log_model``: MLflow copies the
file into the logged model and, when the model is loaded, runs it to get the model object set below. Nothing is
pickled: the weights are the ``checkpoint`` artifact (our ``slowfast/1`` format, read with
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from typing import Any

import mlflow


class SlowFastPyfunc(mlflow.pyfunc.PythonModel):
    """A video (base64 bytes or a path) or prepared clips in, named classes with scores out (top-k): see
    :func:`slowfast.tracking.serving.answer` for the request and answer formats.

    A video goes through the evaluation protocol (decoding, ``clips`` × ``crops`` views, softmax averaged; Sec. 5.1)
    with the preprocessing logged beside the weights; a prepared clip is scored on its own.
    """

    def load_context(self, context: Any) -> None:
        from pathlib import Path

        from slowfast.tracking.models import load_local

        artifacts = context.artifacts
        self.model, self.classes, self.preprocessing = load_local(
            artifacts["checkpoint"], classes_path=Path(artifacts["classes"]),
            preprocessing_path=Path(artifacts["preprocessing"]))

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        # No type hints: MLflow would turn them into an input schema (and refuse a video where a tensor is hinted).
        from slowfast.tracking.serving import answer

        return answer(self.model, self.classes, self.preprocessing, model_input, params)


mlflow.models.set_model(SlowFastPyfunc())
