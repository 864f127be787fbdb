"""The warm process the local target forks model servers from: each child is what the command line
would have run, only the user can reach it, and it goes away when idle."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import workbench as wb
from workbench.deployment import warm
from workbench.errors import ConfigurationError


@pytest.fixture()
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime folder of this test's own (short: a socket path has at most 107 bytes), so its warm
    process is not the suite's; the warm process is asked to exit afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="wr", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    warm.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    """What ``ps -o args`` shows for ``pid``."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def _wait(condition, timeout: float = 30.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _serve(registered_model: wb.ModelVersion, cwd: Path, env: dict[str, str]) -> tuple[warm.SpawnedProcess, str]:
    """``workbench serve`` of the fixture model forked from the warm process; returns it and its URL."""
    port_file = cwd / "port"
    child = warm.spawn(["serve", registered_model.uri, "--port", "0", "--port-file", str(port_file),
                        "--log-dir", "predictions"], env=env, cwd=cwd, log_file=cwd / "server.log")
    assert _wait(port_file.exists), (cwd / "server.log").read_text()
    return child, f"http://127.0.0.1:{port_file.read_text()}"


def test_a_forked_server_gets_the_folder_environment_session_and_log_it_was_given(
        runtime_dir: Path, registered_model: wb.ModelVersion, numeric_data, tmp_path: Path) -> None:
    X, _ = numeric_data
    env = {**os.environ, **wb.get_settings().as_env(), "WORKBENCH_MAX_ROWS": "3"}
    child, url = _serve(registered_model, tmp_path, env)
    try:
        assert os.getsid(child.pid) == child.pid  # its own session: stopping it stops its whole group
        assert (tmp_path / "predictions").is_dir()  # the relative --log-dir is under the given folder
        rows = X.head(4).to_dict(orient="split")
        refused = httpx.post(f"{url}/invocations", json={"dataframe_split": {"columns": rows["columns"],
                                                                            "data": rows["data"]}})
        assert refused.status_code == 413 and "3" in refused.text  # the given WORKBENCH_MAX_ROWS
        assert "serving fixture-rf" in (tmp_path / "server.log").read_text()

        (tmp_path / "again").mkdir()
        second, _ = _serve(registered_model, tmp_path / "again", env)
        assert _ppid(second.pid) == _ppid(child.pid)  # one warm process forked both
        os.kill(second.pid, 15)
        assert _wait(lambda: second.poll() is not None)  # reaped: no zombie is left behind
    finally:
        os.kill(child.pid, 15)
    assert _wait(lambda: child.poll() is not None)
    assert child.poll() == -1


def test_only_the_user_can_reach_the_warm_process(runtime_dir: Path, tmp_path: Path) -> None:
    child = warm.spawn(["--version"], env=dict(os.environ), cwd=tmp_path, log_file=tmp_path / "out.log")
    assert _wait(lambda: child.poll() is not None)
    assert "version" in (tmp_path / "out.log").read_text()
    path = warm.socket_path()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    if os.getuid() == 0:  # another user, even one given the socket, is not answered
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setuid(65534)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)
                try:
                    sock.connect(str(path))
                except PermissionError:
                    code = 0  # the socket's mode already keeps them out
                else:
                    sock.sendall(json.dumps({"argv": ["--version"], "env": {}, "cwd": "/",
                                             "log": "/tmp/x.log"}).encode() + b"\n")
                    code = 0 if sock.recv(100) == b"" else 3
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_a_bad_request_is_answered_with_an_error_and_the_warm_process_goes_on(runtime_dir: Path,
                                                                               tmp_path: Path) -> None:
    warm.spawn(["--version"], env=dict(os.environ), cwd=tmp_path, log_file=tmp_path / "out.log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(warm.socket_path()))
    sock.sendall(b"not json\n")
    assert "error" in json.loads(sock.makefile("rb").readline())
    sock.close()
    again = warm.spawn(["--version"], env=dict(os.environ), cwd=tmp_path, log_file=tmp_path / "again.log")
    assert _wait(lambda: again.poll() is not None)
    assert "version" in (tmp_path / "again.log").read_text()


def test_an_idle_warm_process_exits_and_its_servers_live_on(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            registered_model: wb.ModelVersion, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKBENCH_WARM_IDLE", "2")
    child, url = _serve(registered_model, tmp_path, {**os.environ, **wb.get_settings().as_env()})
    try:
        path = warm.socket_path()
        parent = _ppid(child.pid)
        assert _wait(lambda: not path.exists(), timeout=30)
        assert _wait(lambda: not Path(f"/proc/{parent}").exists() or
                     Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    finally:
        os.kill(child.pid, 15)


def test_a_shared_runtime_folder_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(tempfile.mkdtemp(prefix="wr", dir="/tmp"))
    (folder / "workbench").mkdir(mode=0o755)
    (folder / "workbench").chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    with pytest.raises(ConfigurationError, match="not private.*WORKBENCH_WARM_SERVER=0"):
        warm.socket_path()
    shutil.rmtree(folder)


def test_installing_a_package_starts_a_new_warm_process(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    import site

    monkeypatch.setattr(site, "getsitepackages", lambda: [str(tmp_path)])
    before = warm.socket_path()
    time.sleep(0.01)
    (tmp_path / "newpkg-1.0.dist-info").mkdir()
    assert warm.socket_path() != before


def test_local_deployments_fork_from_the_warm_process_or_start_fresh_when_it_is_off(
        registered_model: wb.ModelVersion, numeric_data) -> None:
    X, _ = numeric_data
    expected = wb.load_model(registered_model.uri).predict(X.head(5)).tolist()
    for setting in ("1", "0"):
        os.environ["WORKBENCH_WARM_SERVER"] = setting
        wb.configure()
        name = f"warm-{setting}"
        try:
            dep = wb.deploy(registered_model.uri, target="local", name=name)
            pid = dep.handle.champion.handle.pid
            assert (_ppid(pid) == os.getpid()) is (setting == "0")
            assert dep.predict(X.head(5)) == expected
            # ps shows each process after its deployment, not as the warm process it was forked from
            assert _cmdline(pid) == f"workbench serve {name} {registered_model.uri}"
            assert _cmdline(dep.handle.router.pid) == f"workbench route {name}"
        finally:
            wb.stop(name)
            del os.environ["WORKBENCH_WARM_SERVER"]
            wb.configure()
