"""The ``local`` target: model servers and their router as background processes on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench._private import write_private
from workbench.config import get_settings
from workbench.deployment.base import (
    DeploymentSpec,
    OnEvent,
    TargetStatus,
    check_known_options,
    option_int,
    probe_ready,
    wait_until_ready,
)
from workbench.deployment import warm
from workbench.deployment.catalog import TargetInfo, describe_options
from workbench.deployment.routed import Backend, RoutedTarget
from workbench.errors import HealthCheckError, PortInUseError
from workbench.predlog import log_store_source
from workbench.registry import local_model_folder
from workbench.routing.router import RouteTable
from workbench.serving.command import program, route_args, serve_args
from workbench.serving.server import bind

__all__ = ["LocalOptions", "LocalTarget", "RouterProcess", "ServerProcess"]

#: A started server or router: our child, or a fork of the warm process.
Process = subprocess.Popen[bytes] | warm.SpawnedProcess


@dataclass(frozen=True)
class LocalOptions:
    """The options of the ``local`` target (``wb.deploy(uri, target="local", port=8000)``)."""

    #: The address the deployment listens on; the default keeps it to this machine.
    host: str = "127.0.0.1"
    #: The deployment's port; 0: a free one.
    port: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LocalOptions:
        """Check ``options`` (as given to ``wb.deploy``) and read them."""
        check_known_options("local", options, cls.__dataclass_fields__)
        return cls(host=str(options.get("host") or cls.host), port=option_int(options, "port", cls.port, 0, 65535))


@dataclass(frozen=True)
class ServerProcess:
    """A model server process: its pid and kernel start time (a reused pid is told apart)."""

    pid: int
    start_time: str | None
    log_file: str
    #: The folder of its prediction log (with a log store: its spool).
    log_dir: str
    #: The shared log store it writes under its deployment's name (``WORKBENCH_LOG_URL``, no
    #: password), or ``""`` for the log folder.
    store: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"pid": self.pid, "start_time": self.start_time, "log_file": self.log_file, "log_dir": self.log_dir,
                "store": self.store}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerProcess:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["pid"]), data.get("start_time"), str(data.get("log_file", "")),
                   str(data.get("log_dir", "")), str(data.get("store", "")))


@dataclass(frozen=True)
class RouterProcess:
    """The router process of a deployment."""

    pid: int
    start_time: str | None
    log_file: str
    #: Its route table and admin token (readable by the owner only).
    config: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"pid": self.pid, "start_time": self.start_time, "log_file": self.log_file, "config": self.config}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterProcess:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["pid"]), data.get("start_time"), str(data.get("log_file", "")),
                   str(data.get("config", "")))


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _alive(process: ServerProcess | RouterProcess) -> bool:
    """Still the process started (a reused pid is another one), and not a zombie left unreaped."""
    return bool(process.pid) and _start_time(process.pid) == process.start_time and not _is_zombie(process.pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _kill(pid: int, grace: float = 30.0) -> None:
    """SIGTERM the process group (servers finish in-flight requests and flush), SIGKILL after grace."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # started by another process: watch /proc instead
            if _start_time(pid) is None or _is_zombie(pid):
                return
            waited = 0
        if waited == pid:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LocalTarget(RoutedTarget[ServerProcess, RouterProcess]):
    """Runs ``workbench serve`` processes behind a ``workbench route`` process."""

    def __init__(self, uri: str = "local") -> None:
        super().__init__(uri, ServerProcess.from_dict, RouterProcess.from_dict)

    @classmethod
    def describe(cls) -> TargetInfo:
        """The ``local`` target, for the listing of installed targets."""
        return TargetInfo(
            name="local", uri="local", summary="model servers and their router as processes on this machine",
            description=("Starts in about half a second (forked from a warm process that has the server's "
                         "libraries imported); reads the model's files where the store keeps them. The "
                         "deployment's address stays the same through updates, challengers and rollbacks."),
            options=describe_options(LocalOptions))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """``host`` and ``port``; anything else is an error naming them."""
        LocalOptions.from_options(options)

    def _launch(self, argv: list[str], log_file: Path, port_file: Path, what: str) -> tuple[Process, str]:
        """Start ``workbench ARGV... --port-file PORT_FILE`` (a fork of the warm process unless
        ``WORKBENCH_WARM_SERVER=0``) and wait until it has bound its port."""
        settings = get_settings()
        port_file.unlink(missing_ok=True)
        env = {**os.environ, **settings.as_env()}
        argv = [*argv, "--port-file", str(port_file)]
        proc: Process
        if settings.warm_server:
            proc = warm.spawn(argv, env=env, cwd=os.getcwd(), log_file=log_file, timeout=settings.health_timeout)
        else:
            with open(log_file, "ab") as out:
                proc = subprocess.Popen([*program(), *argv], stdout=out,
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + settings.health_timeout
        while not port_file.exists():
            if (code := proc.poll()) is not None:
                output = _tail(log_file, 15)
                if "cannot listen on" in output:
                    raise PortInUseError(output.splitlines()[-1].removeprefix("error: "))
                status = f" with code {code}" if code >= 0 else ""
                raise HealthCheckError(f"{what} exited{status}:\n{output}")
            if time.monotonic() > deadline:
                _kill(proc.pid)
                raise HealthCheckError(f"{what} did not start within {settings.health_timeout:.0f} s:\n"
                                       f"{_tail(log_file, 15)}")
            time.sleep(0.01)
        return proc, port_file.read_text().strip()

    def start_backend(self, spec: DeploymentSpec, role: str, on_event: OnEvent | None) -> Backend[ServerProcess]:
        """A model server process on a free loopback port, logging into the deployment's folder
        (nothing is packaged, so ``on_event`` sees nothing)."""
        spec.workdir.mkdir(parents=True, exist_ok=True)
        stem = f"{role}-r{spec.revision}"
        log_file = spec.workdir / f"{stem}.log"
        # The server reads the model's files where the store keeps them (or a download in the
        # deployment's folder), so it never opens the store itself.
        folder = local_model_folder(spec.model_uri, spec.workdir / f"{stem}-model")
        log_url = get_settings().log_url
        cmd = serve_args(spec.model_uri, model_dir=folder, host="127.0.0.1", port=0,
                         log_dir=spec.workdir / "predictions", name=spec.model_name,
                         model_version=spec.model_version or None, deployment=spec.name)
        proc, port = self._launch(cmd, log_file, spec.workdir / f"{stem}.port", f"the model server for {spec.model_uri}")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, get_settings().health_timeout, describe=f"model {spec.model_uri}",
                             still_starting=lambda: None if proc.poll() is None else _tail(log_file, 10))
        except HealthCheckError:
            _kill(proc.pid)
            raise
        return Backend((url,), (url,), spec.model_uri, spec.model_version,
                       ServerProcess(proc.pid, _start_time(proc.pid), str(log_file),
                                     str(spec.workdir / "predictions"),
                                     log_store_source(log_url, spec.name) if log_url else ""))

    def stop_backend(self, backend: Backend[ServerProcess]) -> None:
        """SIGTERM the server process and wait for it."""
        if _alive(backend.handle):
            _kill(backend.handle.pid)

    def backend_status(self, backend: Backend[ServerProcess]) -> TargetStatus:
        """Alive (same pid and start time) and answering readiness?"""
        if not _alive(backend.handle):
            return TargetStatus("gone", False, "the model server process is no longer running")
        ready = probe_ready(backend.urls[0])
        return TargetStatus("running" if ready else "unhealthy", ready, f"pid {backend.handle.pid}")

    def log_sources(self, champion: Backend[ServerProcess],
                    challenger: Backend[ServerProcess] | None) -> tuple[str, ...]:
        """The deployment's log folder, read where it lies: every server of the deployment writes it,
        and it stays the same source (and cursor) when servers restart on other ports."""
        if champion.handle.store:  # WORKBENCH_LOG_URL: the servers write the shared store
            return (champion.handle.store,)
        return (champion.handle.log_dir,) if champion.handle.log_dir else champion.urls[:1]

    def backend_logs(self, backend: Backend[ServerProcess], tail: int) -> str:
        """The last lines the server process wrote."""
        return _tail(Path(backend.handle.log_file), tail)

    def start_router(self, spec: DeploymentSpec, table: RouteTable, token: str,
                     champion: Backend[ServerProcess]) -> tuple[str, RouterProcess]:
        """The router process on the deployment's port (the given one, or a free one)."""
        options = LocalOptions.from_options(spec.options)
        host, port = options.host, options.port
        if port:
            bind(host, port).close()  # a busy port is a clear error before anything starts
        config = spec.workdir / "router.json"
        write_private(config, json.dumps({"table": table.to_dict(), "token": token}))  # holds the admin token
        log_file = spec.workdir / "router.log"
        cmd = route_args(config, host=host, port=port, deployment=spec.name)
        proc, bound = self._launch(cmd, log_file, spec.workdir / "router.port", "the router")
        url = f"http://{host}:{bound}"
        try:
            wait_until_ready(url, get_settings().health_timeout, describe="the deployment",
                             still_starting=lambda: None if proc.poll() is None else _tail(log_file, 10))
        except HealthCheckError:
            _kill(proc.pid)
            raise
        return url, RouterProcess(proc.pid, _start_time(proc.pid), str(log_file), str(config))

    def stop_router(self, handle: RouterProcess) -> None:
        """SIGTERM the router process."""
        if _alive(handle):
            _kill(handle.pid)

    def router_alive(self, handle: RouterProcess) -> bool:
        """The router process is still the one started."""
        return _alive(handle)
