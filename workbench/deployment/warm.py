"""A warm process server: local model servers and routers start as forks of a pre-imported process.

A cold ``python -m workbench serve`` spends seconds importing pandas, scikit-learn, Starlette and
uvicorn before it loads a model. The local target instead asks a *warm process* (one per user and
installed environment, started on the first local deployment) to fork: the child already has every
module imported, so it only loads the model and binds its port. Each child then is exactly what the
command line would have run (``workbench serve ...`` or ``workbench route ...``): its own session and
process group, its own working folder, environment and log file.

The warm process listens on a Unix socket in a folder only its user can open: ``$XDG_RUNTIME_DIR/workbench``
(the user's private runtime folder), else ``~/.cache/workbench``; never the shared temporary folder,
where another user could create it first. The folder is opened without following links and refused
unless it is the user's own and private. Both ends check the other's uid (``SO_PEERCRED``), so neither
other users nor a web page can reach it, and no client sends its environment to another user's
socket. The warm process checks each request before it forks, and reads requests side by side with a
deadline, so a connection that sends nothing holds up no one. It never runs model code itself, so it holds
no threads when it forks. It exits after :data:`IDLE_SECONDS` without a request; the servers it forked
live on (they are in their own sessions). A new Python, new packages or a changed workbench start a new
warm process, because its socket's name is a fingerprint of them.

Turn it off with ``WORKBENCH_WARM_SERVER=0``: each server then starts as a fresh process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench._private import private_folder
from workbench.errors import ConfigurationError, HealthCheckError

__all__ = ["IDLE_SECONDS", "PRELOAD", "SpawnedProcess", "ensure_running", "shutdown", "socket_path", "spawn"]

#: Seconds the warm process waits for a request before it exits.
IDLE_SECONDS = 900.0
#: What the warm process imports before it forks anything: the server, the router, and the libraries
#: the common model flavors load (missing ones are skipped).
PRELOAD = (
    "workbench.cli",
    "workbench.cli.serving",
    "workbench.serving.server",
    "workbench.serving.app",
    "workbench.serving.model",
    "workbench.routing.router",
    "workbench.explain",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
    "skops.io",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.tree",
    "xgboost",
    "lightgbm",
)
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: Seconds a client has to send its whole request once connected.
_REQUEST_SECONDS = 5.0
#: The commands a warm process forks for (``--version`` answers a probe).
_COMMANDS = frozenset({"serve", "route", "--version"})
_HINT = "set WORKBENCH_WARM_SERVER=0 to start servers as fresh processes"


@dataclass(frozen=True)
class SpawnedProcess:
    """A process the warm process forked for us (not our child: watch it through /proc)."""

    pid: int

    def poll(self) -> int | None:
        """``None`` while it runs, ``-1`` once it has exited (the warm process reaps it, so its exit
        status is not ours to read: its log says why)."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return -1
        return -1 if state in ("Z", "X") else None


def _fingerprint() -> str:
    """Changes when the interpreter, the installed packages or the workbench's own code change."""
    import site

    parts = [sys.executable, sys.version, os.environ.get("PYTHONPATH", "")]
    # Installing or removing a package changes its site-packages folder (not the notebook's own
    # folder, whose files come and go all day).
    for entry in (*site.getsitepackages(), site.getusersitepackages()):
        with contextlib.suppress(OSError):
            parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
    package = Path(__file__).resolve().parents[1]  # workbench/, this file being workbench/deployment/warm.py
    parts.append(str(max((p.stat().st_mtime_ns for p in package.rglob("*.py")), default=0)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _runtime_dir() -> Path:
    """A folder only this user can open, for the socket (kept short: a socket path is at most 107
    bytes): ``$XDG_RUNTIME_DIR/workbench`` when that folder is the user's, else ``~/.cache/workbench``."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        info = os.stat(base)
        if info.st_uid != os.geteuid():
            raise ConfigurationError(f"XDG_RUNTIME_DIR={base} belongs to another user (uid {info.st_uid}): "
                                     f"point it at your own runtime folder, or {_HINT}")
        folder = Path(base) / "workbench"
    else:
        folder = Path.home() / ".cache" / "workbench"
    try:
        return private_folder(folder, tighten=False, hint=_HINT)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the warm process's folder {folder}: {exc}; {_HINT}") from exc


#: Longest path a Unix socket may have (``sun_path`` holds 108 bytes with the final NUL).
_MAX_SOCKET_PATH = 107


def socket_path() -> Path:
    """The warm process's socket for this user, interpreter and set of installed packages."""
    path = _runtime_dir() / f"w{_fingerprint()[:12]}.sock"
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ConfigurationError(f"the warm process's socket path {path} is longer than a Unix socket's "
                                 f"{_MAX_SOCKET_PATH} bytes: set XDG_RUNTIME_DIR to a short private folder, or {_HINT}")
    return path


def _connect(path: Path, timeout: float) -> socket.socket | None:
    """A connection to the warm process at ``path``, ``None`` when none listens; a socket another
    user listens on is a :class:`ConfigurationError` (nothing is sent to it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    peer = _peer_uid(sock)
    if peer != os.geteuid():
        sock.close()
        raise ConfigurationError(f"the warm process socket {path} is served by another user (uid {peer}), not "
                                 f"by you: nothing was sent to it. Remove it, or {_HINT}")
    return sock


def _ask(path: Path, request: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
    """One request; ``None`` when no warm process answered (none runs, or it was exiting)."""
    sock = _connect(path, timeout)
    if sock is None:
        return None
    with sock:
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = sock.makefile("rb").readline()
        except OSError:
            return None
    return json.loads(reply) if reply else None


def _start(path: Path, timeout: float) -> None:
    """Start the warm process for ``path`` (one at a time: a lock file serialises starters)."""
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        probe = _connect(path, 2.0)
        if probe is not None:  # another starter won
            probe.close()
            return
        log = path.with_suffix(".log")
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "workbench.deployment.warm", str(path)],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=path.parent)
        deadline = time.monotonic() + timeout
        while (probe := _connect(path, 2.0)) is None:
            if proc.poll() is not None:
                raise HealthCheckError(f"the warm server process exited with code {proc.returncode}:\n"
                                       + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            if time.monotonic() > deadline:
                proc.kill()
                raise HealthCheckError(f"the warm server process did not start within {timeout:.0f} s")
            time.sleep(0.02)
        probe.close()


def ensure_running(timeout: float = 120.0) -> None:
    """Start this environment's warm process unless one runs (a notebook's warm-up does, so that
    its first local deployment forks from a process that is already warm)."""
    path = socket_path()
    probe = _connect(path, 2.0)
    if probe is not None:
        probe.close()
        return
    _start(path, timeout)


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike[str], log_file: Path,
          timeout: float = 120.0) -> SpawnedProcess:
    """Run ``workbench ARGV...`` as a fork of the warm process (started when none runs).

    The child gets ``env`` as its whole environment, ``cwd`` as its folder, its own session, and
    ``log_file`` (appended to) as stdout and stderr; it gets the environment *after* its libraries were
    imported, so variables read only at import time (``OMP_NUM_THREADS``) keep the warm process's values.
    """
    path = socket_path()
    request = {"argv": list(argv), "env": dict(env), "cwd": os.fspath(cwd), "log": str(log_file)}
    for attempt in range(2):
        reply = _ask(path, request, timeout)
        if reply is not None:
            if "error" in reply:
                raise HealthCheckError(f"the warm server process could not start the server: {reply['error']}")
            return SpawnedProcess(int(reply["pid"]))
        if attempt == 0:
            _start(path, timeout)
    raise HealthCheckError(f"the warm server process at {path} did not answer; "
                           "set WORKBENCH_WARM_SERVER=0 to start servers as fresh processes")


def shutdown() -> bool:
    """Ask this environment's warm process to exit (its forked servers live on); ``True`` if one ran."""
    return _ask(socket_path(), {"exit": True}, 5.0) is not None


# --- the warm process ---------------------------------------------------------------------------------


def _reap(signum: int, frame: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _run_child(request: Mapping[str, Any]) -> int:
    """In the forked child: become ``workbench ARGV...`` and return its exit status."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(devnull)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # As ``python -m workbench ARGV...`` run in that folder would have it.
    sys.path[0] = request["cwd"]
    sys.argv = ["workbench", *request["argv"]]
    import runpy

    from workbench.config import configure

    configure()  # the settings of the request's environment
    try:
        runpy.run_module("workbench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def check_request(request: Any) -> dict[str, Any]:
    """``request`` if it is one the warm process forks for, else :class:`ConfigurationError` saying
    why: checked before the fork, so a bad one never becomes a process."""
    if not isinstance(request, dict):
        raise ConfigurationError("a request is a JSON object")
    if request.get("exit") is True:
        return request
    argv, env, cwd, log = request.get("argv"), request.get("env"), request.get("cwd"), request.get("log")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ConfigurationError("'argv' must be a non-empty list of strings")
    if argv[0] not in _COMMANDS:
        raise ConfigurationError(f"the warm process runs only {sorted(_COMMANDS)}, not {argv[0]!r}")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ConfigurationError("'env' must map names to strings")
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise ConfigurationError(f"'cwd' must be an existing folder given by its absolute path, not {cwd!r}")
    if not isinstance(log, str) or not os.path.isabs(log) or not os.path.isdir(os.path.dirname(log)):
        raise ConfigurationError(f"'log' must be an absolute path in an existing folder, not {log!r}")
    return request


def _serve(path: Path, idle: float) -> None:
    """Accept requests on ``path`` until idle for ``idle`` seconds or asked to exit.

    Connections are read side by side (a selector): a request counts once its line is complete,
    and a connection that has not sent one within :data:`_REQUEST_SECONDS` is closed."""
    import atexit
    import importlib
    import traceback

    from workbench._skops import skops_io

    with contextlib.suppress(ImportError):
        skops_io()  # before PRELOAD's "skops.io": without PyTorch coming along
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from workbench.serving.command import name_process

    # Here, while the process's environment is still the one it started with: a child replaces its
    # environment before it names itself, and the title's memory must be found before that.
    name_process("warm", "process", f"({os.path.basename(path)})")
    import gc

    gc.collect()
    gc.freeze()  # the children share these pages instead of copying them at their first collection
    signal.signal(signal.SIGCHLD, _reap)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    inode = path.stat().st_ino
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    pending: dict[socket.socket, tuple[bytearray, float]] = {}
    last_request = time.monotonic()
    print(f"workbench: warm server process {os.getpid()} ready on {path}", flush=True)

    def drop(conn: socket.socket) -> None:
        pending.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn)
        conn.close()

    def answer(conn: socket.socket, reply: Mapping[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendall(json.dumps(reply).encode() + b"\n")
        conn.close()

    try:
        while True:
            now = time.monotonic()
            for conn in [c for c, (_, deadline) in pending.items() if deadline <= now]:
                drop(conn)  # sent no whole request in time
            wait = last_request + idle - now
            if wait <= 0 and not pending:
                return
            wait = min([max(wait, 0.0), *(deadline - now for _, deadline in pending.values())])
            for key, _ in selector.select(max(wait, 0.0) + 0.001):
                if key.fileobj is listener:
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    if _peer_uid(conn) != os.geteuid():
                        conn.close()  # another user: never read
                        continue
                    conn.setblocking(False)
                    pending[conn] = (bytearray(), time.monotonic() + _REQUEST_SECONDS)
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj  # type: ignore[assignment]
                buffer = pending[conn][0]
                try:
                    chunk = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    drop(conn)
                    continue
                buffer += chunk
                if not chunk or (b"\n" not in buffer and len(buffer) > _MAX_REQUEST_BYTES):
                    drop(conn)
                    continue
                if b"\n" not in buffer:
                    continue
                pending.pop(conn)
                selector.unregister(conn)
                last_request = time.monotonic()
                try:
                    request = check_request(json.loads(bytes(buffer).split(b"\n", 1)[0]))
                    if request.get("exit"):
                        answer(conn, {"exiting": True})
                        return
                    pid = os.fork()
                except Exception as exc:  # a bad request never takes the warm process down
                    answer(conn, {"error": f"{type(exc).__name__}: {exc}"})
                    continue
                if pid == 0:
                    selector.close()
                    listener.close()
                    for other in list(pending):
                        other.close()
                    conn.close()
                    code = 1
                    try:
                        code = _run_child(request)
                    except BaseException:
                        traceback.print_exc()
                    finally:
                        with contextlib.suppress(BaseException):
                            atexit._run_exitfuncs()
                            sys.stdout.flush()
                            sys.stderr.flush()
                        os._exit(code)
                answer(conn, {"pid": pid})
    finally:
        selector.close()
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), float(os.environ.get("WORKBENCH_WARM_IDLE", IDLE_SECONDS)))
