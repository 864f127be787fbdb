"""A notebook's head start: what its first ``log_model`` and first local deployment need, made
ready in the background while the data scientist loads data and fits a model.

``import workbench`` in a Jupyter kernel starts one daemon thread that imports MLflow, its store
and the model serialization libraries, builds the map of installed packages that requirements are
pinned from (and MLflow's own), and starts the warm process local servers are forked from
(:mod:`workbench.deployment.warm`). Nothing is written and no store is opened, so a
``wb.configure(home=...)`` right after the import still decides where everything goes. Anything
that fails here only loses the head start: the same work then happens on first use, as without it.

Outside a notebook kernel (scripts, servers, model images, the Jupyter server) nothing starts.
``WORKBENCH_WARMUP=0`` turns it off; ``WORKBENCH_WARM_SERVER=0`` leaves the warm process out.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading

__all__ = ["MODULES", "in_notebook", "start", "wait"]

#: What a first ``log_model`` imports: MLflow, its SQL store, the scikit-learn flavor and skops.
MODULES = ("mlflow", "mlflow.sklearn", "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store", "skops.io")

_thread: threading.Thread | None = None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel running a notebook (IPython's ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def start() -> bool:
    """Start the head start in a notebook kernel (once); ``True`` if it started now."""
    global _thread
    if _thread is not None or not in_notebook() or os.environ.get("WORKBENCH_WARMUP", "1").strip() == "0":
        return False
    _thread = threading.Thread(target=_run, name="workbench-warmup", daemon=True)
    _thread.start()
    return True


def wait(timeout: float | None = None) -> bool:
    """Wait for the head start to finish; ``True`` when none runs any more."""
    if _thread is not None:
        _thread.join(timeout)
        return not _thread.is_alive()
    return True


def _run() -> None:
    with contextlib.suppress(Exception):
        from workbench._skops import skops_io

        skops_io()  # before MODULES' "skops.io": without PyTorch coming along
    for name in MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from workbench.requirements import prepare

        prepare()
    with contextlib.suppress(Exception):  # MLflow checks the pins against what is installed with its own map
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()
    with contextlib.suppress(Exception):
        from workbench.config import get_settings

        if get_settings().warm_server:
            from workbench.deployment import warm

            warm.ensure_running()
