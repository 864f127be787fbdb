"""A notebook's head start: what its first ``log_model`` and first local deployment need, made
ready between cells while the data scientist reads, thinks and types.

``import workbench`` in a Jupyter kernel schedules a few short steps on the kernel's own event loop:
import MLflow, its store and skops, build the maps of installed packages that requirements are pinned
from (ours and MLflow's), and start the warm process local servers are forked from
(:mod:`workbench.deployment.warm`, started by a thread that only waits for it). The steps run in the
kernel's main thread when it is idle, one at a time, so they never import a module while a cell
imports another (two threads importing scikit-learn at once can see it half-initialised); a cell
sent meanwhile runs between two steps. Nothing is written and no store is opened, so a
``wb.configure(home=...)`` right after the import still decides where everything goes. A step that
fails only loses its head start: the same work then happens on first use.

Outside a notebook kernel (scripts, servers, model images, the Jupyter server) nothing is scheduled.
``WORKBENCH_WARMUP=0`` turns it off; ``WORKBENCH_WARM_SERVER=0`` leaves the warm process out.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable

__all__ = ["MODULES", "in_notebook", "pending", "start", "wait"]

#: What a first ``log_model`` imports: MLflow, its SQL store, the scikit-learn flavor and skops.
MODULES = ("mlflow", "mlflow.sklearn", "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store")

#: Pause between steps (seconds): a cell sent meanwhile goes first.
_PAUSE = 0.05

_steps: list[Callable[[], object]] = []
_threads: list[threading.Thread] = []
_started = False


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel running a notebook (IPython's ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def start() -> bool:
    """Schedule the head start on a notebook kernel's event loop (once); ``True`` if it was now."""
    global _started
    if _started or not in_notebook() or os.environ.get("WORKBENCH_WARMUP", "1").strip() == "0":
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a kernel without a running loop: nothing to do the steps between cells
        return False
    _started = True
    _steps.extend([_skops, *(lambda name=name: importlib.import_module(name) for name in MODULES),
                   _package_maps, _warm_process])

    def step() -> None:
        if _run_one():
            loop.call_later(_PAUSE, step)

    loop.call_soon(step)
    return True


def pending() -> int:
    """Steps not run yet."""
    return len(_steps)


def wait(timeout: float | None = None) -> bool:
    """Run the steps left now, in this thread, and wait for the warm process to answer; ``True``
    when everything is done."""
    while _run_one():
        pass
    for thread in _threads:
        thread.join(timeout)
    return not any(t.is_alive() for t in _threads)


def _run_one() -> bool:
    """Run the next step; ``True`` if more are left."""
    if not _steps:
        return False
    with contextlib.suppress(Exception):
        _steps.pop(0)()
    return bool(_steps)


def _skops() -> None:
    from workbench._skops import skops_io

    skops_io()  # before anything imports skops.io: without PyTorch coming along


def _package_maps() -> None:
    from workbench.requirements import prepare

    prepare()
    with contextlib.suppress(Exception):  # MLflow checks the pins against what is installed with its own map
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()


def _warm_process() -> None:
    from workbench.config import get_settings

    if not get_settings().warm_server:
        return
    from workbench.deployment import warm

    # Imported above, in this (the kernel's) thread: the thread only starts a process and waits.
    thread = threading.Thread(target=warm.ensure_running, name="workbench-warm-process", daemon=True)
    _threads.append(thread)
    thread.start()
