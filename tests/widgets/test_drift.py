"""DriftMonitor: live drift of a deployment's inputs, with histograms, history and alerts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.widgets import DriftMonitor
from workbench.widgets.drift import histogram_shares

from driving import errors_shown, shown_text


@pytest.fixture()
def deployment(registered_model) -> Iterator[wb.Deployment]:
    """A local deployment of fixture-rf for this test alone: its prediction log starts empty, whatever
    other tests (or this file's other tests, in any order) sent to theirs."""
    name = f"drift-live-{uuid.uuid4().hex[:5]}"
    deployment = wb.deploy(registered_model.uri, target="local", name=name)
    yield deployment
    wb.stop(name)


@pytest.fixture()
def monitor(deployment) -> DriftMonitor:
    """A monitor of this test's deployment, after its first update (an empty log)."""
    monitor = DriftMonitor(deployment=deployment.name, live=False)
    monitor.wait(60)
    return monitor


def _send(monitor: DriftMonitor, deployment: wb.Deployment, rows: pd.DataFrame) -> None:
    """Predict ``rows`` on the deployment and let the monitor take them in."""
    deployment.predict(rows)
    monitor.refresh()
    assert monitor.wait(60)


def test_before_any_prediction_it_says_how_to_get_some(monitor: DriftMonitor, deployment) -> None:
    assert monitor.report is None and monitor.rows == 0
    assert "no predictions logged yet" in shown_text(monitor)


def test_predictions_sent_to_the_deployment_appear_with_their_drift(monitor, deployment, numeric_data) -> None:
    X, _ = numeric_data
    _send(monitor, deployment, X.head(300))
    assert monitor.rows == 300
    shown = shown_text(monitor)
    assert "window: **300 rows** (300 new)" in shown and "0 of 6** features drifted" in shown
    for feature in X.columns:
        assert f"<td>{feature}</td>" in shown
    # The histogram of the feature shown: the profile's ten reference bins against the window.
    bars = monitor._histogram.sources["bars"].data
    reference = [v for v, g in zip(bars["value"], bars["group"], strict=True) if g == "reference"]
    current = [v for v, g in zip(bars["value"], bars["group"], strict=True) if g == "current"]
    assert len(reference) == len(current) == 10
    assert sum(reference) == pytest.approx(1.0) and sum(current) == pytest.approx(1.0)
    assert monitor.alerts == []


def test_a_shifted_feature_drifts_raises_an_alert_and_draws_its_history(monitor, deployment, numeric_data) -> None:
    X, _ = numeric_data
    _send(monitor, deployment, X.head(300))  # a window without drift first: the history's first point
    shifted = X.head(300).assign(x2=X["x2"].head(300) + 3.0)
    _send(monitor, deployment, shifted)
    assert monitor.rows == 600
    assert "x2" in monitor.report.drift.drifted_features
    assert any(a.feature == "x2" for a in monitor.alerts)
    assert "feature &#x27;x2&#x27; drifted" in shown_text(monitor)
    # The most drifted feature is drawn over the period picked, a point per period of its history,
    # with the alert's marker and the deploy on the same time axis.
    monitor.feature = "x2"
    lines = monitor._over_time.sources["lines"].data
    assert lines["label"][0] == "x2" and len(lines["xs"][0]) >= 1
    assert lines["ys"][0][-1] > 1.0  # above the threshold line
    assert any("'x2' drifted" in label for label in monitor._over_time.sources["alerts"].data["label"])
    assert f"deploy v{deployment.model_version}" in monitor._over_time.sources["events"].data["label"]
    errors = errors_shown(monitor)
    assert errors == []


def test_ground_truth_sent_back_draws_measured_performance_and_its_threshold_alert(deployment,
                                                                                    numeric_data) -> None:
    """No truth yet: the chart says how to send it. Truth that agrees, then truth that says the
    answers are wrong: the accuracy line falls below the user's threshold, which raises an alert."""
    X, _ = numeric_data
    monitor = DriftMonitor(deployment=deployment.name, live=False, thresholds={"accuracy": 0.8})
    assert monitor.wait(60)
    answers = deployment.predict(X.head(200), request_id="first")
    monitor.refresh()
    assert monitor.wait(60)
    assert "no ground truth yet" in monitor._performance.figure.title.text
    deployment.log_feedback("first", answers)  # the model was right
    monitor.refresh()
    assert monitor.wait(60)
    later = deployment.predict(X.iloc[200:400], request_id="second")
    deployment.log_feedback("second", 1 - np.asarray(later))  # then the world changed
    monitor.refresh()
    assert monitor.wait(60)
    lines = monitor._performance.sources["lines"].data
    accuracy = list(lines["ys"][lines["label"].index("accuracy")])
    assert accuracy[-1] == 0.5 and len(accuracy) <= 2  # 200 of 400 right in the period (1.0 before it)
    assert monitor._performance.spans["threshold"].location == 0.8
    assert "(400 labelled rows in the period)" in monitor._performance.figure.title.text
    assert [a.test for a in monitor.history.alerts if a.kind == "performance"] == ["accuracy"]
    assert monitor._performance.sources["alerts"].data["y"] == [0.5]  # its marker, on the point
    assert [a.test for a in monitor.alerts if a.kind == "performance"] == ["accuracy"]
    assert "measured accuracy fell to 0.500" in shown_text(monitor)
    assert errors_shown(monitor) == []


def test_a_page_opened_after_traffic_stopped_draws_its_history_with_readable_ticks(deployment,
                                                                                   numeric_data) -> None:
    """Traffic, then silence; a monitor opened later draws the drift and performance logged before
    it existed, over the period picked (a fixed time range: a single point still has ticks)."""
    X, _ = numeric_data
    answers = deployment.predict(X.head(240), request_id="before")
    deployment.log_feedback("before", answers)
    monitor = DriftMonitor(deployment=deployment.name, live=False, period="hour")
    assert monitor.wait(60)
    history = monitor.history
    assert int(history.frame["rows"].sum()) == 240 and history.every == 60
    points = monitor._over_time.sources["points"].data
    assert len(points["x"]) >= 2  # the feature and the dataset, from before the page opened
    accuracy = monitor._performance.sources["lines"].data
    assert accuracy["label"][0] == "accuracy" and list(accuracy["ys"][0]) == [1.0]
    span = monitor._over_time.figure.x_range
    assert span.end - span.start == pytest.approx(3600 * 1000, rel=0.05)  # the hour (ms), a little margin
    assert "**History**" in shown_text(monitor) and "240 rows" in shown_text(monitor)
    monitor.period = "7 days"  # the picker: a week, in two-hour points
    assert monitor.wait(60)
    assert monitor.history.every == 7200 and int(monitor.history.frame["rows"].sum()) == 240
    assert monitor._over_time.figure.x_range.end - monitor._over_time.figure.x_range.start == pytest.approx(
        7 * 86400 * 1000, rel=0.05)
    monitor.param.update(since="2d", period="custom")  # from a start of one's own: about 100 points
    assert monitor.wait(60)
    assert monitor.history.every == 29 * 60 and int(monitor.history.frame["rows"].sum()) == 240
    assert errors_shown(monitor) == []


def test_an_unknown_deployment_shows_the_error() -> None:
    monitor = DriftMonitor(deployment="no-such-deployment", live=False)
    monitor.wait(60)
    assert any("no deployment named 'no-such-deployment'" in e for e in errors_shown(monitor))


def test_numeric_histograms_use_the_profile_bins(registered_model, numeric_data) -> None:
    profile = wb.load_profile(registered_model.uri)
    X, _ = numeric_data
    labels, reference, current = histogram_shares(profile.features["x0"], X["x0"] + 100)
    assert labels[0].startswith("< ") and labels[-1].startswith(">= ")
    assert reference == pytest.approx([0.1] * 10, abs=0.01)
    assert current[-1] == pytest.approx(1.0)  # everything moved to the top bin


def test_categorical_histograms_pool_rare_and_unseen_categories() -> None:
    reference = wb.ReferenceProfile.from_data(pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + [f"r{i}" for i in range(20)]}))
    labels, ref, cur = histogram_shares(reference.features["c"], pd.Series(["a", "b", "zzz", "zzz"]))
    assert labels[:2] == ["a", "b"] and labels[-1] == "(other)"
    assert len(labels) == 16  # 15 most frequent + the pool
    assert ref[0] == pytest.approx(0.5) and cur[-1] == pytest.approx(0.5)
    assert np.isclose(sum(ref), 1.0) and np.isclose(sum(cur), 1.0)


def test_the_status_line_gives_the_verdict_the_sidebar_badges_give(deployment, numeric_data) -> None:
    """Measured accuracy fell while no feature drifted: the Drift page's status line says
    "performance", with the same sentence as the Lab sidebar's and the Deployments tab's badge
    (one verdict, from the same kind of monitor), not "0 features drifted" in green."""
    import html

    X, _ = numeric_data
    monitor = DriftMonitor(deployment=deployment.name, live=False)
    assert monitor.wait(60)
    answers = deployment.predict(X.head(200), request_id="wrong")
    deployment.log_feedback("wrong", 1 - np.asarray(answers))  # every answer was wrong
    monitor.refresh()
    assert monitor.wait(60)
    (glance,) = wb.Glances().of([deployment])
    assert glance.alerts == "performance", glance.alerts_detail
    assert glance.alerts_detail.startswith("measured accuracy 0.000 on 200 labelled rows (reference ")
    text = shown_text(monitor)
    assert ">performance</span>" in text and html.escape(glance.alerts_detail) in text
    assert "no drift or performance alert" not in text
