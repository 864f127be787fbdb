"""Shared fixtures: isolated workspaces, a trained and registered model, and engine/browser checks.

Tests that need a Docker engine or a browser skip with a message on a developer's machine that lacks
them; with ``WORKBENCH_STRICT_TESTS=1`` (set by ``.ci/run``) a missing engine or browser is a failure.
One thing CI lacks on purpose, a live Kubernetes cluster, is opted into with ``KUBECONFIG``: without it
the live-cluster test skips, saying so, even in strict mode; with it, anything else missing fails.
All of these go through :func:`need`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import workbench as wb

REPO = Path(__file__).resolve().parents[1]
STRICT = os.environ.get("WORKBENCH_STRICT_TESTS") == "1"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last. Playwright's sync API keeps an asyncio loop running on the main thread
    from its first test to the end of the session, and tests that run their own loop (pytest-jupyter's
    server, ``asyncio.run``) cannot start after it."""
    items.sort(key=lambda item: item.get_closest_marker("ui") is not None)  # stable: order kept otherwise


def need(available: bool, reason: str, *, opt_in: str | None = None) -> None:
    """Skip (or, under WORKBENCH_STRICT_TESTS=1, fail) when a tool the test drives is missing.

    ``opt_in`` names the environment variable that offers a tool CI does not have on purpose
    (``KUBECONFIG`` for a live cluster): while it is unset, the test skips with that name even in
    strict mode; once it is set, the tool is promised and a missing one fails like any other.
    """
    if available:
        return
    if opt_in is not None and not os.environ.get(opt_in):
        pytest.skip(f"{reason} (set {opt_in} to run this test; unset, it is skipped on purpose, also in CI)")
    if STRICT:
        pytest.fail(f"{reason} (WORKBENCH_STRICT_TESTS=1: CI must provide it)")
    pytest.skip(reason)


def _use_workspace(home: Path) -> wb.Settings:
    os.environ["WORKBENCH_HOME"] = str(home)
    return wb.configure()


@pytest.fixture(scope="session", autouse=True)
def session_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[wb.Settings]:
    """One workspace for the whole session; tests use unique experiment and model names in it."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("WORKBENCH_")}
    # The workbench's own settings go; the test suite's (strict mode, the live cluster's) stay.
    for key in [k for k in os.environ if k.startswith("WORKBENCH_") and k != "WORKBENCH_STRICT_TESTS"
                and not k.startswith("WORKBENCH_TEST_")]:
        del os.environ[key]
    settings = _use_workspace(tmp_path_factory.mktemp("workspace"))
    yield settings
    _stop_deployments(settings)
    from workbench.deployment import warm

    warm.shutdown()  # the warm process the local deployments were forked from
    os.environ.update(saved)


def _stop_deployments(settings: wb.Settings) -> None:
    """Stop what a failing test left deployed, so no server outlives the session."""
    wb.configure(settings)
    try:
        left = wb.deployments()
    except Exception:  # the workspace may never have been used
        return
    for deployment in left:
        try:
            wb.stop(deployment.name)
        except Exception as exc:  # keep stopping the others; say what could not be stopped
            print(f"could not stop deployment {deployment.name}: {exc}")


@pytest.fixture()
def fresh_workspace(tmp_path: Path, session_workspace: wb.Settings) -> Iterator[wb.Settings]:
    """A new, empty workspace for one test (the session's is restored afterwards)."""
    settings = _use_workspace(tmp_path / "workspace")
    yield settings
    _stop_deployments(settings)
    _use_workspace(session_workspace.home)


@pytest.fixture(scope="session")
def credit_data():
    """A small synthetic tabular classification set: 8 numeric features, 2 categorical, a label."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=1200, n_features=8, n_informative=5, random_state=3)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    rng = np.random.default_rng(3)
    frame["region"] = rng.choice(["north", "south", "east", "west"], size=len(frame))
    frame["tier"] = rng.choice(["gold", "silver"], size=len(frame))
    return frame, pd.Series(y, name="label")


@pytest.fixture(scope="session")
def numeric_data():
    """Numeric-only features, the shape most serving tests use."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, random_state=5)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]), pd.Series(y, name="label")


@pytest.fixture(scope="session")
def credit_pipeline(credit_data) -> wb.ModelVersion:
    """Categories one-hot encoded in front of a random forest, registered once as ``credit-pipeline``
    with its reference profile (the explain route's and the packaging tests' pipeline)."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = credit_data
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="error"), ["region", "tier"]), remainder="passthrough"),
        RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0),
    ).fit(X, y)
    with wb.start_run(experiment="pipeline-tests"):
        logged = wb.log_model(model, training_data=X, training_labels=y)
    return wb.register(logged, "credit-pipeline")


@pytest.fixture(scope="session")
def register_versions(numeric_data) -> Callable[..., list[wb.ModelVersion]]:
    """Make a registered model with one version per estimator, each fitted on numeric_data in a run of
    ``experiment`` with its accuracy and reference profile logged. ``register_versions(estimators,
    experiment, prefix)`` returns the versions, oldest first, of a new model named ``<prefix>-<random>``."""
    import uuid

    import mlflow

    X, y = numeric_data

    def register(estimators: Sequence[Any], experiment: str, prefix: str) -> list[wb.ModelVersion]:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        versions = []
        for estimator in estimators:
            with wb.start_run(experiment=experiment, run_name=type(estimator).__name__):
                estimator.fit(X, y)
                mlflow.log_metric("accuracy", estimator.score(X, y))
                versions.append(wb.register(wb.log_model(estimator, training_data=X, training_labels=y), name))
        return versions

    return register


@pytest.fixture(scope="session")
def registered_model(numeric_data) -> wb.ModelVersion:
    """A RandomForest on numeric_data, logged with its profile, registered as 'fixture-rf' @champion."""
    import mlflow
    from sklearn.ensemble import RandomForestClassifier

    X, y = numeric_data
    with wb.start_run(experiment="fixtures", run_name="fixture-rf"):
        model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X, y)
        mlflow.log_metric("accuracy", model.score(X, y))
        logged = wb.log_model(model, training_data=X, training_labels=y)
    version = wb.register(logged, "fixture-rf")
    wb.set_alias("fixture-rf", "champion", version.version)
    return wb.get_version("fixture-rf", version.version)


def docker_available() -> bool:
    """True when a Docker engine answers on this machine."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_engine() -> None:
    need(docker_available(), "no Docker engine answers: start dockerd (scripts/setup-system does)")


@pytest.fixture(scope="session")
def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl, ...)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")) if Path("/usr/lib/postgresql").exists() else []
    need(bool(found), "PostgreSQL is not installed: apt-get install postgresql (scripts/setup-system does)")
    return found[-1].parent


class PostgresCluster:
    """A throwaway PostgreSQL server (Debian's binaries) on a free loopback port, run as the postgres
    user when the tests run as root (PostgreSQL refuses root). ``url`` names its ``workbench``
    database; :meth:`stop` and :meth:`start` take it away and bring it back on the same port.

    ``host`` (another address of this machine, e.g. the test cluster's network) is listened on too,
    and clients from ``clients`` (address ranges) sign in there with ``password``, which ``url`` then
    carries (as a team's store would have one)."""

    def __init__(self, bin_dir: Path, *, host: str | None = None, clients: tuple[str, ...] = (),
                 password: str | None = None) -> None:
        import subprocess
        import tempfile

        from support import free_port

        self.bin = bin_dir
        # Not under pytest's temporary folder: that one is private to root, and the server runs as postgres.
        self.data = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self.port = free_port()
        self.host = host
        subprocess.run(self._as_postgres([str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust",
                                          "-U", "postgres"]), check=True, capture_output=True)
        if clients:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.writelines(f"host all all {network} scram-sha-256\n" for network in clients)
        self.start()
        subprocess.run(self._as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                          "-U", "postgres", "workbench"]), check=True, capture_output=True)
        if password:
            subprocess.run(self._as_postgres([str(bin_dir.parent / "bin" / "psql"), "-h", "127.0.0.1", "-p",
                                              str(self.port), "-U", "postgres", "-c",
                                              f"ALTER USER postgres PASSWORD '{password}'"]),
                           check=True, capture_output=True)
        user = f"postgres:{password}" if password else "postgres"
        self.url = f"postgresql://{user}@{host or '127.0.0.1'}:{self.port}/workbench"

    @staticmethod
    def _as_postgres(cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        import subprocess

        subprocess.run(self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                                          str(self.data / "server.log"), "-w", "-o",
                                          f"-p {self.port} -k {self.data} -c listen_addresses="
                                          f"{','.join(filter(None, ('127.0.0.1', self.host)))}", "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        """Stop the server (``pg_ctl -m fast``: open connections are cut, as when a database goes)."""
        import subprocess

        subprocess.run(self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                          "stop"]), check=True, capture_output=True)

    def remove(self) -> None:
        """Stop the server and delete its files."""
        import contextlib
        import subprocess

        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(postgres_bin: Path) -> Iterator[str]:
    """One PostgreSQL server for the session; yields the URL of its empty ``workbench`` database
    (``postgresql://postgres@127.0.0.1:PORT/workbench``). Tests keep apart by their own names."""
    cluster = PostgresCluster(postgres_bin)
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture()
def postgres_cluster(postgres_bin: Path) -> Iterator[PostgresCluster]:
    """A PostgreSQL server of the test's own, for tests that stop and start it."""
    cluster = PostgresCluster(postgres_bin)
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    """checkov, the outside checker of the Kubernetes manifests, in its own environment (`make tools`)."""
    path = REPO / ".tools" / "checkov" / "bin" / "checkov"
    need(path.exists(), f"checkov is not installed at {path}: `make tools` installs it (make test does)")
    return path


@dataclass(frozen=True)
class LiveCluster:
    """The Kubernetes cluster the live test deploys to, and the registry that cluster pulls from."""

    context: str
    namespace: str
    registry: str


@pytest.fixture(scope="session")
def live_cluster() -> LiveCluster:
    """A live cluster, opted into with KUBECONFIG (CI has none: there the test skips, by name).

    The context is ``WORKBENCH_TEST_KUBECONTEXT`` (default: the kubeconfig's current one), the namespace
    ``WORKBENCH_TEST_KUBENAMESPACE`` (default ``default``); ``WORKBENCH_TEST_REGISTRY`` is a registry
    the cluster pulls the model images from.
    """
    kubeconfig = os.environ.get("KUBECONFIG", "")
    need(bool(kubeconfig) and all(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p),
         f"no live Kubernetes cluster: KUBECONFIG names no kubeconfig file ({kubeconfig or 'unset'})",
         opt_in="KUBECONFIG")
    from kubernetes import client, config

    contexts, current = config.list_kube_config_contexts()
    context = os.environ.get("WORKBENCH_TEST_KUBECONTEXT") or (current or {}).get("name", "")
    need(any(c["name"] == context for c in contexts),
         f"the kubeconfig has no context {context!r}: set WORKBENCH_TEST_KUBECONTEXT to one of "
         f"{[c['name'] for c in contexts]}")
    registry = os.environ.get("WORKBENCH_TEST_REGISTRY", "")
    need(bool(registry), "WORKBENCH_TEST_REGISTRY is not set: the cluster needs a registry to pull the model "
                         "images from")
    failure = ""
    try:
        client.VersionApi(config.new_client_from_config(context=context)).get_code(_request_timeout=10)
    except Exception as exc:  # any failure to reach the API server: say which
        failure = f"{type(exc).__name__}: {exc}"
    need(not failure, f"the cluster of context {context!r} does not answer ({failure})")
    return LiveCluster(context, os.environ.get("WORKBENCH_TEST_KUBENAMESPACE", "default"), registry)


EXTENSION = REPO / "extensions" / "workbench-jupyterlab"


@pytest.fixture(scope="session")
def npm() -> str:
    """npm, with the extension's Node modules installed (``make setup`` installs them, needing Node 20+)."""
    path = shutil.which("npm")
    need(path is not None and (EXTENSION / "node_modules" / ".bin" / "tsc").exists(),
         "npm or the extension's Node modules are missing: install Node.js 20+ and npm, then `make setup`")
    assert path is not None
    return path


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium (Playwright cannot download its own browsers here)."""
    need(Path(CHROMIUM).exists(), "Chromium is not installed: apt-get install chromium")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


class ServerProcess:
    """A `workbench serve` process on a free port, for tests that talk to it over HTTP."""

    def __init__(self, model_uri: str, workdir: Path, *, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        import subprocess
        import sys
        import time

        self.log_dir = workdir / "predictions"
        port_file = workdir / "port"
        self.output = workdir / "server.log"
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "workbench"), "serve", model_uri, "--port", "0",
             "--log-dir", str(self.log_dir), "--port-file", str(port_file), *args],
            env=full_env, stdout=open(self.output, "w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start:\n" + self.output.read_text())
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait, and return the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=timeout)


def _server_factory(make_dir) -> tuple:
    started: list[ServerProcess] = []

    def start(model_uri: str, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> ServerProcess:
        server = ServerProcess(model_uri, make_dir(), env=env, args=args)
        started.append(server)
        return server

    return start, started


@pytest.fixture()
def serve_model(tmp_path: Path) -> Iterator:
    """Factory: ``serve_model(uri, env=..., args=...)`` starts a server, stopped after the test."""
    counter = iter(range(1000))

    def make_dir() -> Path:
        path = tmp_path / f"server-{next(counter)}"
        path.mkdir()
        return path

    start, started = _server_factory(make_dir)
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def serve_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Like ``serve_model``, for servers that many tests share; stopped at the end of the session."""
    start, started = _server_factory(lambda: tmp_path_factory.mktemp("server"))
    yield start
    for server in started:
        server.stop()


# -- a real two-node Docker Swarm on this machine (scripts/swarm-cluster) ---------------------------

#: This machine's address on the network scripts/swarm-cluster makes: the swarm's manager, the
#: registry both engines pull from, and where the cluster's log store listens.
CLUSTER_GATEWAY = "10.213.7.1"


@dataclass(frozen=True)
class SwarmCluster:
    """The two-node swarm: this engine (the manager) and a worker engine in a container."""

    script: Path
    #: ``HOST:PORT/PATH`` of the registry every node pulls from (the swarm target's ``registry``).
    registry: str
    worker: str = "workbench-worker"

    def run(self, *args: str) -> None:
        """``scripts/swarm-cluster ARGS``."""
        import subprocess

        result = subprocess.run([str(self.script), *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"scripts/swarm-cluster {' '.join(args)}: {result.stderr}"

    def replicas(self, service_id: str) -> list[tuple[str, str]]:
        """(node hostname, container id) of each running task of a service."""
        import docker

        client = docker.from_env()
        found = []
        for task in client.services.get(service_id).tasks(filters={"desired-state": "running"}):
            status = task.get("Status", {})
            if status.get("State") == "running":
                node = client.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]
                found.append((node, status["ContainerStatus"]["ContainerID"]))
        return found

    def kill(self, node: str, container_id: str) -> None:
        """kill -9 a task's container on whichever node it runs."""
        import subprocess

        docker = ["docker", "exec", self.worker, "docker"] if node == self.worker else ["docker"]
        subprocess.run([*docker, "kill", "--signal", "KILL", container_id], check=True, capture_output=True)


@pytest.fixture(scope="session")
def swarm_cluster(docker_engine) -> SwarmCluster:
    """The two-node swarm, brought up by scripts/swarm-cluster (scripts/setup-system does it for CI;
    `scripts/swarm-cluster down` takes it away)."""
    import subprocess

    need(shutil.which("docker-registry") is not None,
         "docker-registry is not installed: apt-get install docker-registry (scripts/setup-system does)")
    script = REPO / "scripts" / "swarm-cluster"
    result = subprocess.run([str(script), "up"], capture_output=True, text=True, timeout=600)
    need(result.returncode == 0, f"the two-node swarm did not come up (scripts/swarm-cluster up): {result.stderr}")
    return SwarmCluster(script, f"{CLUSTER_GATEWAY}:5000/workbench-tests")


@pytest.fixture(scope="session")
def cluster_store(postgres_bin: Path, swarm_cluster: SwarmCluster) -> Iterator[PostgresCluster]:
    """The cluster's prediction log store: PostgreSQL on the cluster's network, with a password, as a
    team's would be (replicas on both nodes reach it there)."""
    import secrets

    store = PostgresCluster(postgres_bin, host=CLUSTER_GATEWAY, clients=("10.213.0.0/16", "172.16.0.0/12"),
                            password=secrets.token_hex(8))
    try:
        yield store
    finally:
        store.remove()


@pytest.fixture()
def on_cluster(cluster_store: PostgresCluster, swarm_cluster: SwarmCluster) -> Iterator[SwarmCluster]:
    """The workbench pointed at the cluster's log store (``WORKBENCH_LOG_URL``) for one test."""
    before = os.environ.get("WORKBENCH_LOG_URL")
    os.environ["WORKBENCH_LOG_URL"] = cluster_store.url
    wb.configure()
    try:
        yield swarm_cluster
    finally:
        if before is None:
            os.environ.pop("WORKBENCH_LOG_URL", None)
        else:
            os.environ["WORKBENCH_LOG_URL"] = before
        wb.configure()
