"""Performance: measured once labels arrive (joined by request id), estimated before they do."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, roc_auc_score

from workbench.errors import MonitoringError
from workbench.monitor import ConfidenceBasedEstimator, Window, evaluate_performance, join_labels


def logged(predicted, proba=None, rows_per_request: int = 1) -> pd.DataFrame:
    """Rows shaped like the prediction log's: request ids, timestamps, outputs."""
    n = len(predicted)
    frame = pd.DataFrame({
        "request_id": [f"req-{i // rows_per_request}" for i in range(n)],
        "ts": 1_700_000_000 + np.arange(n, dtype=float),
        "predict": predicted,
    })
    if proba is not None:
        frame["predict_proba"] = list(proba)
    return frame


def test_labels_join_by_request_and_row_and_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    proba1 = np.clip(y * 0.6 + rng.random(600) * 0.5, 0, 1)
    predicted = (proba1 > 0.5).astype(int)
    predictions = logged(predicted, np.c_[1 - proba1, proba1], rows_per_request=3)
    # Labels arrive later, requests in another order, for all but the last 60 rows; a request's rows
    # keep their order, so the row position is implicit.
    labels = pd.DataFrame({"request_id": predictions["request_id"], "label": y}).iloc[:540]
    request_order = dict(zip(labels["request_id"].unique(), rng.permutation(180)))
    labels = labels.iloc[np.argsort(labels["request_id"].map(request_order).to_numpy(), kind="stable")]
    assert labels["request_id"].iloc[0] != "req-0"
    joined = join_labels(predictions, labels)
    assert joined["label"].notna().sum() == 540 and (joined["label"].iloc[:540] == y[:540]).all()

    report = evaluate_performance(predictions, labels, window=Window(rows=180))
    assert report.task == "classification" and report.unlabelled == 60
    assert [w.n for w in report.windows] == [180, 180, 180]
    for k, w in enumerate(report.windows):
        part = slice(180 * k, 180 * (k + 1))
        assert w.metrics["accuracy"] == pytest.approx(accuracy_score(y[part], predicted[part]))
        assert w.metrics["f1"] == pytest.approx(f1_score(y[part], predicted[part]))
        assert w.metrics["auc"] == pytest.approx(roc_auc_score(y[part], proba1[part]))
        assert w.metrics["log_loss"] == pytest.approx(log_loss(y[part], np.c_[1 - proba1, proba1][part]))
    frame = report.to_frame()
    assert list(frame.columns) == ["start", "end", "n", "accuracy", "f1", "auc", "log_loss"]
    assert str(frame["start"].dt.tz) == "UTC"
    assert json.loads(report.to_json())["windows"][0]["n"] == 180


def test_explicit_row_positions_and_time_windows() -> None:
    predictions = logged([1, 0, 1, 1], rows_per_request=2)
    labels = pd.DataFrame({"request_id": ["req-0", "req-0", "req-1"], "row": [1, 0, 1], "label": [0, 1, 1]})
    joined = join_labels(predictions, labels)
    assert joined["label"].tolist()[:2] == [1, 0] and joined["label"].iloc[3] == 1 and pd.isna(joined["label"].iloc[2])
    by_time = evaluate_performance(logged(np.r_[np.ones(10), np.zeros(10)].astype(int)).assign(label=1),
                                   window="10s")
    assert [w.metrics["accuracy"] for w in by_time.windows] == [1.0, 0.0]


def test_regression_metrics() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(50, 10, 300)
    predicted = truth + rng.normal(0, 3, 300)
    report = evaluate_performance(logged(predicted).assign(label=truth))
    assert report.task == "regression"
    (window,) = report.windows
    assert window.metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert window.metrics["rmse"] == pytest.approx(np.sqrt(np.mean((truth - predicted) ** 2)))


@pytest.mark.parametrize("model", [RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0),
                                   LogisticRegression(max_iter=500)], ids=["forest", "logistic"])
def test_label_free_estimate_tracks_true_accuracy_on_held_out_data(model) -> None:
    X, y = make_classification(n_samples=12_000, n_features=10, n_informative=5, flip_y=0.08, random_state=4)
    train, calibrate, current = slice(0, 4000), slice(4000, 7000), slice(7000, None)
    model.fit(X[train], y[train])
    estimator = ConfidenceBasedEstimator(classes=model.classes_)
    with pytest.raises(MonitoringError, match="not fitted"):
        estimator.estimate(model.predict_proba(X[current]))
    estimator.fit(model.predict_proba(X[calibrate]), y[calibrate])

    estimate = estimator.estimate(model.predict_proba(X[current]))
    true_accuracy = accuracy_score(y[current], model.predict(X[current]))
    assert abs(estimate.expected_accuracy - true_accuracy) < 0.02
    assert estimate.expected_f1 == pytest.approx(f1_score(y[current], model.predict(X[current])), abs=0.03)
    assert estimate.n == 5000 and 0 < estimate.std_error < 0.01

    # Under covariate shift towards harder rows the estimate follows the true accuracy down.
    confidence = model.predict_proba(X[current]).max(axis=1)
    hard = np.argsort(confidence)[:1500]
    hard_estimate = estimator.estimate(model.predict_proba(X[current][hard]))
    hard_accuracy = accuracy_score(y[current][hard], model.predict(X[current][hard]))
    assert hard_estimate.expected_accuracy < estimate.expected_accuracy - 0.05
    assert abs(hard_estimate.expected_accuracy - hard_accuracy) < 0.05
