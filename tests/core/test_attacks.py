"""The attacker's suite: what another local user, a rebound DNS name, a writer of the shared store
or a forged client can do to the workbench, each with real parts (servers, files, a second uid).

- DNS rebinding: a page on a name that resolves to 127.0.0.1 is same-origin to itself; the servers
  refuse any ``Host`` but an address, ``localhost`` and the configured names.
- Secrets and file modes: the router's admin token stays out of reprs and stays 0600; the
  workspace is private to its user.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pandas as pd
import pytest


def _v2(rows: pd.DataFrame) -> dict:
    return {"inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
                       for c in rows]}


@pytest.fixture(scope="module")
def rebind_server(registered_model, serve_shared):
    """fixture-rf served on loopback, also answering to one configured name."""
    return serve_shared(registered_model.uri, env={"WORKBENCH_ALLOWED_HOSTS": "models.example.test"})


def _rebound(url: str, name: str = "evil.example") -> dict[str, str]:
    """The headers a page at http://NAME:PORT sends once NAME resolves to 127.0.0.1."""
    port = url.rsplit(":", 1)[1]
    return {"host": f"{name}:{port}", "origin": f"http://{name}:{port}", "sec-fetch-site": "same-origin"}


# -- 1. DNS rebinding ----------------------------------------------------------------------------


def test_a_rebound_name_reads_no_inputs_and_writes_no_feedback(rebind_server, numeric_data) -> None:
    X, _ = numeric_data
    url = rebind_server.url
    answered = httpx.post(f"{url}/v2/models/fixture-rf/infer", json=_v2(X.head(2)))
    assert answered.status_code == 200
    request_id = answered.json()["id"]

    page = httpx.get(f"{url}/workbench/predictions", headers=_rebound(url))
    assert page.status_code == 403, page.text
    assert "WORKBENCH_ALLOWED_HOSTS" in page.json()["error"] and "evil.example" in page.json()["error"]
    assert str(X.iloc[0, 0]) not in page.text
    feedback = httpx.post(f"{url}/v2/models/fixture-rf/feedback", headers=_rebound(url),
                          json=[{"request_id": request_id, "reward": 1.0}])
    assert feedback.status_code == 403
    invocations = httpx.post(f"{url}/invocations", headers=_rebound(url),
                             json={"dataframe_split": X.head(1).to_dict(orient="split")})
    assert invocations.status_code == 403
    first = httpx.post(f"{url}/v2/models/fixture-rf/feedback", json=[{"request_id": request_id, "reward": 1.0}])
    assert first.json()["recorded"] == 1  # the refused one was never recorded

    # Addresses, localhost and the configured name keep working, from a page too.
    for name in ("127.0.0.1", "localhost", "models.example.test", "api.localhost"):
        own = httpx.get(f"{url}/workbench/predictions", headers=_rebound(url, name))
        assert own.status_code == 200, (name, own.text)


def test_the_router_refuses_a_rebound_name(rebind_server, numeric_data) -> None:
    from starlette.testclient import TestClient

    from workbench.routing.router import RouteTable, create_router

    X, _ = numeric_data
    app = create_router(RouteTable(champion=(rebind_server.url,)), token="admin-token", allowed_origins=())
    with TestClient(app, base_url="http://evil.example:9999") as client:
        headers = {"origin": "http://evil.example:9999", "sec-fetch-site": "same-origin"}
        refused = client.post("/v2/models/fixture-rf/infer", json=_v2(X.head(1)), headers=headers)
        assert refused.status_code == 403 and "WORKBENCH_ALLOWED_HOSTS" in refused.json()["error"]
        table = client.get("/workbench/router", headers=headers)
        assert table.status_code == 403
    with TestClient(app, base_url="http://localhost:9999") as client:
        own = client.post("/v2/models/fixture-rf/infer", json=_v2(X.head(1)),
                          headers={"origin": "http://localhost:9999", "sec-fetch-site": "same-origin"})
        assert own.status_code == 200, own.text


def test_allowed_host_names_are_settings_and_reach_containers() -> None:
    """``WORKBENCH_ALLOWED_HOSTS`` is read, passed to child processes and containers, and a
    server bound by a name answers to it; a Docker model server answers to its container name."""
    import workbench as wb
    from workbench.deployment.targets.docker import server_environment

    settings = wb.configure(allowed_hosts=("Models.Example.test.", ".team.example"))
    try:
        assert settings.allows_host("models.example.test:8080") and settings.allows_host("a.team.example")
        assert settings.allows_host("team.example") and not settings.allows_host("evil.example:8080")
        assert settings.allows_host("[::1]:80") and settings.allows_host("10.1.2.3:80")
        assert settings.as_env()["WORKBENCH_ALLOWED_HOSTS"] == "models.example.test,.team.example"
        assert settings.bound_to("box.lan").allows_host("box.lan:8080")
        env = server_environment(settings, "workbench-m-champion-1")
        assert env["WORKBENCH_ALLOWED_HOSTS"] == "workbench-m-champion-1,models.example.test,.team.example"
    finally:
        wb.configure(allowed_hosts=())


# -- 2. Secrets and file modes -------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def two_versions(register_versions):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return register_versions([RandomForestClassifier(n_estimators=5, random_state=0),
                              LogisticRegression(max_iter=300)], "attacks", "secrets")


def test_the_router_token_stays_out_of_reprs_and_its_file_stays_0600(two_versions, session_workspace) -> None:
    import workbench as wb

    old = os.umask(0o022)  # a usual umask: files are 0644 unless written privately
    name = "attack-secrets"
    try:
        deployment = wb.deploy(two_versions[0].uri, name=name, target="local")
        token = deployment.handle.token
        config = session_workspace.deployments_dir / name / "router.json"
        assert json.loads(config.read_text())["token"] == token and _mode(config) == 0o600
        challenged = wb.start_challenger(name, two_versions[1].uri, strategy="thompson")
        assert _mode(config) == 0o600, oct(_mode(config))  # the router rewrote it: still private
        listed = wb.get_deployment(name)
        for shown in (repr(deployment), repr(challenged), repr(listed), str(listed), listed._repr_html_(),
                      json.dumps(listed.to_dict()), repr(wb.audit_log(limit=50))):
            assert token not in shown
        assert "token=" not in repr(listed)
    finally:
        os.umask(old)
        wb.stop(name)


def test_the_workspace_is_private_to_its_user(tmp_path: Path, session_workspace, numeric_data) -> None:
    import workbench as wb
    from workbench.predlog import PredictionLog

    old = os.umask(0o022)
    home = tmp_path / "shared" / ".workbench"
    try:
        wb.configure(home=home)
        with wb.start_run(experiment="private"):
            pass
        wb.audit_log(limit=1)
        log = PredictionLog(home / "deployments" / "x" / "predictions")
        log.close()
        assert _mode(home) == 0o700
        for file in (home / "mlflow.db", home / "workbench.db", home / "deployments" / "x" / "predictions" / "predictions.db"):
            assert _mode(file) == 0o600, (file, oct(_mode(file)))
        # A link in the place of a private folder is refused, not followed.
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", tmp_path / "link")
        from workbench._private import private_folder
        from workbench.errors import ConfigurationError

        with pytest.raises(ConfigurationError, match="symbolic link"):
            private_folder(tmp_path / "link")
    finally:
        os.umask(old)
        wb.configure(session_workspace)


def test_a_store_password_stays_out_of_the_settings_repr(session_workspace) -> None:
    import workbench as wb

    settings = wb.configure(tracking_uri="postgresql://ana:s3cret-pw@db.example.test:5432/mlflow")
    try:
        assert "s3cret-pw" not in repr(settings) and "ana:***@db.example.test" in repr(settings)
        assert settings.store_uri.endswith("ana:s3cret-pw@db.example.test:5432/mlflow")  # still usable
    finally:
        wb.configure(session_workspace)


# -- 3. The warm process's folder and socket -----------------------------------------------------

NOBODY = 65534  # the second user: the "nobody" account every Linux has


def _as_other_user(action) -> None:  # noqa: ANN001
    """Run ``action()`` in a forked child that became another user; fail if it fails."""
    if os.geteuid() != 0:
        pytest.skip("switching to a second user needs root (the CI container runs the tests as root)")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


@pytest.fixture()
def shared_runtime(monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime folder everyone may write into, as the shared temporary folder is (1777)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="wa", dir="/tmp"))
    folder.chmod(0o1777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return folder


def test_a_warm_folder_another_user_made_first_is_refused(shared_runtime: Path) -> None:
    from workbench.deployment import warm
    from workbench.errors import ConfigurationError

    _as_other_user(lambda: os.mkdir(shared_runtime / "workbench", 0o700))
    with pytest.raises(ConfigurationError, match=r"belongs to another user \(uid 65534\).*WORKBENCH_WARM_SERVER=0"):
        warm.socket_path()


def test_a_warm_folder_symlink_planted_by_another_user_is_not_followed(shared_runtime: Path) -> None:
    from workbench.deployment import warm
    from workbench.errors import ConfigurationError

    def plant() -> None:
        os.mkdir(shared_runtime / "theirs", 0o777)
        os.symlink(shared_runtime / "theirs", shared_runtime / "workbench")

    _as_other_user(plant)
    with pytest.raises(ConfigurationError, match="symbolic link.*WORKBENCH_WARM_SERVER=0"):
        warm.socket_path()
    assert os.listdir(shared_runtime / "theirs") == []  # nothing of ours went there


def test_without_a_runtime_folder_the_socket_is_not_in_the_shared_temp_folder(monkeypatch) -> None:
    import tempfile

    from workbench.deployment import warm

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = warm.socket_path()
    assert not str(path).startswith(tempfile.gettempdir() + "/") and path.parent == Path.home() / ".cache" / "workbench"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_client_sends_nothing_to_a_socket_another_user_listens_on() -> None:
    """Even at the right path (say, a race won), a socket served by another uid gets no request:
    the request would carry the whole environment, secrets included."""
    import socket

    from workbench.deployment import warm
    from workbench.errors import ConfigurationError

    if os.geteuid() != 0:
        pytest.skip("switching to a second user needs root (the CI container runs the tests as root)")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="wp", dir="/tmp"))  # pytest's own folders are 0700
    folder.chmod(0o777)
    path, received = folder / "warm.sock", folder / "received"
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other user: listen, keep whatever arrives
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            os.chmod(path, 0o777)
            server.listen(1)
            os.write(ready_write, b"1")
            server.settimeout(30)
            conn, _ = server.accept()
            conn.settimeout(5)
            data = b""
            while chunk := conn.recv(1 << 16):
                data += chunk
            received.write_bytes(data)
        finally:
            os._exit(0)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"1", "the other user could not listen"
    try:
        with pytest.raises(ConfigurationError, match=r"another user \(uid 65534\).*nothing was sent"):
            warm._ask(path, {"argv": ["serve"], "env": {"SECRET_TOKEN": "s3cret"}}, 10.0)
    finally:
        os.waitpid(pid, 0)
    assert received.read_bytes() == b""


@pytest.fixture()
def own_warm_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A warm process of this test's own (its own runtime folder), asked to exit afterwards."""
    import shutil
    import tempfile

    from workbench.deployment import warm

    folder = Path(tempfile.mkdtemp(prefix="wr", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    warm.spawn(["--version"], env=dict(os.environ), cwd=tmp_path, log_file=tmp_path / "version.log")
    yield warm.socket_path()
    warm.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def test_the_warm_process_checks_a_request_before_it_forks(own_warm_process: Path, tmp_path: Path) -> None:
    from workbench.deployment import warm
    from workbench.errors import HealthCheckError

    with pytest.raises(HealthCheckError, match="runs only"):
        warm.spawn(["-c", "import os"], env={}, cwd=tmp_path, log_file=tmp_path / "x.log")
    with pytest.raises(HealthCheckError, match="'cwd' must be an existing folder"):
        warm.spawn(["serve", "m"], env={}, cwd=tmp_path / "missing", log_file=tmp_path / "x.log")
    assert not (tmp_path / "x.log").exists()  # no child ever opened its log


def test_idle_connections_do_not_stall_the_warm_process(own_warm_process: Path, tmp_path: Path) -> None:
    import socket

    from workbench.deployment import warm

    idle = []
    for _ in range(3):  # connected, sending nothing
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(own_warm_process))
        idle.append(sock)
    try:
        child = warm.spawn(["--version"], env=dict(os.environ), cwd=tmp_path, log_file=tmp_path / "v.log",
                           timeout=4.0)
        assert child.pid > 0
    finally:
        for sock in idle:
            sock.close()


# -- 4. What the store hands back ----------------------------------------------------------------


def _logged(numeric_data, name: str, user: str | None = None):
    """A small model logged with its profile (and its captured code), registered as ``name``."""
    import workbench as wb
    from sklearn.tree import DecisionTreeClassifier

    X, y = numeric_data
    saved = wb.get_settings()
    if user is not None:
        wb.configure(user=user)
    try:
        with wb.start_run(experiment="attacks"):
            logged = wb.log_model(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
                                  training_data=X, training_labels=y)
        return wb.register(logged, name)
    finally:
        wb.configure(saved)


def _files_of(version) -> Path:
    import mlflow

    logged_id = version.source.split("/")[-1]
    root = mlflow.MlflowClient().get_logged_model(logged_id).artifact_location
    return Path(root.removeprefix("file://"))


def test_log_model_records_a_hash_of_every_file_it_stores(numeric_data, session_workspace) -> None:
    import workbench as wb
    from workbench.integrity import MANIFEST, TAG_DIGEST, digest
    from workbench.registry import logged_model_tags

    version = _logged(numeric_data, "attack-hashes")
    folder = _files_of(version)
    listed = json.loads((folder / MANIFEST).read_text())["sha256"]
    assert {"MLmodel", "reference_profile/profile.json"} <= set(listed) or "MLmodel" in listed
    assert any(name.startswith("reference_profile/") for name in listed)
    assert logged_model_tags(version.uri)[TAG_DIGEST] == digest((folder / MANIFEST).read_bytes())
    wb.load_model(version.uri)  # untouched: loads


def test_a_changed_model_file_is_refused_before_it_is_loaded_or_served(numeric_data, session_workspace) -> None:
    import workbench as wb
    from workbench.errors import IntegrityError
    from workbench.registry import download_model, local_model_folder

    version = _logged(numeric_data, "attack-tampered-model")
    folder = _files_of(version)
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(mlmodel.read_text() + "\n# changed by someone who can write artifacts\n")
    for load in (lambda: wb.load_model(version.uri), lambda: download_model(version.uri),
                 lambda: local_model_folder(version.uri, session_workspace.home / "x"),
                 lambda: wb.diff(version.uri, version.uri)):
        with pytest.raises(IntegrityError, match=r"MLmodel changed since log_model"):
            load()
    with pytest.raises(IntegrityError, match="MLmodel changed"):
        wb.deploy(version.uri, name="attack-tampered", target="local")


def test_a_changed_profile_is_refused(numeric_data, session_workspace) -> None:
    import workbench as wb
    from workbench.errors import IntegrityError

    version = _logged(numeric_data, "attack-tampered-profile")
    profile = next(p for p in (_files_of(version) / "reference_profile").rglob("*") if p.is_file())
    profile.write_bytes(profile.read_bytes() + b" ")
    with pytest.raises(IntegrityError, match=rf"reference_profile/{profile.name} changed since log_model"):
        wb.load_profile(version.uri)


TRAIN_SCRIPT = """\
import sys
import pandas as pd
from sklearn.tree import DecisionTreeClassifier
import workbench as wb

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "b": [1.0, 0.0, 1.0, 0.0] * 10})
y = (X["a"] > 1).astype(int).rename("label")
with wb.start_run(experiment="attacks-script"):
    logged = wb.log_model(DecisionTreeClassifier(random_state=0).fit(X, y), training_data=X, training_labels=y,
                          snapshot_data=True)
print(wb.register(logged, sys.argv[1]).uri)
"""


def test_changed_captured_code_is_never_run(tmp_path: Path, session_workspace) -> None:
    """The issue's case: capture.json names the working folder and arguments, and the captured
    script is what runs; changed in the store, nothing runs and the changed file is named."""
    import subprocess
    import sys

    import workbench as wb
    from workbench.capture import CODE_DIR, CODE_MANIFEST
    from workbench.errors import IntegrityError

    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    done = subprocess.run([sys.executable, "train.py", "attack-tampered-code"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **session_workspace.as_env()})
    assert done.returncode == 0, done.stderr
    version = wb.get_version("attack-tampered-code", 1)
    code_dir = _files_of(version) / CODE_DIR
    marker = tmp_path / "ran"
    script = code_dir / "train.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + script.read_text())
    with pytest.raises(IntegrityError, match=rf"{CODE_DIR}/train.py changed since log_model"):
        wb.reproduce(version.uri)
    assert not marker.exists()
    script.write_text(TRAIN_SCRIPT)  # restored: the code reads the same again
    manifest = code_dir / CODE_MANIFEST
    code = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**code, "args": ["--evil"], "workdir": "/"}))
    with pytest.raises(IntegrityError, match=rf"{CODE_DIR}/{CODE_MANIFEST} changed since log_model"):
        wb.reproduce(version.uri)


def test_reproducing_another_users_model_needs_consent_and_says_whose_code(numeric_data, session_workspace) -> None:
    import workbench as wb
    from workbench.errors import ReproductionError

    version = _logged(numeric_data, "attack-their-code", user="mallory")
    with pytest.raises(ReproductionError, match=r"logged by 'mallory'.*trust=True.*--trust"):
        wb.reproduce(version.uri)
    with pytest.raises(ReproductionError, match="snapshot") as consented:  # past consent: what is missing
        wb.reproduce(version.uri, trust=True)
    assert "mallory" not in str(consented.value)


# -- 6. Forged feedback --------------------------------------------------------------------------


def test_rewards_outside_zero_to_one_are_refused(rebind_server, numeric_data) -> None:
    X, _ = numeric_data
    url = rebind_server.url
    answered = httpx.post(f"{url}/v2/models/fixture-rf/infer", json=_v2(X.head(1))).json()["id"]
    for reward in (25.0, -1, 1.5):
        refused = httpx.post(f"{url}/v2/models/fixture-rf/feedback", json=[{"request_id": answered, "reward": reward}])
        assert refused.status_code == 400, refused.text
        assert "reward must be a number from 0 to 1" in refused.json()["error"]
    assert httpx.post(f"{url}/v2/models/fixture-rf/feedback",
                      json=[{"request_id": answered, "reward": 1}]).json()["recorded"] == 1


def test_feedback_items_and_bytes_per_request_are_bounded(rebind_server) -> None:
    from workbench.predlog.feedback import MAX_FEEDBACK_BYTES, MAX_FEEDBACK_ITEMS

    url = rebind_server.url
    many = [{"request_id": f"r{i}", "reward": 1} for i in range(MAX_FEEDBACK_ITEMS + 1)]
    too_many = httpx.post(f"{url}/v2/models/fixture-rf/feedback", json=many)
    assert too_many.status_code == 413 and "several requests" in too_many.json()["error"]
    big = [{"request_id": "r" * 200, "truth": "x" * 1000}] * (MAX_FEEDBACK_BYTES // 1000)
    too_big = httpx.post(f"{url}/v2/models/fixture-rf/feedback", json=big)
    assert too_big.status_code == 413 and "feedback" in too_big.json()["error"]
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200


def test_the_deployment_issues_a_feedback_token_its_router_checks(rebind_server, numeric_data) -> None:
    from starlette.testclient import TestClient

    from workbench.routing.router import RouteTable, create_router, feedback_token_for

    X, _ = numeric_data
    token = feedback_token_for("admin-token")
    assert token != "admin-token" and len(token) >= 32
    for required in (True, False):
        app = create_router(RouteTable(champion=(rebind_server.url,)), token="admin-token", allowed_origins=(),
                            require_feedback_token=required)
        with TestClient(app, base_url="http://127.0.0.1:9999") as client:
            rid = client.post("/v2/models/fixture-rf/infer", json=_v2(X.head(1))).json()["id"]
            body = [{"request_id": rid, "reward": 1.0}]
            wrong = client.post("/v2/models/fixture-rf/feedback", json=body, headers={"authorization": "Bearer guess"})
            assert wrong.status_code == 401 and "feedback token is wrong" in wrong.json()["error"]
            bare = client.post("/v2/models/fixture-rf/feedback", json=body)
            if required:
                assert bare.status_code == 401 and "feedback_token" in bare.json()["error"]
                good = client.post("/v2/models/fixture-rf/feedback", json=body,
                                   headers={"authorization": f"Bearer {token}"})
                assert good.status_code == 200 and good.json()["recorded"] == 1
            else:
                assert bare.status_code == 200  # on loopback the token is optional


def test_a_server_given_a_feedback_token_requires_it(registered_model, serve_model, numeric_data) -> None:
    X, _ = numeric_data
    server = serve_model(registered_model.uri, env={"WORKBENCH_FEEDBACK_TOKEN": "fb-secret"})
    rid = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(X.head(1))).json()["id"]
    body = [{"request_id": rid, "truth": 1}]
    assert httpx.post(f"{server.url}/v2/models/fixture-rf/feedback", json=body).status_code == 401
    ok = httpx.post(f"{server.url}/v2/models/fixture-rf/feedback", json=body,
                    headers={"authorization": "Bearer fb-secret"})
    assert ok.status_code == 200


def test_forged_rewards_for_one_version_raise_a_monitor_alert(two_versions, serve_shared, numeric_data) -> None:
    """25 rewards, all for the version that gave half the answers: the monitor says so."""
    import workbench as wb

    X, _ = numeric_data
    servers = [serve_shared(v.uri) for v in two_versions]
    name = two_versions[0].name
    answered = {}
    for server, version in zip(servers, two_versions, strict=True):
        ids = [httpx.post(f"{server.url}/v2/models/{name}/infer", json=_v2(X.iloc[[i]])).json()["id"]
               for i in range(25)]
        answered[version.version] = (server, ids)
    monitor = wb.LiveMonitor(two_versions[0].uri, [s.url for s in servers])
    monitor.update()
    assert not [a for a in monitor.alerts if a.kind == "feedback"]
    server, ids = answered[two_versions[1].version]
    httpx.post(f"{server.url}/v2/models/{name}/feedback", json=[{"request_id": i, "reward": 1.0} for i in ids])
    monitor.update()
    forged = [a for a in monitor.alerts if a.kind == "feedback"]
    assert len(forged) == 1 and f"version {two_versions[1].version}" in forged[0].message
    assert "100% of 25 rewards" in forged[0].message


# -- 7. Smaller ones -----------------------------------------------------------------------------


def test_while_the_log_cannot_be_written_the_server_is_not_ready(registered_model, numeric_data, tmp_path) -> None:
    """A full disk, as a file size limit on the server process (Python ignores SIGXFSZ, so writes
    past it fail as on a full disk): predictions fail with 503 and readiness says why."""
    import resource
    import subprocess
    import sys
    import time

    X, _ = numeric_data
    port_file, log = tmp_path / "port", tmp_path / "server.log"
    limit = 400_000

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", registered_model.uri, "--port", "0",
                             "--log-dir", str(tmp_path / "predictions"), "--port-file", str(port_file)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), preexec_fn=small_disk)
    try:
        deadline = time.monotonic() + 90
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        rows = X.sample(n=2000, replace=True, random_state=0)
        body = {"dataframe_split": rows.to_dict(orient="split")}
        statuses = []
        for _ in range(40):
            answer = httpx.post(f"{url}/invocations", json=body, timeout=60)
            statuses.append(answer.status_code)
            if answer.status_code != 200:
                break
        assert statuses[-1] == 503, statuses
        assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "prediction log could not record" in answer.json()["message"]
        ready = httpx.get(f"{url}/v2/health/ready")
        assert ready.status_code == 503 and "prediction log cannot be written" in ready.json()["reason"]
        assert httpx.get(f"{url}/ping").status_code == 503
        assert httpx.get(f"{url}/v2/health/live").status_code == 200  # alive: not to be restarted for it
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_wrong_type_outputs_field_is_refused(rebind_server, numeric_data) -> None:
    X, _ = numeric_data
    for outputs in ({}, "", 0, False, {"name": "predict"}):
        response = httpx.post(f"{rebind_server.url}/v2/models/fixture-rf/infer",
                              json={**_v2(X.head(1)), "outputs": outputs})
        assert response.status_code == 400, (outputs, response.text)
        assert "'outputs' must be a list" in response.json()["error"]


def test_a_model_image_keeps_no_path_of_the_build_machine(registered_model, session_workspace, tmp_path) -> None:
    from workbench.packaging.context import prepare_context
    from workbench.registry import download_model

    prepare_context(registered_model.uri, tmp_path / "context")
    model = tmp_path / "context" / "model"
    for file in model.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            for path in (str(session_workspace.home), str(tmp_path)):
                assert path.encode() not in data, (file.name, path)
    assert download_model(str(model)) == model  # its own manifest matches what the image holds
