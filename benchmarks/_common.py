"""Helpers shared by the benchmarks: side environments, free ports, waiting for servers, wrk runs.

Benchmarks print tables and ratios and write JSON into ``benchmarks/results/``; nothing here is
asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
ENVS = BENCH / ".envs"
PYTHON = sys.executable


def side_env(name: str, packages: list[str]) -> Path:
    """A virtual environment under benchmarks/.envs/NAME with ``packages`` (made once), for tools
    whose pins clash with the project's (Evidently wants pandas<3, MLServer wants its uvloop)."""
    env = ENVS / name
    python = env / "bin" / "python"
    stamp = env / ".installed"
    wanted = "\n".join(packages)
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"installing {packages} failed:\n{result.stderr[-3000:]}")
        stamp.write_text(wanted)
    return env


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 120.0, proc: subprocess.Popen[Any] | None = None) -> float:
    """Seconds until ``url`` answers 200 (raises if ``proc`` dies or time runs out)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def wrk(url: str, body_file: Path, connections: int, seconds: int, content_type: str = "application/json") -> dict[str, float]:
    """POST ``body_file`` to ``url`` with wrk; requests/s and latency percentiles (ms)."""
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f'local f = io.open("{body_file}", "r"); wrk.body = f:read("*a"); f:close()\n'
    )
    return wrk_script(url, script, connections, seconds)


def wrk_script(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    """Run wrk with the Lua ``script`` against ``url``; requests/s and latency percentiles (ms). Any
    non-2xx answer is an error."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url} answered {non2xx.group(1)} errors under load:\n{out}")

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.M)
        if not match:
            raise ValueError(f"no {label} latency in wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "requests": answered}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric medians over repeated runs."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def save(name: str, data: dict[str, Any]) -> Path:
    """Write results JSON to benchmarks/results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table."""
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return "-" if value is None else str(value)


def env_with_venv_path() -> dict[str, str]:
    """The environment with this interpreter's bin/ first on PATH (`mlflow models serve` shells out
    to a bare `uvicorn`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


class Postgres:
    """A throwaway PostgreSQL cluster on a free port (run as postgres when we are root), listening on
    loopback and on ``host`` when given; clients from ``clients`` (address ranges) sign in with
    ``password`` there, which ``url`` then carries."""

    def __init__(self, *, host: str | None = None, clients: tuple[str, ...] = (), password: str | None = None,
                 database: str = "bench") -> None:
        import tempfile

        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
        self.data = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        if clients:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.writelines(f"host all all {network} scram-sha-256\n" for network in clients)
        listen = ",".join(filter(None, ("127.0.0.1", host)))
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses={listen}", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database)
        if password:
            self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                      f"ALTER USER postgres PASSWORD '{password}'")
        user = f"postgres:{password}" if password else "postgres"
        self.url = f"postgresql://{user}@{host or '127.0.0.1'}:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.data, ignore_errors=True)


def start_workbench(uri: str, log_dir: Path, *args: str, log_file: Path | None = None) -> tuple[subprocess.Popen[Any], str, float]:
    """``workbench serve URI`` on a free port, logging into ``log_dir`` (``args``: more options, e.g.
    ``--log-url``); the process, its base URL and the seconds it took to be ready."""
    port = free_port()
    output = open(log_file, "w") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen([str(Path(PYTHON).parent / "workbench"), "serve", uri, "--port", str(port),
                             "--log-dir", str(log_dir), *args],
                            env=env_with_venv_path(), stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    return proc, url, wait_for(f"{url}/v2/health/ready", proc=proc)


def logged_records(where: str | Path) -> int:
    """How many records a prediction log holds (a log folder, or ``postgresql://...?deployment=NAME``)."""
    from workbench.predlog import as_source

    source = as_source(where)
    count, since = 0, 0
    while True:
        page = source.fetch(since, 10_000)
        count += len(page)
        if not len(page):
            return count
        since = page.next_since


def forest_model(experiment: str) -> str:
    """The serving benchmark's model (a forest of 50 trees, depth 8, on 20 float features), logged and
    registered in the current workspace as ``experiment``; its version's URI."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import workbench as wb

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    with wb.start_run(experiment=experiment):
        model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(frame, y)
        logged = wb.log_model(model, training_data=frame, training_labels=pd.Series(y))
    return wb.register(logged, experiment).uri
