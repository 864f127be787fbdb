"""The ``local`` target: the inference server as a background process on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workbench.config import get_settings
from workbench.deployment.base import DeploymentSpec, Placement, TargetStatus, probe_ready, wait_until_ready
from workbench.errors import DeploymentError, HealthCheckError, PortInUseError
from workbench.serving.server import bind

__all__ = ["LocalTarget"]


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


class LocalTarget:
    """Runs ``workbench serve`` as a detached process; updates start the new one before stopping
    the old (blue/green), so a model that fails to start never interrupts the one serving."""

    def __init__(self, uri: str = "local") -> None:
        self.uri = uri

    def _start(self, spec: DeploymentSpec) -> Placement:
        settings = get_settings()
        spec.workdir.mkdir(parents=True, exist_ok=True)
        port = int(spec.options.get("port") or 0)
        host = str(spec.options.get("host") or "127.0.0.1")
        if port:
            bind(host, port).close()  # a busy port is a clear error before anything starts
        port_file = spec.workdir / f"port-r{spec.revision}"
        port_file.unlink(missing_ok=True)
        log_file = spec.workdir / f"server-r{spec.revision}.log"
        cmd = [
            sys.executable, "-m", "workbench", "serve", spec.model_uri,
            "--host", host, "--port", str(port), "--port-file", str(port_file),
            "--log-dir", str(spec.workdir / "predictions"), "--name", spec.model_name,
        ]
        if spec.model_version:
            cmd += ["--model-version", spec.model_version]
        env = {**os.environ, **settings.as_env()}
        with open(log_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + settings.health_timeout
        while not port_file.exists():
            if proc.poll() is not None:
                output = _tail(log_file, 15)
                if "cannot listen on" in output:
                    raise PortInUseError(output.splitlines()[-1].removeprefix("error: "))
                raise HealthCheckError(f"the server process exited with code {proc.returncode}:\n{output}")
            if time.monotonic() > deadline:
                self._kill(proc.pid)
                raise HealthCheckError(f"the server did not start within {settings.health_timeout:.0f} s:\n"
                                       f"{_tail(log_file, 15)}")
            time.sleep(0.1)
        url = f"http://{host}:{port_file.read_text().strip()}"
        placement = Placement(url=url, handle={
            "pid": proc.pid, "start_time": _start_time(proc.pid), "log_file": str(log_file),
            "log_dir": str(spec.workdir / "predictions"),
        })
        try:
            wait_until_ready(url, settings.health_timeout, describe=f"model {spec.model_uri}",
                             still_starting=lambda: None if proc.poll() is None else _tail(log_file, 10))
        except HealthCheckError:
            self._kill(proc.pid)
            raise
        return placement

    def deploy(self, spec: DeploymentSpec) -> Placement:
        """Start a server process for ``spec`` and wait until it is ready."""
        return self._start(spec)

    def update(self, current: Placement, spec: DeploymentSpec) -> Placement:
        """Start the new server beside the old one; stop the old one only once the new one is ready.

        The old server's port is reused when the caller fixed a port; otherwise the new one gets
        a new free port (the deployment's URL changes, its name does not).
        """
        new = self._start(spec if not spec.options.get("port") else _without_port(spec))
        self.delete(current)
        return new

    def status(self, placement: Placement) -> TargetStatus:
        """Alive (same pid and start time) and answering readiness?"""
        pid = int(placement.handle.get("pid", 0))
        if not pid or _start_time(pid) != placement.handle.get("start_time"):
            return TargetStatus("gone", False, "the server process is no longer running")
        ready = probe_ready(placement.url)
        return TargetStatus("running" if ready else "unhealthy", ready, f"pid {pid}")

    def logs(self, placement: Placement, tail: int = 100) -> str:
        """The last lines the server process wrote."""
        return _tail(Path(placement.handle.get("log_file", "")), tail)

    def delete(self, placement: Placement) -> None:
        """SIGTERM the server (it finishes in-flight requests and flushes its log), then wait."""
        pid = int(placement.handle.get("pid", 0))
        if pid and _start_time(pid) == placement.handle.get("start_time"):
            self._kill(pid)

    @staticmethod
    def _kill(pid: int, grace: float = 30.0) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (another process deployed it)
                waited = 0
                if _start_time(pid) is None or _is_zombie(pid):
                    return
            if waited == pid:
                return
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _without_port(spec: DeploymentSpec) -> DeploymentSpec:
    # A fixed port cannot be bound twice: the old server must go before the new one starts.
    raise DeploymentError(
        f"deployment {spec.name!r} was given a fixed port, which the new and the old server cannot share "
        "during an update: deploy without --port to update without downtime"
    )
