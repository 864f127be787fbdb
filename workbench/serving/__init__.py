"""The inference server: Open Inference Protocol V2 and MLflow's ``/invocations`` for any MLflow model.

Start it with ``workbench serve MODEL_URI`` or :func:`serve`; build the ASGI app yourself with
:func:`create_app`. Predictions are logged durably in the prediction log (:mod:`workbench.predlog`) and
read back from it, or over HTTP with ``GET /workbench/predictions?since=N``.

Names load lazily: importing the package does not import the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import attach_typed

__getattr__, __dir__, __all__ = attach_typed(__name__, __file__)


if TYPE_CHECKING:  # the one list of public names
    from workbench.serving.app import create_app
    from workbench.serving.model import ServedModel
    from workbench.serving.server import serve
