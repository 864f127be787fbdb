"""The command lines of the workbench's two server programs, written in one place.

The model server (``workbench serve``) and the traffic router (``workbench route``) are started by
every deploy target (a process, a container, a swarm service, a Kubernetes pod), by the image build's
warm-up and by the image's entry point. Each of them asks here for the argument list, so an option
is added or renamed once, and each process shows in ``ps`` under the name it gets here::

    serve_args("models:/churn/3", host="127.0.0.1", port=0, log_dir="/var/log/preds")
    # ['serve', 'models:/churn/3', '--host', '127.0.0.1', '--port', '0', '--log-dir', '/var/log/preds']
    [*PROGRAM, *route_args("/etc/workbench/router.json")]
    # ['python', '-m', 'workbench', 'route', '--config', '/etc/workbench/router.json']
"""

from __future__ import annotations

import sys
from os import PathLike
from typing import Any

__all__ = ["PROGRAM", "name_process", "program", "route_args", "serve_args", "serve_options"]

#: How a container (whose ``python`` is the image's virtual environment) runs the workbench.
PROGRAM: tuple[str, ...] = ("python", "-m", "workbench")

_Path = str | PathLike[str]


def program(python: str | None = None) -> list[str]:
    """The workbench's command on this machine: this interpreter (or ``python``) with ``-m workbench``."""
    return [python or sys.executable, "-m", "workbench"]


def _flags(**values: object) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def serve_options(
    *,
    host: str | None = None,
    port: int | None = None,
    name: str | None = None,
    model_version: str | None = None,
    log_dir: _Path | None = None,
    log_url: str | None = None,
    deployment: str | None = None,
    model_dir: _Path | None = None,
    snapshot: _Path | None = None,
    port_file: _Path | None = None,
) -> list[str]:
    """The options of ``workbench serve`` (see :func:`serve_args`), for an image's ``CMD``, which
    follows its ``ENTRYPOINT``."""
    return _flags(model_dir=model_dir, snapshot=snapshot, host=host, port=port, log_dir=log_dir,
                  log_url=log_url, deployment=deployment, name=name, model_version=model_version, port_file=port_file)


def serve_args(model: _Path, **options: Any) -> list[str]:
    """``serve MODEL [--options]`` for ``workbench serve``; options (those of :func:`serve_options`)
    left ``None`` keep the server's defaults (``--host``/``--port`` then come from
    ``WORKBENCH_HOST``/``WORKBENCH_PORT``).

    ``model`` is a model URI or folder; ``model_dir`` a folder already holding the URI's files;
    ``log_url`` a shared prediction-log store (``postgresql://...``) every replica writes to, under
    ``deployment``'s name."""
    return ["serve", str(model), *serve_options(**options)]


def route_args(config: _Path, *, host: str | None = None, port: int | None = None,
               port_file: _Path | None = None, state_dir: _Path | None = None,
               deployment: str | None = None) -> list[str]:
    """``route --config FILE [--options]`` for ``workbench route``, the deployment's traffic router;
    ``state_dir`` a writable folder for the bandit's state when the config's own is read-only;
    ``deployment`` the name the process shows in ``ps``."""
    return ["route", *_flags(config=config, host=host, port=port, port_file=port_file, state_dir=state_dir,
                             deployment=deployment)]


def name_process(*words: str) -> None:
    """Show this process in ``ps``, ``top`` and ``htop`` as ``workbench WORDS...``, e.g. ``workbench
    serve churn models:/churn/3``: a server forked by the warm process would otherwise show as
    ``python -m workbench.deployment.warm``. Inside a model image, whose slim environment may not
    have ``setproctitle``, the container's name already says it."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(" ".join(["workbench", *words]))
