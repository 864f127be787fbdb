"""Small helpers the test modules share (importable as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

WORKBENCH = str(Path(sys.executable).parent / "workbench")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM) in MB, as the kernel counts it (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status: peak memory is read on Linux only")


def start_review(log_path: Path, *args: str, env: dict[str, str] | None = None,
                 verify: Any = True) -> tuple[subprocess.Popen, str]:
    """``workbench review`` on a free port, with the session's workspace; its base URL once it answers
    (``https://`` when ``args`` give a certificate; ``verify`` is how httpx checks it)."""
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process by the caller's finally
    proc = subprocess.Popen([WORKBENCH, "review", "--no-browser", "--port", str(port), *args],
                            env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    scheme = "https" if "--certfile" in args else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/review", timeout=5, follow_redirects=False,
                         verify=verify).status_code in (200, 302):
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("workbench review did not start:\n" + log_path.read_text())
        time.sleep(0.3)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still there after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
