"""The shared PostgreSQL log store: real `workbench serve` processes (replicas) writing one real
PostgreSQL server, read back by SQL; values exact, nothing lost or doubled when the database goes
away and comes back, and a clear 503 when a replica can write nowhere."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from support import real_table, real_table_pipeline

import workbench as wb
from workbench.monitor import LiveMonitor
from workbench.predlog import StoreSource, labelled_rows, read_predictions, recent_rows
from workbench.tables import encode_split


def _store_args(url: str, deployment: str, log_dir: Path | None = None) -> tuple[str, ...]:
    extra = ("--log-dir", str(log_dir)) if log_dir is not None else ()  # the last --log-dir given wins
    return ("--log-url", url, "--deployment", deployment, *extra)


def _predict(url: str, rows: pd.DataFrame, request_id: str, client: httpx.Client | None = None) -> httpx.Response:
    http = client or httpx
    return http.post(f"{url}/invocations", content=json.dumps({"dataframe_split": encode_split(rows)}),
                     headers={"content-type": "application/json", "x-request-id": request_id}, timeout=60)


def _feedback(url: str, body, client: httpx.Client | None = None, name: str = "fixture-rf") -> httpx.Response:
    http = client or httpx
    return http.post(f"{url}/v2/models/{name}/feedback", json=body, timeout=60)


def _ready(url: str) -> dict:
    response = httpx.get(f"{url}/v2/health/ready", timeout=10)
    return {"status": response.status_code, **response.json()}


def _wait_for_log_state(url: str, state: str, timeout: float = 60) -> dict:
    """Poll the readiness route until the log is in ``state`` with nothing spooled (the spool drained)."""
    deadline = time.monotonic() + timeout
    while True:
        ready = _ready(url)
        if ready["log"]["state"] == state and ready["log"]["spooled"] == 0:
            return ready
        if time.monotonic() > deadline:
            raise AssertionError(f"the log never reached {state!r}: {ready}")
        time.sleep(0.2)


def _store_rows(url: str, sql: str, *args) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    conn.close()
    return rows


@pytest.fixture(scope="module")
def every_kind_of_value():
    """A pipeline over every column of the real table (NaN, pd.NA, nullable ints, categories, tz
    datetimes, ...), registered, and 120 of its rows."""
    features, _, cheated = real_table(600)
    model = real_table_pipeline().fit(features, cheated)
    with wb.start_run(experiment=f"log-store-{uuid.uuid4().hex[:6]}"):
        logged = wb.log_model(model, training_data=features, training_labels=cheated)
    version = wb.register(logged, f"log-store-values-{uuid.uuid4().hex[:6]}")
    rows = features.sample(120, random_state=3)
    assert rows["religious"].isna().any() and str(rows["religious"].dtype) == "Int64"
    return version, rows.reset_index(drop=True)


def test_values_read_back_from_the_store_exactly_as_from_sqlite(postgres_server, serve_model,
                                                                every_kind_of_value) -> None:
    version, rows = every_kind_of_value
    deployment = f"values-{uuid.uuid4().hex[:6]}"
    embedded = serve_model(version.uri)
    shared = serve_model(version.uri, args=_store_args(postgres_server, deployment))
    for start in range(0, len(rows), 40):  # three requests of 40 rows each, the same to both
        chunk = rows.iloc[start:start + 40]
        for server in (embedded, shared):
            answer = _predict(server.url, chunk, f"values-{start}")
            assert answer.status_code == 200, answer.text

    from_sqlite = recent_rows(str(embedded.log_dir), len(rows))
    from_store = recent_rows(f"{postgres_server}?deployment={deployment}", len(rows))
    columns = list(rows.columns)
    pd.testing.assert_frame_equal(from_store.frame[columns], from_sqlite.frame[columns])
    pd.testing.assert_frame_equal(from_store.frame[columns], rows, check_categorical=False)
    for column in columns:  # each column's type, as the SQLite log gives it back (categories stay categories)
        assert from_store.frame[column].dtype == from_sqlite.frame[column].dtype, column
        if isinstance(rows[column].dtype, pd.CategoricalDtype):
            assert isinstance(from_store.frame[column].dtype, pd.CategoricalDtype), column
        else:
            assert from_store.frame[column].dtype == rows[column].dtype, column
    outputs = list(from_sqlite.outputs)
    assert outputs and from_store.outputs == from_sqlite.outputs
    for column in outputs:
        assert np.asarray(from_store.frame[column]).tobytes() == np.asarray(from_sqlite.frame[column]).tobytes()
    assert from_store.frame["request_id"].tolist() == from_sqlite.frame["request_id"].tolist()
    # The replica's own page route reads the store too: the same records, the store's cursor.
    page = httpx.get(f"{shared.url}/workbench/predictions", params={"since": 0}).json()
    assert [r["request_id"] for r in page["records"]] == ["values-0", "values-40", "values-80"]


def test_two_replicas_write_one_store_that_one_monitor_reads(postgres_server, serve_model, registered_model,
                                                             numeric_data, tmp_path) -> None:
    X, y = numeric_data
    deployment = f"two-{uuid.uuid4().hex[:6]}"
    replicas = [serve_model(registered_model.uri, args=_store_args(postgres_server, deployment, tmp_path / f"r{i}"))
                for i in range(2)]
    for i in range(40):  # answered by one replica, labelled through the other
        answer = _predict(replicas[i % 2].url, X.iloc[[i]], f"two-{i}")
        assert answer.status_code == 200, answer.text
    labelled = _feedback(replicas[1].url, [{"request_id": f"two-{i}", "truth": int(y.iloc[i])} for i in range(0, 40, 2)])
    assert labelled.status_code == 200, labelled.text
    assert {r["status"] for r in labelled.json()["results"]} == {"recorded"}  # answered by the other replica

    source = f"{postgres_server}?deployment={deployment}"
    monitor = LiveMonitor(registered_model.uri, [source], window=1000)
    report = monitor.update()
    assert report is not None and report.n_rows == 40
    assert list(monitor.cursors) == [StoreSource(source).name]  # one source, one cursor, for both replicas
    records = StoreSource(source).fetch(0, 100).records
    assert records["seq"].is_monotonic_increasing and records["seq"].is_unique
    assert records["replica"].nunique() == 2  # both replicas wrote, each under its own identity
    assert report.performance is not None and report.performance.n == 20  # the join of the labels

    # New traffic on either replica continues from the one cursor; nothing is read twice.
    for i in range(40, 46):
        assert _predict(replicas[i % 2].url, X.iloc[[i]], f"two-{i}").status_code == 200
    again = monitor.update()
    assert again is not None and again.new_rows == 6 and again.n_rows == 46

    # A monitor of a smaller window starts where that window starts: the history before is not read.
    recent = LiveMonitor(registered_model.uri, [source], window=10).update()
    assert recent is not None and recent.new_rows == 10 and recent.n_rows == 10

    joined = labelled_rows([source], 46).frame
    assert len(joined) == 46 and joined["truth"].notna().sum() == 20
    truths = joined.set_index("request_id")["truth"]
    assert all(truths[f"two-{i}"] == int(y.iloc[i]) for i in range(0, 40, 2))
    # A window by time comes from the same query path.
    assert len(StoreSource(source).tail(seconds=3600).records) == 46


def test_a_postgresql_restart_mid_traffic_loses_and_doubles_nothing(postgres_cluster, serve_model,
                                                                     registered_model, numeric_data,
                                                                     tmp_path) -> None:
    X, y = numeric_data
    deployment = f"restart-{uuid.uuid4().hex[:6]}"
    log_dir = tmp_path / "replica"
    server = serve_model(registered_model.uri, args=_store_args(postgres_cluster.url, deployment, log_dir))
    acknowledged: list[str] = []
    labelled: list[str] = []
    failures: list[str] = []
    counter = itertools.count()
    stop = threading.Event()

    def send() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                i = next(counter)
                request_id = f"restart-{i}"
                answer = _predict(server.url, X.iloc[[i % len(X)]], request_id, client)
                if answer.status_code != 200:
                    failures.append(f"{request_id}: {answer.status_code} {answer.text}")
                    continue
                acknowledged.append(request_id)
                told = _feedback(server.url, {"request_id": request_id, "truth": int(y.iloc[i % len(X)])}, client)
                if told.status_code == 200 and told.json()["results"][0]["status"] in ("recorded", "spooled"):
                    labelled.append(request_id)
                else:
                    failures.append(f"feedback {request_id}: {told.status_code} {told.text}")

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 120
        while len(acknowledged) < n and time.monotonic() < deadline and not failures:
            time.sleep(0.05)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        senders = [pool.submit(send) for _ in range(4)]
        try:
            wait_for(100)
            postgres_cluster.stop()
            before_outage = len(acknowledged)
            wait_for(before_outage + 150)  # answered while the database is away
            during = _ready(server.url)
            postgres_cluster.start()
            wait_for(len(acknowledged) + 100)
        finally:
            stop.set()
            for sender in senders:
                sender.result()
    assert not failures, failures[:5]
    assert len(acknowledged) >= before_outage + 250
    assert during["status"] == 200 and during["log"]["state"] == "spool" and during["log"]["spooled"] > 0
    _wait_for_log_state(server.url, "store")

    # A replica stopped while the database is away keeps its spool on disk; the next start drains it.
    postgres_cluster.stop()
    for i in range(20):
        request_id = f"restart-late-{i}"
        assert _predict(server.url, X.iloc[[i]], request_id).status_code == 200
        acknowledged.append(request_id)
    server.stop()
    assert "stopped cleanly" in server.output.read_text()
    assert (log_dir / "spool.db").exists()
    postgres_cluster.start()
    again = serve_model(registered_model.uri, args=_store_args(postgres_cluster.url, deployment, log_dir))
    _wait_for_log_state(again.url, "store")

    stored = _store_rows(postgres_cluster.url, "SELECT request_id, count(*) FROM workbench_predictions "
                                               "WHERE deployment = %s GROUP BY request_id", deployment)
    counts = dict(stored)
    assert sorted(counts) == sorted(acknowledged), "every acknowledged prediction is in the store"
    assert set(counts.values()) == {1}, "and each exactly once"
    feedback = dict(_store_rows(postgres_cluster.url, "SELECT request_id, count(*) FROM workbench_feedback "
                                                      "WHERE deployment = %s GROUP BY request_id", deployment))
    assert sorted(feedback) == sorted(labelled) and set(feedback.values()) == {1}
    # Nothing stayed behind in the local log folder: the store holds it all.
    assert not (log_dir / "predictions.db").exists()


def test_feedback_spooled_on_one_replica_waits_for_the_prediction_another_spooled(
        postgres_cluster, serve_model, registered_model, numeric_data, tmp_path) -> None:
    """Behind a router with one shared log, feedback reaches any replica: while the store is away, a
    prediction answered by one replica and its feedback received by another wait in two spools, and
    the feedback's replica may drain first. The item was acknowledged ("spooled"), so it must wait for
    its prediction, not be dropped as unknown."""
    X, y = numeric_data
    deployment = f"cross-{uuid.uuid4().hex[:6]}"
    answering, labelling = (serve_model(registered_model.uri,
                                        args=_store_args(postgres_cluster.url, deployment, tmp_path / name))
                            for name in ("answering", "labelling"))
    postgres_cluster.stop()
    ids = [f"cross-{i}" for i in range(5)]
    for i, request_id in enumerate(ids):
        assert _predict(answering.url, X.iloc[[i]], request_id).status_code == 200
    told = _feedback(labelling.url, [{"request_id": r, "truth": int(y.iloc[i])} for i, r in enumerate(ids)])
    assert told.status_code == 200 and {r["status"] for r in told.json()["results"]} == {"spooled"}
    answering.stop()  # its spool waits on disk: the labelling replica drains first
    postgres_cluster.start()
    time.sleep(3)  # the labelling replica has tried its spool against the store at least once
    assert _store_rows(postgres_cluster.url, "SELECT count(*) FROM workbench_feedback WHERE deployment = %s",
                       deployment) == [(0,)]
    again = serve_model(registered_model.uri, args=_store_args(postgres_cluster.url, deployment,
                                                                tmp_path / "answering"))
    _wait_for_log_state(again.url, "store")
    _wait_for_log_state(labelling.url, "store")
    feedback = dict(_store_rows(postgres_cluster.url, "SELECT request_id, count(*) FROM workbench_feedback "
                                                      "WHERE deployment = %s GROUP BY request_id", deployment))
    assert feedback == dict.fromkeys(ids, 1)


def test_a_replica_that_can_write_neither_store_nor_spool_answers_503_and_says_why(
        postgres_cluster, serve_model, registered_model, numeric_data, tmp_path) -> None:
    X, _ = numeric_data
    log_dir = tmp_path / "replica"
    (log_dir / "spool.db").mkdir(parents=True)  # the spool cannot be opened (as a full or broken disk)
    server = serve_model(registered_model.uri, args=_store_args(postgres_cluster.url, "nowhere", log_dir))
    assert _predict(server.url, X.iloc[:1], "nowhere-0").status_code == 200

    postgres_cluster.stop()
    refused = _predict(server.url, X.iloc[:1], "nowhere-1")
    assert refused.status_code == 503
    assert "spool" in refused.json()["message"] and "nothing is answered unlogged" in refused.json()["message"]
    ready = _ready(server.url)
    assert ready["status"] == 503 and ready["ready"] is False and ready["log"]["state"] == "failing"
    assert "spool" in ready["reason"] and "log store" in ready["reason"]

    postgres_cluster.start()
    _wait_for_log_state(server.url, "store")
    assert _predict(server.url, X.iloc[:1], "nowhere-2").status_code == 200
    stored = _store_rows(postgres_cluster.url, "SELECT request_id FROM workbench_predictions WHERE deployment = %s "
                                               "ORDER BY seq", "nowhere")
    assert [r[0] for r in stored] == ["nowhere-0", "nowhere-2"]  # the refused request was never answered


def test_the_embedded_log_stays_the_default(serve_model, registered_model, numeric_data) -> None:
    X, _ = numeric_data
    server = serve_model(registered_model.uri)
    assert _predict(server.url, X.iloc[:2], "embedded-0").status_code == 200
    assert read_predictions(server.log_dir).records["request_id"].tolist() == ["embedded-0"]
    assert _ready(server.url)["log"]["state"] == "sqlite"


def test_store_addresses_never_show_a_password() -> None:
    from workbench.predlog import log_store_env, log_store_source

    url = "postgresql://wb:s3cret@db.internal:5432/logs?sslmode=prefer"
    assert log_store_source(url, "churn") == "postgresql://wb@db.internal:5432/logs?sslmode=prefer&deployment=churn"
    source = StoreSource(f"{url}&deployment=churn")
    assert "s3cret" not in source.name and "s3cret" not in repr(source)
    assert source.url.deployment == "churn" and "deployment" not in source.url.dsn  # libpq never sees it
    assert log_store_env(url, "churn") == {"WORKBENCH_LOG_URL": url, "WORKBENCH_DEPLOYMENT": "churn"}
    assert "s3cret" not in repr(wb.Settings(home=Path("/tmp/x"), log_url=url))
    with pytest.raises(wb.errors.ConfigurationError, match="postgresql://"):
        wb.Settings(home=Path("/tmp/x"), log_url="mysql://wb@db/logs")


def test_feedback_through_the_router_to_replicas_of_one_store_is_kept_once(postgres_cluster, serve_model,
                                                                          registered_model, numeric_data,
                                                                          tmp_path) -> None:
    from starlette.testclient import TestClient

    from workbench.routing.router import RouteTable, create_router

    X, y = numeric_data
    deployment = f"routed-{uuid.uuid4().hex[:6]}"
    replicas = [serve_model(registered_model.uri, args=_store_args(postgres_cluster.url, deployment, tmp_path / f"r{i}"))
                for i in range(2)]
    table = RouteTable(champion=tuple(r.url for r in replicas), champion_version=registered_model.version)
    with TestClient(create_router(table, token="admin", config_path=None, allowed_origins=()),
                    base_url="http://127.0.0.1:9999") as router:

        def through_router(i: int) -> httpx.Response:
            answer = router.post("/invocations", json={"dataframe_split": X.iloc[[i]].to_dict("split")},
                                 headers={"x-request-id": f"routed-{i}"})
            assert answer.status_code == 200, answer.text
            return router.post("/v2/models/fixture-rf/feedback",
                               json={"request_id": f"routed-{i}", "truth": int(y.iloc[i])})

        told = through_router(0)  # the router sends the feedback to both replicas: the store keeps it once
        assert told.status_code == 200 and told.json()["results"][0]["status"] == "recorded", told.text
        postgres_cluster.stop()
        told = through_router(1)  # the store is away: both replicas spool it, the router says so
        assert told.status_code == 200 and told.json()["results"][0]["status"] == "spooled", told.text
    postgres_cluster.start()
    for replica in replicas:
        _wait_for_log_state(replica.url, "store")
    feedback = _store_rows(postgres_cluster.url, "SELECT request_id, count(*) FROM workbench_feedback "
                                                 "WHERE deployment = %s GROUP BY request_id ORDER BY 1", deployment)
    assert feedback == [("routed-0", 1), ("routed-1", 1)]
    predictions = _store_rows(postgres_cluster.url, "SELECT request_id, count(*) FROM workbench_predictions "
                                                    "WHERE deployment = %s GROUP BY request_id ORDER BY 1", deployment)
    assert predictions == [("routed-0", 1), ("routed-1", 1)]
