"""Team mode: the workbench against a shared MLflow tracking server backed by PostgreSQL, for real.

A throwaway PostgreSQL cluster (Debian's postgresql) and `mlflow server` with proxied artifacts are
started here; two users work through the same API, CLI and deployments, and their runs stay apart
by experiment and by the user recorded with each action.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import workbench as wb
from support import free_port

CLI = str(Path(sys.executable).parent / "workbench")


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: run its tools as the postgres user then.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres(postgres_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server on a free port with an empty `mlflow` database; yields its SQLAlchemy URI."""
    PG_BIN = postgres_bin
    # Not under pytest's temporary folder: that one is private to root, and the server runs as postgres.
    data = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
                                 "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(_as_postgres([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                     "mlflow"]), check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking_server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on PostgreSQL with artifacts served through it; yields its URL."""
    port = free_port()
    artifacts = tmp_path_factory.mktemp("shared-artifacts")
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", postgres,
         "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _as_user(user: str, server: str, home: Path, code: str) -> dict:
    """Run ``code`` in a fresh process as ``user`` in team mode; it prints one JSON line."""
    env = {**os.environ, "WORKBENCH_TRACKING_URI": server, "WORKBENCH_USER": user, "WORKBENCH_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


TRAIN = """
import json, mlflow, workbench as wb
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
import pandas as pd
X, y = make_classification(n_samples=300, n_features=4, random_state={seed})
X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
with wb.start_run(experiment="{experiment}") as run:
    model = LogisticRegression().fit(X, y)
    mlflow.log_metric("accuracy", model.score(X, y))
    logged = wb.log_model(model, training_data=X, training_labels=pd.Series(y, name="label"))
version = wb.register(logged, "{model}")
wb.set_alias("{model}", "champion", version.version)
print(json.dumps({{"run_id": run.info.run_id, "version": version.version}}))
"""


def test_two_users_share_a_tracking_server(tracking_server: str, tmp_path: Path) -> None:
    ada = _as_user("ada", tracking_server, tmp_path / "ada",
                   TRAIN.format(seed=1, experiment="team-ada", model="team-churn"))
    bob = _as_user("bob", tracking_server, tmp_path / "bob",
                   TRAIN.format(seed=2, experiment="team-bob", model="team-churn"))
    assert (ada["version"], bob["version"]) == ("1", "2")

    previous = wb.get_settings()
    wb.configure(tracking_uri=tracking_server, home=tmp_path / "lead", user="lead")
    try:
        assert not wb.get_settings().embedded
        ada_runs = wb.runs("team-ada")
        assert ada_runs["run_id"].tolist() == [ada["run_id"]] and ada_runs["user"].tolist() == ["ada"]
        assert wb.runs("team-bob")["user"].tolist() == ["bob"]
        versions = {v.version: v for v in wb.versions("team-churn")}
        assert (versions["1"].user, versions["2"].user) == ("ada", "bob")
        assert wb.resolve("models:/team-churn@champion").version == "2"  # bob moved the alias last
        # artifacts come through the server: the model and its reference profile
        assert wb.load_profile("models:/team-churn/1").feature_names == ["a", "b", "c", "d"]
        model = wb.load_model("models:/team-churn@champion")
        import pandas as pd

        assert len(model.predict(pd.DataFrame([[0.1, 0.2, 0.3, 0.4]], columns=list("abcd")))) == 1

        # a deployment from the shared registry, recorded as the lead's
        dep = wb.deploy("models:/team-churn@champion", name="team-churn")
        try:
            assert dep.healthy and dep.user == "lead" and dep.model_version == "2"
            assert len(dep.predict(pd.DataFrame([[0.1, 0.2, 0.3, 0.4]], columns=list("abcd")))) == 1
        finally:
            wb.stop("team-churn")
    finally:
        wb.configure(previous)


def test_the_cli_in_team_mode(tracking_server: str, tmp_path: Path) -> None:
    env = {**os.environ, "WORKBENCH_TRACKING_URI": tracking_server, "WORKBENCH_HOME": str(tmp_path)}
    info = json.loads(subprocess.run([CLI, "info", "--json"], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    assert info["mode"] == "tracking server" and info["tracking_uri"] == tracking_server
    models = json.loads(subprocess.run([CLI, "models", "--json"], env=env, capture_output=True, text=True,
                                       check=True).stdout)
    assert "team-churn" in {m["name"] for m in models}
