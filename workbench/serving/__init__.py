"""The inference server: Open Inference Protocol V2 and MLflow's ``/invocations`` for any MLflow model.

Start it with ``workbench serve MODEL_URI`` or :func:`serve`; build the ASGI app yourself with
:func:`create_app`. Predictions are logged durably (:class:`PredictionLog`) and read back with
:func:`read_predictions` or ``GET /workbench/predictions?since=N``.
"""

from __future__ import annotations

from workbench.serving.app import create_app
from workbench.serving.model import ServedModel
from workbench.serving.predlog import LogRecord, PredictionLog, PredictionPage, read_predictions
from workbench.serving.server import serve

__all__ = [
    "LogRecord",
    "PredictionLog",
    "PredictionPage",
    "ServedModel",
    "create_app",
    "read_predictions",
    "serve",
]
