"""Docker Swarm: a one-node swarm with two replicas behind the router, for real.

Rolling updates replace one replica at a time and roll back a version that fails its health
checks; every replica keeps its own prediction log and the live monitor pulls from all of them.
"""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import workbench as wb
from workbench.errors import EngineUnavailableError, HealthCheckError
from workbench.monitor import LiveMonitor

pytestmark = pytest.mark.docker


def test_an_engine_that_is_not_a_swarm_manager_says_how_to_make_one(duel_versions, docker_engine) -> None:
    import docker

    # First in this module: the `swarm` fixture has not made the engine a manager yet. CI's engine
    # starts outside any swarm; a developer's engine may already be in one.
    if docker.from_env().info()["Swarm"]["LocalNodeState"] == "active":
        pytest.skip("this engine is already in a swarm")
    v1, _ = duel_versions
    with pytest.raises(EngineUnavailableError, match="docker swarm init"):
        wb.deploy(v1.uri, target="swarm", name="no-swarm")


@pytest.fixture(scope="module")
def swarm(docker_engine) -> Iterator[None]:
    """A one-node swarm on the local engine (made here, and left at the end, if there was none)."""
    import docker

    client = docker.from_env()
    made = client.info()["Swarm"]["LocalNodeState"] != "active"
    if made:
        subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], check=True, capture_output=True)
    yield
    if made:
        subprocess.run(["docker", "swarm", "leave", "--force"], check=True, capture_output=True)
        # leaving leaves this network behind
        subprocess.run(["docker", "network", "rm", "docker_gwbridge"], capture_output=True)


def test_replicas_behind_the_router_with_rolling_update_and_rollback(
    swarm, duel_versions, numeric_data, tmp_path: Path
) -> None:
    v1, v2 = duel_versions
    X, _ = numeric_data
    rows = X.head(3)
    name = f"swarm-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(v1.uri, target="swarm", name=name, replicas=2)
    try:
        assert dep.healthy and len(dep.replica_urls) == 2 and len(dep.log_sources) == 2
        assert "2/2 replicas ready" in dep.detail

        # requests through the router reach both replicas; each logs its own share
        for _ in range(20):
            assert dep.predict(rows) == wb.load_model(v1.uri).predict(rows).tolist()
        per_replica = [len(httpx.get(f"{u}/workbench/predictions").json()["records"]) for u in dep.log_sources]
        assert sum(per_replica) == 20 and min(per_replica) > 0

        # the live monitor pulls every replica's log
        monitor = LiveMonitor(v1.uri, sources=dep.log_sources, window=100, multivariate_every=0)
        pulled = monitor.pull()
        assert len(pulled) == 20 * len(rows)

        # rolling update: same address, new version
        updated = wb.update(name, v2.uri)
        assert (updated.url, updated.model_version, updated.healthy) == (dep.url, v2.version, True)
        assert updated.predict(rows) == wb.load_model(v2.uri).predict(rows).tolist()

        # a version that never starts: the swarm rolls back, the current one keeps serving
        broken = _broken_model(tmp_path, X)
        with pytest.raises(HealthCheckError, match="rolled service .* back"):
            wb.update(name, broken)
        after = wb.get_deployment(name)
        assert (after.model_version, after.healthy) == (v2.version, True)
        assert after.predict(rows) == wb.load_model(v2.uri).predict(rows).tolist()
    finally:
        wb.stop(name)
    assert not any(d.name == name for d in wb.deployments())


def test_champion_and_challenger_on_swarm(swarm, duel, numeric_data) -> None:
    duel("swarm", numeric_data, replicas=1)


def _broken_model(tmp_path: Path, X) -> str:
    """A model whose server exits while loading it."""
    from mlflow.models import infer_signature

    code = tmp_path / "broken.py"
    code.write_text(textwrap.dedent("""
        import mlflow.pyfunc

        class Broken(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                raise RuntimeError("this model cannot load")

            def predict(self, context, model_input, params=None):
                return model_input

        mlflow.models.set_model(Broken())
    """))
    with wb.start_run(experiment="swarm-tests"):
        logged = wb.log_model(str(code), flavor="pyfunc", name="broken", signature=infer_signature(X.head(), X.head()))
    uri = wb.register(logged, f"broken-{uuid.uuid4().hex[:5]}").uri
    # Governance would stop this model first (no input example, no training-data lineage): the
    # waivers let the test reach the swarm's health checks.
    for check in ("signature", "lineage"):
        wb.waive(uri, check, by="test suite", reason="a model built to fail its health checks")
    return uri
