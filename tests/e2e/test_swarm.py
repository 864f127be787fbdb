"""Docker Swarm across two nodes (scripts/swarm-cluster): replicas spread over both, found by the
router through the swarm's DNS, one shared log store, images pulled from a registry; rolling updates
replace one replica at a time and roll back a version that fails its health checks.

The harder run (replicas killed, a node's engine stopped, the store restarted, nothing lost) is
tests/e2e/test_cluster.py.
"""

from __future__ import annotations

import textwrap
import uuid
from collections import Counter
from pathlib import Path

import pytest

import workbench as wb
from workbench.errors import EngineUnavailableError, HealthCheckError
from workbench.monitor import LiveMonitor
from workbench.predlog import recent_records

pytestmark = pytest.mark.docker


def test_an_engine_that_is_not_a_swarm_manager_says_how_to_make_one(on_cluster, duel_versions,
                                                                     monkeypatch) -> None:
    # The worker's engine is in the swarm, but only as a worker: it cannot create services.
    monkeypatch.setenv("DOCKER_HOST", on_cluster.worker_host)
    v1, _ = duel_versions
    with pytest.raises(EngineUnavailableError, match="docker swarm init"):
        wb.deploy(v1.uri, target="swarm", name="no-swarm", registry=on_cluster.registry)
    assert "no-swarm" not in [d.name for d in wb.deployments()]


def test_replicas_on_both_nodes_with_rolling_update_and_rollback(on_cluster, duel_versions, numeric_data,
                                                                 tmp_path: Path) -> None:
    cluster = on_cluster
    v1, v2 = duel_versions
    X, _ = numeric_data
    rows = X.head(3)
    name = f"swarm-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(v1.uri, target="swarm", name=name, replicas=2, registry=cluster.registry)
    try:
        service_id = dep.handle.champion.handle.service_id  # type: ignore[union-attr]
        assert sorted(Counter(node for node, _ in cluster.replicas(service_id)).values()) == [1, 1]
        assert dep.healthy and "2/2 replicas running on " in dep.detail and cluster.worker in dep.detail
        assert dep.handle.replica_urls == () and dep.log_sources[0].startswith("postgresql://")  # type: ignore[union-attr]

        # requests through the router reach both nodes' replicas; one store holds every answer
        expected = wb.load_model(v1.uri).predict(rows).tolist()
        for _ in range(20):
            assert dep.predict(rows) == expected
        records = recent_records(dep.log_sources, 1000)
        assert len(records) == 20 and records["replica"].nunique() == 2

        # the live monitor reads both replicas with one query
        monitor = LiveMonitor(v1.uri, sources=dep.log_sources, window=100, multivariate_every=0)
        assert len(monitor.pull()) == 20 * len(rows)

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


def test_champion_and_challenger_on_swarm(on_cluster, duel, numeric_data) -> None:
    duel("swarm", numeric_data, replicas=1, registry=on_cluster.registry)


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
