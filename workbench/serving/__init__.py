"""The inference server: Open Inference Protocol V2 and MLflow's ``/invocations`` for any MLflow model.

Start it with ``workbench serve MODEL_URI`` or :func:`serve`; build the ASGI app yourself with
:func:`create_app`. Predictions are logged durably (:class:`PredictionLog`) and read back with
:func:`read_predictions` or ``GET /workbench/predictions?since=N``.

Names load lazily: reading a prediction log does not import the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import attach

_EXPORTS = {
    "LogRecord": "workbench.serving.predlog",
    "PredictionLog": "workbench.serving.predlog",
    "PredictionPage": "workbench.serving.predlog",
    "page_rows": "workbench.serving.predlog",
    "read_predictions": "workbench.serving.predlog",
    "ServedModel": "workbench.serving.model",
    "create_app": "workbench.serving.app",
    "serve": "workbench.serving.server",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = attach(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover
    from workbench.serving.app import create_app
    from workbench.serving.model import ServedModel
    from workbench.serving.predlog import LogRecord, PredictionLog, PredictionPage, page_rows, read_predictions
    from workbench.serving.server import serve
