"""Ground truth and rewards after the answer: the feedback route of real server processes, what each
item's status says, durability under kill -9, and reading feedback back."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.predlog import read_feedback, read_predictions


@pytest.fixture(scope="module")
def server(registered_model, serve_shared):
    return serve_shared(registered_model.uri)


def _answer(url: str, rows, request_id: str | None = None) -> str:
    """Predict ``rows`` through /invocations; the request id the answer carried."""
    headers = {"x-request-id": request_id} if request_id else {}
    response = httpx.post(f"{url}/invocations", json={"dataframe_split": rows.to_dict("split")}, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def _feedback(url: str, body, name: str = "fixture-rf") -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{name}/feedback", json=body)


def test_feedback_is_recorded_corrected_and_told_apart_from_duplicates(server, numeric_data,
                                                                      registered_model) -> None:
    X, y = numeric_data
    request_id = _answer(server.url, X.iloc[:3])
    first = _feedback(server.url, [{"request_id": request_id, "row": r, "truth": int(y.iloc[r])} for r in range(3)])
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == ["recorded"] * 3
    assert first.json()["results"][0]["model_version"] == registered_model.version  # the version that answered
    assert first.json()["results"][0]["delay_s"] >= 0

    again = _feedback(server.url, {"request_id": request_id, "row": 1, "truth": int(y.iloc[1])})
    assert again.json()["results"][0]["status"] == "duplicate"
    fixed = _feedback(server.url, {"request_id": request_id, "row": 1, "truth": 1 - int(y.iloc[1])})
    assert fixed.json()["results"][0]["status"] == "corrected"
    assert f"replaces truth {int(y.iloc[1])}" in fixed.json()["results"][0]["message"]
    rewarded = _feedback(server.url, {"request_id": request_id, "row": 1, "reward": 1})
    assert rewarded.json()["results"][0]["status"] == "recorded"  # a reward added, nothing replaced

    rows = read_feedback(server.log_dir).records
    mine = rows[rows["request_id"] == request_id]
    assert len(mine) == 5  # three recorded, one correction, one reward: the history stays
    latest = mine.drop_duplicates(["request_id", "row"], keep="last").set_index("row")
    assert latest.loc[1, "truth"] == 1 - int(y.iloc[1]) and latest.loc[1, "reward"] == 1.0  # the truth kept
    # Readers over HTTP see the same, after a cursor.
    page = httpx.get(f"{server.url}/workbench/feedback", params={"since": int(mine["seq"].iloc[2])}).json()
    assert [r["request_id"] for r in page["records"]][-2:] == [request_id, request_id]


def test_a_client_chosen_request_id_and_a_v2_id_are_what_feedback_refers_to(server, numeric_data) -> None:
    X, _ = numeric_data
    assert _answer(server.url, X.iloc[:1], request_id="order-4711") == "order-4711"
    v2 = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json={
        "id": "v2-request-9", "inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [float(X[c].iloc[0])]}
                                         for c in X.columns]})
    assert v2.status_code == 200, v2.text
    answer = _feedback(server.url, [{"request_id": "order-4711", "truth": 0}, {"request_id": "v2-request-9",
                                                                                "truth": 1}])
    assert [r["status"] for r in answer.json()["results"]] == ["recorded", "recorded"]


def test_unknown_ids_rows_out_of_range_and_bad_bodies_get_clear_answers(server, numeric_data) -> None:
    X, _ = numeric_data
    request_id = _answer(server.url, X.iloc[:2])
    unknown = _feedback(server.url, {"request_id": "never-answered", "truth": 1})
    assert unknown.status_code == 404
    assert "no answer with this request id" in unknown.json()["results"][0]["message"]
    beyond = _feedback(server.url, {"request_id": request_id, "row": 2, "truth": 1})
    assert beyond.status_code == 422
    assert beyond.json()["results"][0]["message"] == "that request had 2 rows: row is 0 to 1"
    mixed = _feedback(server.url, [{"request_id": request_id, "truth": 1}, {"request_id": "nope", "truth": 0}])
    assert mixed.status_code == 200 and (mixed.json()["recorded"], mixed.json()["unknown"]) == (1, 1)
    before = len(read_feedback(server.log_dir).records)
    for body, says in [
        ({"request_id": request_id}, "give a truth"),
        ([{"request_id": request_id, "truth": 1}, {"truth": 1}], "feedback item 1 needs a request_id"),
        ({"request_id": request_id, "truth": 1, "label": 1}, "unknown keys ['label']"),
        ({"request_id": request_id, "row": -1, "truth": 1}, "row is the row's position"),
        ({"request_id": request_id, "reward": "high"}, "reward must be a number from 0 to 1"),
        ([], "empty list"),
    ]:
        response = _feedback(server.url, body)
        assert response.status_code == 400, (body, response.text)
        assert says in response.json()["error"], response.text
    assert len(read_feedback(server.log_dir).records) == before  # nothing of a bad body is kept
    wrong_model = _feedback(server.url, {"request_id": request_id, "truth": 1}, name="other-model")
    assert wrong_model.status_code == 404 and "is not served here" in wrong_model.json()["error"]
    # A web page cannot post feedback either: bodies are JSON only.
    form = httpx.post(f"{server.url}/v2/models/fixture-rf/feedback", content=b"request_id=x&truth=1",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415


def test_a_killed_server_keeps_every_acknowledged_feedback(registered_model, numeric_data, serve_model) -> None:
    """Feedback sent from 8 threads while the server is killed with SIGKILL: every item the server
    acknowledged is in the log afterwards."""
    server = serve_model(registered_model.uri)
    X, y = numeric_data
    ids = [_answer(server.url, X.iloc[[i]]) for i in range(40)]
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send(worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                item = {"request_id": ids[(worker * 7 + n) % len(ids)], "truth": worker * 100_000 + n, "reward": 1.0}
                try:
                    response = client.post(f"{server.url}/v2/models/fixture-rf/feedback", json=item)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(f"{item['request_id']}:{item['truth']}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, w) for w in range(8)]
        while len(acknowledged) < 300:
            threading.Event().wait(0.05)
        server.proc.kill()  # mid-stream, no chance to flush anything
        server.proc.wait()
        stop.set()
        for future in futures:
            future.result()
    kept = read_feedback(server.log_dir, limit=1_000_000).records
    stored = {f"{r}:{t}" for r, t in zip(kept["request_id"], kept["truth"])}
    assert len(acknowledged) >= 300
    assert set(acknowledged) <= stored
    assert len(read_predictions(server.log_dir, limit=None)) == 40


def test_truth_sent_to_a_deployment_becomes_measured_performance_and_decay_alerts(
        session_workspace, registered_model, numeric_data, tmp_path) -> None:
    """A local deployment answers 300 rows in requests of 10; the truth comes back later, some by the
    CLI from a CSV file and some from Python. The monitor measures exactly what scikit-learn measures
    on the labelled rows, and when the world changes (the truth flips) its threshold raises one alert."""
    from sklearn.metrics import accuracy_score

    from test_cli import run_cli
    from workbench.monitor import LiveMonitor

    X, y = numeric_data
    dep = wb.deploy(registered_model.uri, name="feedback-loop")
    try:
        answers = {}
        for start in range(0, 300, 10):
            answers[f"batch-{start}"] = dep.predict(X.iloc[start:start + 10], request_id=f"batch-{start}")
        monitor = LiveMonitor.for_deployment(dep, window=300, performance_thresholds={"accuracy": 0.7},
                                             min_labels=50)
        report = monitor.update()
        assert report is not None and report.performance is None  # no truth yet: nothing measured

        # The first 100 rows' truth from a file, by the CLI; rows named by their position in a request.
        first = pd.DataFrame({"request_id": [f"batch-{10 * (i // 10)}" for i in range(100)],
                              "row": [i % 10 for i in range(100)], "truth": y.iloc[:100].to_numpy()})
        first.to_csv(tmp_path / "labels.csv", index=False)
        out = run_cli("feedback", "feedback-loop", "--file", str(tmp_path / "labels.csv"), home=session_workspace.home)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "feedback-loop: 100 recorded"
        # The next 100 from Python, a request at a time (its values are its rows, in order).
        for start in range(100, 200, 10):
            sent = dep.log_feedback(f"batch-{start}", y.iloc[start:start + 10].to_numpy())
            assert sent.counts["recorded"] == 10, sent.to_frame()

        report = monitor.update()
        predicted = np.concatenate([answers[f"batch-{s}"] for s in range(0, 200, 10)])
        assert report.performance.n == 200
        assert report.performance.metrics["accuracy"] == accuracy_score(y.iloc[:200], predicted)
        assert not [a for a in report.alerts if a.kind == "performance"]

        # The world changes: the last 100 rows' truth is the opposite of what the model says.
        flipped = pd.DataFrame({"request_id": [f"batch-{200 + 10 * (i // 10)}" for i in range(100)],
                                "row": [i % 10 for i in range(100)],
                                "truth": 1 - np.concatenate([answers[f"batch-{s}"] for s in range(200, 300, 10)])})
        assert wb.log_feedback("feedback-loop", flipped).counts["recorded"] == 100
        report = monitor.update()
        assert report.performance.n == 300
        decay = [a for a in report.alerts if a.kind == "performance"]
        assert len(decay) == 1 and decay[0].test == "accuracy" and decay[0].statistic < 0.7
        assert "measured accuracy fell to" in decay[0].message
        over_time = monitor.performance(window=100).to_frame()
        assert list(over_time["n"]) == [100, 100, 100] and over_time["accuracy"].iloc[-1] == 0.0

        # Unknown ids are answered, not dropped silently; a file with nothing accepted exits 1.
        pd.DataFrame({"request_id": ["nope"], "truth": [1]}).to_csv(tmp_path / "bad.csv", index=False)
        bad = run_cli("feedback", "feedback-loop", "--file", str(tmp_path / "bad.csv"), home=session_workspace.home,
                      check=False)
        assert bad.returncode == 1 and "1 unknown" in bad.stdout and "no answer with this request id" in bad.stdout
    finally:
        wb.stop("feedback-loop")


def test_a_shadow_challenger_answers_under_the_champions_id_and_feedback_labels_both(register_versions,
                                                                                     numeric_data) -> None:
    """Requests sent without an id through the router: champion and shadow challenger log their
    answers under one id, and one feedback call labels both (each server labels its own answer)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = numeric_data
    v1, v2 = register_versions([LogisticRegression(), DecisionTreeClassifier(max_depth=2)], "feedback-shadow", "fb")
    dep = wb.deploy(v1.uri, name="feedback-shadow")
    try:
        dep = wb.start_challenger("feedback-shadow", v2.uri, shadow=True)
        ids = []
        for i in range(5):
            answer = httpx.post(f"{dep.url}/invocations", json={"dataframe_split": X.iloc[[i]].to_dict("split")})
            ids.append(answer.headers["x-request-id"])
        deadline = time.monotonic() + 30
        while len(dep.recent_rows(100)) < 10 and time.monotonic() < deadline:
            threading.Event().wait(0.2)  # the shadow copies are sent after the answers
        sent = wb.log_feedback("feedback-shadow", pd.DataFrame({"request_id": ids, "truth": y.iloc[:5].to_numpy()}))
        assert sent.counts["recorded"] == 5, sent.to_frame()
        rows = dep.labelled_rows(100).frame
        assert sorted(rows["model_version"].unique()) == sorted([v1.version, v2.version])
        for version in (v1.version, v2.version):
            mine = rows[rows["model_version"] == version]
            assert sorted(mine["request_id"]) == sorted(ids)  # the same requests, under the same ids
            assert mine.set_index("request_id").loc[ids, "truth"].tolist() == y.iloc[:5].tolist()
    finally:
        wb.stop("feedback-shadow")
