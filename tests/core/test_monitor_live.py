"""The live monitor against real server processes, and ``workbench drift`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

import workbench as wb
from workbench.monitor import (
    Alert,
    ConfidenceBasedEstimator,
    LiveMonitor,
    NotebookAlerts,
    WebhookAlerts,
    Window,
)
from workbench.predlog import LogFolderSource, ServerSource
from workbench.profile import ReferenceProfile

MODEL_URI = "models:/fixture-rf@champion"
BIN = Path(sys.executable).parent / "workbench"


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP endpoint on the loopback that records the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    server.shutdown()
    server.server_close()


def send(url: str, rows: pd.DataFrame) -> str:
    """POST rows to /invocations; returns the request id the server gave them (what labels join on)."""
    response = httpx.post(f"{url}/invocations", json={"dataframe_records": rows.to_dict(orient="records")},
                          timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def test_the_monitor_follows_two_replicas_and_alerts_on_drift(
    registered_model, numeric_data, serve_model, webhook
) -> None:
    X, y = numeric_data
    replica_a, replica_b = serve_model(MODEL_URI), serve_model(MODEL_URI)
    hook_url, received = webhook
    seen: list[Alert] = []
    model = wb.load_model(MODEL_URI).get_raw_model()
    estimator = ConfidenceBasedEstimator(classes=model.classes_).fit(model.predict_proba(X), y)
    monitor = LiveMonitor(
        MODEL_URI,
        sources=[replica_a.url, replica_b.log_dir],   # one over HTTP, one from its log folder
        window=Window(rows=200),
        multivariate_every=0,
        estimator=estimator,
        model=model,
        alerts=[seen.append, WebhookAlerts(hook_url)],
    )
    assert isinstance(monitor.sources[0], ServerSource) and isinstance(monitor.sources[1], LogFolderSource)
    assert monitor.update() is None  # nothing logged yet

    calm = X.iloc[:200]
    calm_ids = [send(replica_a.url if i % 2 else replica_b.url, calm.iloc[20 * i:20 * (i + 1)]) for i in range(10)]
    first = monitor.update()
    assert first is not None and first.new_rows == 200 and first.n_rows == 200
    assert {s.name for s in monitor.sources} == set(monitor.cursors)
    assert monitor.cursors[replica_a.url] == 5 and monitor.cursors[str(replica_b.log_dir)] == 5
    assert not first.drift.drifted and first.quality.ok and seen == [] and received == []
    assert first.estimate is not None and first.estimate.n == 200
    assert {f.test for f in first.drift.features} == {"ks"}  # a 200-row window is a small sample
    assert set(monitor.window_rows["request_id"]) == set(calm_ids)

    shifted = X.iloc[200:400].assign(x0=lambda d: d["x0"] + 2 * X["x0"].std())
    for i in range(10):
        send(replica_a.url if i % 2 else replica_b.url, shifted.iloc[20 * i:20 * (i + 1)])
    second = monitor.update()
    assert second is not None and second.new_rows == 200
    assert second.drift.drifted_features == ["x0"]
    (alert,) = [a for a in second.alerts if a.kind == "feature_drift"]
    assert alert.feature == "x0" and alert.test == "ks" and alert.time == second.time
    assert alert.statistic == second.drift["x0"].statistic and alert.threshold == 0.05
    assert seen == list(second.alerts) == monitor.alerts
    assert [r["feature"] for r in received if r["kind"] == "feature_drift"] == ["x0"]
    assert received[0]["time"] == alert.time.isoformat()

    # Still drifted, but no new crossing: no new alert; nothing new: no report.
    send(replica_a.url, shifted.iloc[:20])
    third = monitor.update()
    assert third is not None and third.new_rows == 20 and third.alerts == ()
    assert monitor.update() is None
    assert len(monitor.history) == 3

    history = monitor.history_frame()
    x0 = history[history["feature"] == "x0"]
    assert x0["drifted"].tolist() == [False, True, True]

    # Labels arrive for the calm requests: measured accuracy of exactly those rows.
    labels = pd.DataFrame({"request_id": [calm_ids[i // 20] for i in range(200)], "label": y.iloc[:200].to_numpy()})
    assert monitor.add_labels(labels) == 200
    performance = monitor.performance(window=None)
    expected = accuracy_score(y.iloc[:200], model.predict(calm))
    assert performance.windows[-1].metrics["accuracy"] == pytest.approx(expected)


def test_time_windows_direct_rows_and_mlflow_logging(numeric_data, capsys) -> None:
    X, _ = numeric_data
    profile = ReferenceProfile.from_data(X)
    monitor = LiveMonitor(profile, window="1min", multivariate_every=2, outliers=True, alerts=[NotebookAlerts()])
    now = 1_700_000_000.0
    monitor.update(X.iloc[:300].assign(ts=now - 120))
    report = monitor.update(X.iloc[300:500].assign(ts=now))
    assert report is not None and report.n_rows == 200 and report.new_rows == 200  # older rows left the window
    assert report.window == "last 0 days 00:01:00"
    assert report.outlier_share is not None and report.expected_outlier_share == 0.01
    assert monitor.history[0].drift.multivariate is not None  # every second update runs it
    assert report.drift.multivariate is monitor.history[0].drift.multivariate  # carried forward between runs
    assert "<table" in monitor._repr_html_()
    # Outside a notebook kernel the notebook callback prints each alert.
    drifted = monitor.update(X.iloc[:200].assign(ts=now + 1, x5=lambda d: d["x5"] + 5))
    assert drifted is not None and any(a.feature == "x5" for a in drifted.alerts)
    assert "feature 'x5' drifted" in capsys.readouterr().out
    run_id = monitor.log_to_mlflow(experiment="monitor-tests")
    from workbench import _mlflow

    history = _mlflow.client().get_metric_history(run_id, "window.rows")
    assert [(m.step, m.value) for m in history] == [(0, 300.0), (1, 200.0), (2, 400.0)]


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=180)


def test_drift_cli_on_files_a_model_uri_a_server_and_a_log_folder(
    session_workspace, registered_model, numeric_data, serve_model, tmp_path
) -> None:
    X, _ = numeric_data
    home = session_workspace.home
    X.to_csv(tmp_path / "reference.csv", index=False)
    X.assign(x3=X["x3"] * 3 + 1).to_parquet(tmp_path / "current.parquet")

    result = run_cli("drift", "--reference", str(tmp_path / "reference.csv"),
                     "--current", str(tmp_path / "current.parquet"), "--json", home=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [f["feature"] for f in data["features"] if f["drifted"]] == ["x3"]
    x3 = next(f for f in data["features"] if f["feature"] == "x3")
    assert x3["test"] == "ks" and x3["p_value"] < 1e-6 and x3["threshold"] == 0.05 and x3["distance"] is None
    assert data["dataset"]["n_drifted"] == 1 and data["dataset"]["drifted"] in (True, False)
    assert data["dataset"]["multivariate"]["test"] == "domain_classifier"

    table = run_cli("drift", "--reference", MODEL_URI, "--current", str(tmp_path / "current.parquet"),
                    "--no-multivariate", home=home)
    assert table.returncode == 0, table.stderr
    x3_line = next(line for line in table.stdout.splitlines() if line.strip().startswith("x3"))
    assert "ks" in x3_line and "DRIFT" in x3_line
    assert "1 of 6 features drifted" in table.stdout

    server = serve_model(MODEL_URI)
    for i in range(5):
        send(server.url, X.iloc[40 * i:40 * (i + 1)].assign(x1=lambda d: d["x1"] - 3))
    for option, value in (("--current-url", server.url), ("--log-dir", str(server.log_dir))):
        out = run_cli("drift", "--reference", MODEL_URI, option, value, "--window", "150",
                      "--no-multivariate", "--json", home=home)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["dataset"]["n_current"] == 150
        assert [f["feature"] for f in data["features"] if f["drifted"]] == ["x1"]

    bad = run_cli("drift", "--reference", "nothing-here", "--current", str(tmp_path / "current.parquet"), home=home)
    assert bad.returncode == 1 and "neither a data file" in bad.stderr
    both = run_cli("drift", "--reference", MODEL_URI, home=home)
    assert both.returncode == 2 and "exactly one of --current" in both.stderr


def test_drift_cli_on_a_deployment(session_workspace, registered_model, numeric_data) -> None:
    X, _ = numeric_data
    dep = wb.deploy(registered_model.uri, name="drift-cli")
    try:
        for i in range(4):
            dep.predict(X.iloc[50 * i:50 * (i + 1)].assign(x2=lambda d: d["x2"] + 4))
        out = run_cli("drift", "--reference", registered_model.uri, "--deployment", "drift-cli", "--window", "150",
                      "--no-multivariate", "--json", home=session_workspace.home)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["dataset"]["n_current"] == 150
        assert [f["feature"] for f in data["features"] if f["drifted"]] == ["x2"]
        # The deployment's history over the last hour, from the summaries beside its log.
        past = run_cli("history", "drift-cli", "--since", "1h", "--every", "15min", home=session_workspace.home)
        assert past.returncode == 0, past.stderr
        assert " x2 " in past.stdout and f"deploy v{registered_model.version}" in past.stdout
        assert "last 1 h: 200 rows in " in past.stdout
    finally:
        wb.stop("drift-cli")
    missing = run_cli("drift", "--reference", registered_model.uri, "--deployment", "drift-cli",
                      home=session_workspace.home)
    assert missing.returncode == 1 and "deployment 'drift-cli' was stopped" in missing.stderr
    assert "start it again with `workbench deploy" in missing.stderr
