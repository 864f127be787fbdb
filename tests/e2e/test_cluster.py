"""The loop on a real cluster: a two-node Docker Swarm on this machine (scripts/swarm-cluster), one
PostgreSQL log store, and nothing lost while replicas are killed, a node's engine stops and the
database restarts.

Four replicas spread over both nodes answer 8 senders for a minute, each answer followed by its
feedback; during the run two replicas are killed with SIGKILL (one per node), the worker's engine is
stopped for 20 s and PostgreSQL is restarted. Afterwards every acknowledged prediction and feedback
item is in the store exactly once, the live monitor reads every replica's records from the store,
and a bandit challenger on both nodes moves its share as the rewards say.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

import workbench as wb
from workbench.monitor import LiveMonitor
from workbench.predlog import read_all_feedback, recent_records
from workbench.predlog.store import StoreSource

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: Seconds of traffic; the disruptions are placed at fixed fractions of it.
SECONDS = float(os.environ.get("WORKBENCH_TEST_CLUSTER_SECONDS", "60"))
SENDERS = 8


@dataclass
class Tally:
    """What the senders saw: acknowledged predictions and feedback, and refusals by status."""

    predictions: dict[str, object] = field(default_factory=dict)
    feedback: set[str] = field(default_factory=set)
    refused: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _sender(url: str, model: str, rows: list[dict], truth: list[int], stop: float, tally: Tally, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < stop:
            i = int(rng.integers(len(rows)))
            rid = uuid.uuid4().hex
            try:
                answer = client.post(f"{url}/invocations", json={"dataframe_records": [rows[i]]},
                                     headers={"x-request-id": rid})
            except httpx.HTTPError as exc:
                with tally.lock:
                    tally.refused[type(exc).__name__] += 1
                continue
            if answer.status_code != 200:
                with tally.lock:
                    tally.refused[answer.status_code] += 1
                continue
            with tally.lock:
                tally.predictions[rid] = answer.json()["predictions"][0]
            try:
                sent = client.post(f"{url}/v2/models/{model}/feedback", json={"request_id": rid, "truth": truth[i]})
            except httpx.HTTPError as exc:
                with tally.lock:
                    tally.refused[f"feedback {type(exc).__name__}"] += 1
                continue
            status = sent.json()["results"][0]["status"] if sent.status_code == 200 else None
            with tally.lock:
                if status in ("recorded", "spooled"):
                    tally.feedback.add(rid)
                else:
                    tally.refused[f"feedback {sent.status_code} {status}"] += 1


def _chaos(cluster, service_id: str, store, t0: float, events: list[str]) -> None:
    def at(fraction: float) -> None:
        time.sleep(max(0.0, t0 + fraction * SECONDS - time.monotonic()))

    at(1 / 6)
    replicas = cluster.replicas(service_id)
    for node in sorted({n for n, _ in replicas}):  # one replica on each node
        container = next(c for n, c in replicas if n == node)
        cluster.kill(node, container)
        events.append(f"{time.monotonic() - t0:.0f}s: kill -9 a replica on {node}")
    at(22 / 60)
    cluster.run("stop-worker")
    events.append(f"{time.monotonic() - t0:.0f}s: the worker's engine stopped")
    at(42 / 60)
    cluster.run("start-worker")
    events.append(f"{time.monotonic() - t0:.0f}s: the worker's engine is back")
    at(48 / 60)
    store.stop()
    events.append(f"{time.monotonic() - t0:.0f}s: PostgreSQL stopped")
    time.sleep(min(5.0, SECONDS / 12))
    store.start()
    events.append(f"{time.monotonic() - t0:.0f}s: PostgreSQL is back")


def _store_counts(source: str) -> tuple[Counter, Counter, int]:
    """Records per request id, feedback items per request id, and replicas seen, as the store has them."""
    records = recent_records([source], 10_000_000)
    feedback = read_all_feedback(StoreSource(source)).records
    return Counter(records["request_id"]), Counter(feedback["request_id"]), records["replica"].nunique()


def test_the_loop_on_two_nodes_loses_nothing(on_cluster, cluster_store, duel_versions, numeric_data) -> None:
    cluster = on_cluster
    v1, v2 = duel_versions
    X, y = numeric_data
    rows, truth = X.to_dict(orient="records"), [int(v) for v in y]
    name = f"cluster-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(v1.uri, target="swarm", name=name, replicas=4, registry=cluster.registry)
    try:
        # the replicas run on both nodes, and the log is the store
        service_id = wb.get_deployment(name).handle.champion.handle.service_id  # type: ignore[union-attr]
        nodes = Counter(node for node, _ in cluster.replicas(service_id))
        assert len(nodes) == 2 and sum(nodes.values()) == 4, nodes
        assert dep.healthy and "4/4 replicas running" in dep.detail
        assert len(dep.log_sources) == 1 and dep.log_sources[0].startswith("postgresql://")
        assert cluster_store.url.split(":")[2].split("@")[0] not in dep.log_sources[0]  # no password kept
        model = wb.load_model(v1.uri)
        assert dep.predict(X.head(5)) == model.predict(X.head(5)).tolist()

        tally, events = Tally(), []
        t0 = time.monotonic()
        senders = [threading.Thread(target=_sender, args=(dep.url, v1.name, rows, truth, t0 + SECONDS, tally, s))
                   for s in range(SENDERS)]
        chaos = threading.Thread(target=_chaos, args=(cluster, service_id, cluster_store, t0, events))
        for thread in (*senders, chaos):
            thread.start()
        for thread in (*senders, chaos):
            thread.join()
        elapsed = time.monotonic() - t0

        # every replica drains what it spooled: wait until the store has every acknowledged item
        deadline = time.monotonic() + 180
        while True:
            records, feedback, replicas = _store_counts(dep.log_sources[0])
            missing = set(tally.predictions) - set(records)
            missing_feedback = tally.feedback - set(feedback)
            if not (missing or missing_feedback) or time.monotonic() > deadline:
                break
            time.sleep(2)
        duplicated = [rid for rid, n in records.items() if n > 1]
        duplicated_feedback = [rid for rid, n in feedback.items() if n > 1]
        print(f"\ncluster run: {len(tally.predictions)} predictions and {len(tally.feedback)} feedback items "
              f"acknowledged in {elapsed:.0f} s ({len(tally.predictions) / elapsed:.0f} req/s), refused: "
              f"{dict(tally.refused)}; lost {len(missing)}+{len(missing_feedback)}, duplicated "
              f"{len(duplicated)}+{len(duplicated_feedback)}; replicas seen {replicas}; {events}")
        assert len(events) == 6, events
        assert len(tally.predictions) > 20 * SECONDS and len(tally.feedback) > 0.9 * len(tally.predictions)
        assert (missing, missing_feedback) == (set(), set())
        assert (duplicated, duplicated_feedback) == ([], [])
        assert replicas >= 4  # the four first replicas, and those that replaced the killed ones
        # answers are the model's, bit for bit, whatever replica gave them
        stored = recent_records(dep.log_sources, 10_000_000)
        assert set(stored["model_version"].astype(str)) == {v1.version}

        # the live monitor reads every replica from the store: one source, every row
        monitor = LiveMonitor(v1.uri, sources=dep.log_sources, window=1000, multivariate_every=0)
        assert len(monitor.pull()) == int(stored["n_rows"].sum())

        # a bandit challenger across both nodes moves its share as the rewards say
        wb.start_challenger(name, v2.uri, strategy="thompson")
        with httpx.Client(timeout=30) as client:
            for i in range(300):
                answer = client.post(f"{dep.url}/invocations", json={"dataframe_records": [rows[i % len(rows)]]})
                assert answer.status_code == 200, answer.text
                reward = 1.0 if answer.headers["x-workbench-variant"] == "challenger" else 0.0
                sent = client.post(f"{dep.url}/v2/models/{v1.name}/feedback",
                                   json={"request_id": answer.headers["x-request-id"], "reward": reward})
                assert sent.status_code == 200, sent.text
        shares = wb.get_deployment(name).shares
        assert shares["challenger"] > 0.7, shares
    finally:
        wb.stop(name)
    assert name not in [d.name for d in wb.deployments()]
