"""Run the inference server: load a model, bind a port, serve until SIGTERM, drain, flush."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench._skops import skops_io
from workbench.config import Settings, get_settings
from workbench import errors
from workbench.errors import PortInUseError, WorkbenchError
from workbench.serving.app import ExplainerFactory, create_app
from workbench.serving.memory import return_large_blocks
from workbench.serving.model import ServedModel

__all__ = ["bind", "run_asgi", "serve"]

_log = logging.getLogger("workbench.serving")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 picks a free one); a busy port is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUseError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another port with --port "
            "(or --port 0 for any free one)"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def default_log_dir(name: str, settings: Settings) -> Path:
    """Where ``workbench serve`` logs predictions when no folder is given."""
    return settings.home / "serving" / name / "predictions"


def serve(
    model_uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    name: str | None = None,
    version: str | None = None,
    log_dir: str | Path | None = None,
    port_file: str | Path | None = None,
    settings: Settings | None = None,
    explainer: ExplainerFactory | None = None,
    snapshot: str | Path | None = None,
    model_dir: str | Path | None = None,
    log_url: str | None = None,
    deployment: str | None = None,
) -> None:
    """Serve ``model_uri`` until SIGTERM or Ctrl-C; in-flight requests finish and the log is flushed.

    ``port_file``, when given, receives the bound port once the server accepts connections (useful
    with ``port=0``); ``explainer`` builds the explain route's explainer (see :func:`create_app`).
    ``snapshot`` is the model's snapshot folder in a model image (see :mod:`workbench.serving.flavors`);
    ``model_dir`` a folder that already holds the model's files (see :meth:`ServedModel.load`).
    ``log_url`` (default ``settings.log_url``, ``WORKBENCH_LOG_URL``) sends the log to that
    PostgreSQL store under ``deployment`` (default: the model's name), spooling in the log folder
    while it is away.
    """
    settings = (settings or get_settings()).bound_to(host)
    if log_url:
        settings = dataclasses.replace(settings, log_url=log_url)
    sock = bind(host, port)  # before loading: a busy port fails fast
    if model_dir is None and not Path(model_uri).is_dir() and threading.active_count() == 1:
        # Finding a registry URI's files imports MLflow and opens its store (seconds); a forked
        # process does that while this one imports what loading the model needs (a process with
        # threads resolves in line instead: forking it could leave a lock held in the child).
        resolution = _resolve_in_background(model_uri)
        _import_model_libraries()
        model_dir, registered_name, registered_version = resolution()
        name, version = name or registered_name, version or registered_version
    model = ServedModel.load(model_uri, name=name, version=version, snapshot=snapshot, model_dir=model_dir)
    return_large_blocks()  # a large request's memory goes back to the system once it is answered
    folder = Path(log_dir) if log_dir else default_log_dir(model.name, settings)
    app = create_app(model, log_dir=folder, settings=settings, explainer=explainer, deployment=deployment)
    bound_port = sock.getsockname()[1]
    server_warning_filters()
    # Everything loaded so far lives as long as the server: keep it out of the garbage collector's
    # full collections, which otherwise pause every request for tens of milliseconds now and then.
    gc.collect()
    gc.freeze()

    print(
        f"workbench: serving {model.name} version {model.version or '-'} ({model_uri}) on "
        f"http://{host}:{bound_port}; predictions logged in {app.state.workbench.log.where}",
        file=sys.stderr,
        flush=True,
    )
    run_asgi(app, sock, port_file=port_file)


def _resolve_in_background(model_uri: str) -> Callable[[], tuple[Path, str | None, str | None]]:
    """Start resolving ``model_uri`` to a local folder (and its registered name and version) in a
    forked process; the returned function waits for the answer, raising the error the resolution
    raised (a :class:`~workbench.errors.WorkbenchError` subclass, with its message)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: resolve, answer in JSON, exit without running the parent's clean-ups
        os.close(read_end)
        try:
            from workbench.registry import local_model_folder, registered_version

            registered = registered_version(model_uri)
            folder = local_model_folder(model_uri, tempfile.mkdtemp(prefix="workbench-model-"))
            answer: dict[str, Any] = {"folder": str(folder), "name": registered.name if registered else None,
                                      "version": registered.version if registered else None}
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the server process
            answer = {"error": str(exc), "kind": type(exc).__name__}
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)

    def result() -> tuple[Path, str | None, str | None]:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        if not data:
            raise WorkbenchError(f"the process resolving {model_uri!r} exited without an answer")
        answer = json.loads(data)
        if "error" in answer:
            kind = getattr(errors, answer["kind"], None)
            if isinstance(kind, type) and issubclass(kind, WorkbenchError):
                try:
                    raise kind(answer["error"])
                except TypeError:  # an error class built from more than a message
                    pass
            raise WorkbenchError(answer["error"])
        return Path(answer["folder"]), answer["name"], answer["version"]

    return result


def server_warning_filters() -> None:
    """Give a server process Python's own default warning filters, unless its operator chose some
    (``-W``, ``PYTHONWARNINGS``, ``-X dev``): then they are left as they are.

    Libraries add filters as they are imported (numpy, scipy, urllib3, requests: 16 in a server of
    a scikit-learn forest), and scikit-learn's ensembles replay the caller's whole filter list around
    each estimator's call, to carry it to joblib's workers. With 16 filters that replay took about
    0.9 ms of a 50-tree forest's 2.2 ms prediction, on every batch; with Python's 5 it takes about
    0.2 ms. One-job random forests and extra trees no longer go through joblib at all
    (:mod:`workbench.serving.ensembles`); the replay still costs the ensembles that module does not
    take (bagging, isolation forests, forests with several jobs). What the dropped filters did:
    hide import-time notes (numpy's "size changed") and show a few categories every time rather
    than once per place. A warning raised while serving is now written to the server's log once
    per place it comes from, deprecations aside, as Python does.
    """
    if sys.warnoptions or sys.flags.dev_mode:
        return
    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category, append=True)


def _import_model_libraries() -> None:
    """Import what loading a scikit-learn model needs (skops walks every estimator when imported)."""
    with contextlib.suppress(ImportError):
        skops_io()


def run_asgi(app: Any, sock: socket.socket, *, port_file: str | Path | None = None) -> None:
    """Run an ASGI app with uvicorn on a bound socket until SIGTERM (in-flight requests finish).

    ``port_file``, when given, receives the bound port once the server accepts connections (useful
    with port 0).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=os.environ.get("WORKBENCH_SERVER_LOG_LEVEL", "warning"),
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if port_file is not None:
        # Written once uvicorn has started: whoever waits for the file can connect at once.
        original_startup = server.startup
        bound_port = sock.getsockname()[1]

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original_startup(sockets=sockets)
            tmp = Path(f"{port_file}.tmp")
            tmp.write_text(str(bound_port))
            tmp.replace(port_file)

        server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])
