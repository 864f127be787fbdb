"""The inference server: Open Inference Protocol V2 and MLflow's ``/invocations`` for any MLflow model.

Start it with ``workbench serve MODEL_URI`` or :func:`serve`; build the ASGI app yourself with
:func:`create_app`. Predictions are logged durably in the prediction log (:mod:`workbench.predlog`) and
read back from it, or over HTTP with ``GET /workbench/predictions?since=N``.

Names load lazily: importing the package does not import the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import attach

_EXPORTS = {
    "ServedModel": "workbench.serving.model",
    "create_app": "workbench.serving.app",
    "serve": "workbench.serving.server",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = attach(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover
    from workbench.serving.app import create_app
    from workbench.serving.model import ServedModel
    from workbench.serving.server import serve
