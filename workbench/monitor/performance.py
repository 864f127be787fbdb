"""Model performance in production: measured when labels arrive, estimated before they do.

Measured: labels are joined to the logged predictions by ``request_id`` (and the row's position in
its request), then accuracy / F1 / ROC AUC (classifiers) or MAE / RMSE / R² (regressors) are
computed per window::

    >>> report = evaluate_performance(predictions, labels, window=Window(rows=500))
    >>> report.to_frame()      # one row per window: start, end, rows, accuracy, f1, auc

Estimated, for classifiers, in the manner of confidence-based performance estimation (NannyML's
CBPE): on labelled held-out reference data, learn how often the model is right at each confidence
(isotonic regression of "prediction correct" on the top class probability); on unlabelled current
data the expected accuracy is the mean of those calibrated confidences. For binary classifiers the
expected F1 comes from the calibrated probability of the positive class. Calibrate on data the model
was *not* trained on: on training data a model is over-confident and the estimate too optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Self

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, MonitoringError
from workbench.monitor._report import Report
from workbench.monitor.windows import Window

__all__ = [
    "LOWER_IS_BETTER",
    "ConfidenceBasedEstimator",
    "PerformanceEstimate",
    "PerformanceReport",
    "WindowPerformance",
    "evaluate_performance",
    "join_labels",
    "probabilities",
]

Task = Literal["classification", "regression"]

#: Measured metrics where a smaller value is better (the others: larger is better).
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})


@dataclass(frozen=True)
class WindowPerformance:
    """Metrics of one window of labelled predictions."""

    #: First and last ``ts`` of the window (seconds since the epoch; NaN without timestamps).
    start: float
    end: float
    n: int
    metrics: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"start": self.start, "end": self.end, "n": self.n, **dict(self.metrics)}

    def period(self) -> str:
        """The window's first and last answer in UTC, e.g. ``2026-12-06 12:59:22 to 13:04:10 UTC``."""
        if not (np.isfinite(self.start) and np.isfinite(self.end)):
            return "no timestamps"
        start = pd.Timestamp(self.start, unit="s", tz="UTC")
        end = pd.Timestamp(self.end, unit="s", tz="UTC")
        until = f"{end:%H:%M:%S}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M:%S}"
        return f"{start:%Y-%m-%d %H:%M:%S} to {until} UTC"

    def describe(self) -> str:
        """Metrics in words: numbers to 3 decimals; a metric the window cannot measure says why."""
        return "; ".join(f"{k} {_metric_text(k, v)}" for k, v in self.metrics.items())

    def __repr__(self) -> str:
        return f"WindowPerformance({self.n:,} labelled rows, {self.period()}: {self.describe()})"

    def _repr_html_(self) -> str:
        from workbench.cards import card

        rows: list[tuple[str, object]] = [("period", self.period()), ("labelled rows", f"{self.n:,}")]
        rows += [(k, _metric_text(k, v)) for k, v in self.metrics.items()]
        return card("Measured performance", f"window of {self.n:,} labelled rows", rows=rows)


#: Why a metric of a window is missing (NaN), in words.
_UNMEASURED = {
    "auc": "not measured (needs both classes among the window's labels and the model's probabilities)",
    "log_loss": "not measured (needs the model's probabilities and labels among its classes)",
    "r2": "not measured (the labels do not vary in this window)",
}


def _metric_text(key: str, value: float) -> str:
    if value is None or not np.isfinite(value):
        return _UNMEASURED.get(key, "not measured in this window")
    return f"{value:.3f}"


@dataclass(frozen=True)
class PerformanceReport(Report):
    """Measured performance over consecutive windows."""

    task: Task
    windows: tuple[WindowPerformance, ...]
    #: Predictions that found no label (not counted in any window).
    unlabelled: int = 0

    @property
    def overall(self) -> dict[str, float]:
        """Metrics of the last window (the most recent performance)."""
        return dict(self.windows[-1].metrics) if self.windows else {}

    def summary(self) -> str:
        """One line: the latest window's metrics."""
        if not self.windows:
            return f"no labelled predictions yet ({self.unlabelled} waiting for labels)"
        latest = ", ".join(f"{k} {v:.3f}" for k, v in self.windows[-1].metrics.items())
        return f"{self.task}, {len(self.windows)} windows; latest ({self.windows[-1].n} rows): {latest}"

    def to_frame(self) -> pd.DataFrame:
        """One row per window: start and end (UTC times), rows, then each metric."""
        frame = pd.DataFrame([w.to_dict() for w in self.windows])
        if len(frame):
            for column in ("start", "end"):
                frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"task": self.task, "unlabelled": self.unlabelled, "windows": [w.to_dict() for w in self.windows]}

    def mlflow_metrics(self) -> dict[str, float]:
        """The latest window's metrics."""
        return {f"performance.{k}": v for k, v in self.overall.items()}


def join_labels(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, label_column: str = "label"
) -> pd.DataFrame:
    """``predictions`` (rows from the prediction log) with a ``label_column`` joined by request id.

    A request may hold several rows: labels match them in order, or by a ``row`` column in
    ``labels`` (the row's position within its request, from 0). Predictions without a label get NaN.
    """
    for frame, what in ((predictions, "predictions"), (labels, "labels")):
        if "request_id" not in frame.columns:
            raise InvalidInputError(f"the {what} need a request_id column to be joined")
    if label_column not in labels.columns:
        raise InvalidInputError(f"the labels have no {label_column!r} column (they have {list(labels.columns)})")
    left = predictions.assign(_row=predictions.groupby("request_id", sort=False).cumcount())
    right = labels[["request_id", label_column, *(["row"] if "row" in labels.columns else [])]]
    right = right.rename(columns={"row": "_row"}) if "row" in right.columns else right.assign(
        _row=right.groupby("request_id", sort=False).cumcount())
    right = right.drop_duplicates(["request_id", "_row"], keep="last")
    if label_column in left.columns:
        left = left.drop(columns=[label_column])
    joined = left.merge(right, on=["request_id", "_row"], how="left", sort=False)
    return joined.drop(columns=["_row"])


def _task_of(predicted: pd.Series) -> Task:
    if pd.api.types.is_float_dtype(predicted.dtype):
        values = predicted.dropna().to_numpy(dtype=np.float64)
        if len(values) and np.any(values != np.round(values)):
            return "regression"
    return "classification"


def probabilities(rows: pd.DataFrame, column: str = "predict_proba") -> np.ndarray | None:
    """The class probabilities logged with each row (one list per row) as a matrix, if every row has them."""
    if column not in rows.columns or not len(rows):
        return None
    values = rows[column].tolist()
    if any(v is None or isinstance(v, float) for v in values):  # missing for some rows
        return None
    matrix = np.asarray(values, dtype=np.float64)
    return matrix if matrix.ndim == 2 else None


def _classification_metrics(y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None,
                            classes: Sequence[Any] | None) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = np.unique(np.concatenate([y, predicted]))
    binary = len(labels) <= 2
    metrics = {"accuracy": float(accuracy_score(y, predicted))}
    if binary and len(labels) == 2:
        positive = labels[-1]
        metrics["f1"] = float(f1_score(y, predicted, pos_label=positive, average="binary"))
    else:
        metrics["f1"] = float(f1_score(y, predicted, average="macro"))
    auc = float("nan")
    if proba is not None and len(np.unique(y)) > 1:
        order = list(classes) if classes is not None else list(range(proba.shape[1]))
        try:
            if proba.shape[1] == 2:
                auc = float(roc_auc_score(y == order[1], proba[:, 1]))
            else:
                auc = float(roc_auc_score(y, proba, multi_class="ovr", labels=order))
        except ValueError:  # classes missing from the window
            auc = float("nan")
    metrics["auc"] = auc
    loss = float("nan")
    if proba is not None:
        order = list(classes) if classes is not None else list(range(proba.shape[1]))
        try:
            loss = float(log_loss(y, proba, labels=order))
        except ValueError:  # labels outside the model's classes
            loss = float("nan")
    metrics["log_loss"] = loss
    return metrics


def _regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = predicted.astype(np.float64) - y.astype(np.float64)
    total = np.sum((y - y.mean()) ** 2)
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "r2": float(1 - np.sum(error ** 2) / total) if total > 0 else float("nan"),
    }


def evaluate_performance(
    predictions: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    *,
    window: Window | int | str | None = None,
    task: Task | None = None,
    label_column: str = "label",
    prediction_column: str = "predict",
    proba_column: str = "predict_proba",
    classes: Sequence[Any] | None = None,
) -> PerformanceReport:
    """Measured performance per window of ``predictions`` (log rows) whose labels are known.

    ``labels`` (request_id, ``label_column``, optional ``row``) are joined first; without them the
    predictions must already carry ``label_column``. ``window``: rows or a duration (see
    :class:`Window`); ``None`` is one window over everything. ``task`` is guessed from the
    predictions (non-integer floats: regression). ``classes`` orders the columns of logged
    probabilities (the model's ``classes_``) for ROC AUC.
    """
    frame = join_labels(predictions, labels, label_column=label_column) if labels is not None else predictions
    if label_column not in frame.columns:
        raise InvalidInputError(f"no {label_column!r} column: pass labels=DataFrame(request_id, {label_column})")
    if prediction_column not in frame.columns:
        raise InvalidInputError(
            f"the predictions have no {prediction_column!r} column (they have {list(frame.columns)[:12]})"
        )
    labelled = frame[frame[label_column].notna()]
    unlabelled = len(frame) - len(labelled)
    task = task or _task_of(labelled[prediction_column] if len(labelled) else frame[prediction_column])
    chunks = Window.parse(window).split(labelled) if window is not None else ([labelled] if len(labelled) else [])
    results = []
    for chunk in chunks:
        y = chunk[label_column].to_numpy()
        predicted = chunk[prediction_column].to_numpy()
        if task == "classification":
            if predicted.dtype.kind == "f" and y.dtype.kind in "iub":
                predicted = predicted.astype(y.dtype)
            metrics = _classification_metrics(y, predicted, probabilities(chunk, proba_column), classes)
        else:
            metrics = _regression_metrics(y.astype(np.float64), predicted.astype(np.float64))
        ts = chunk["ts"].to_numpy(dtype=np.float64) if "ts" in chunk.columns else np.array([np.nan])
        results.append(WindowPerformance(float(np.min(ts)), float(np.max(ts)), len(chunk),
                                         MappingProxyType(metrics)))
    return PerformanceReport(task, tuple(results), unlabelled)


@dataclass(frozen=True)
class PerformanceEstimate(Report):
    """Performance of a classifier estimated without labels from its calibrated confidence."""

    n: int
    expected_accuracy: float
    #: Standard error of the expected accuracy (from the per-row calibrated confidences).
    std_error: float
    #: Expected F1 of the positive class (binary classifiers only).
    expected_f1: float | None
    #: Accuracy measured on the labelled reference data the estimator was calibrated on.
    reference_accuracy: float
    method: str = "cbpe"
    created: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))

    def summary(self) -> str:
        """One line: the estimate with its uncertainty, next to the reference accuracy."""
        return (f"estimated accuracy {self.expected_accuracy:.3f} +- {1.96 * self.std_error:.3f} over {self.n} rows "
                f"(reference {self.reference_accuracy:.3f})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"method": self.method, "n": self.n, "expected_accuracy": self.expected_accuracy,
                "std_error": self.std_error, "expected_f1": self.expected_f1,
                "reference_accuracy": self.reference_accuracy, "created": self.created.isoformat()}

    def to_frame(self) -> pd.DataFrame:
        """One row."""
        return pd.DataFrame([{k: v for k, v in self.to_dict().items() if k != "created"}])

    def mlflow_metrics(self) -> dict[str, float]:
        """Expected accuracy (and F1)."""
        out = {"estimated.accuracy": self.expected_accuracy}
        if self.expected_f1 is not None:
            out["estimated.f1"] = self.expected_f1
        return out


class ConfidenceBasedEstimator:
    """Label-free accuracy (and binary F1) estimates from calibrated confidence, scikit-learn style.

    ``fit(probabilities, labels)`` on labelled held-out reference data (class probabilities from the
    model's ``predict_proba``, columns in ``classes`` order, default the sorted labels);
    ``estimate(probabilities)`` on current data returns a :class:`PerformanceEstimate`.
    """

    def __init__(self, *, classes: Sequence[Any] | None = None) -> None:
        self.classes = classes

    def fit(self, probabilities: Any, labels: Any) -> Self:
        """Calibrate on reference probabilities and their true labels."""
        from sklearn.isotonic import IsotonicRegression

        proba = np.asarray(probabilities, dtype=np.float64)
        y = np.asarray(labels)
        if proba.ndim != 2 or proba.shape[0] != len(y) or proba.shape[1] < 2:
            raise MonitoringError(
                f"fit needs an (n, classes) probability matrix and n labels, got {proba.shape} and {len(y)}"
            )
        if len(y) < 50:
            raise MonitoringError(f"calibrating confidence needs at least 50 labelled rows, got {len(y)}")
        classes = np.asarray(self.classes) if self.classes is not None else np.unique(y)
        if len(classes) != proba.shape[1]:
            raise MonitoringError(
                f"{proba.shape[1]} probability columns but {len(classes)} classes {list(classes)[:10]}: "
                "pass classes=model.classes_"
            )
        predicted = classes[proba.argmax(axis=1)]
        correct = (predicted == y).astype(np.float64)
        self.classes_ = classes
        self.accuracy_calibrator_ = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(
            proba.max(axis=1), correct)
        self.positive_calibrator_ = None
        if len(classes) == 2:
            self.positive_calibrator_ = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(
                proba[:, 1], (y == classes[1]).astype(np.float64))
        self.reference_accuracy_ = float(correct.mean())
        return self

    def estimate(self, probabilities: Any) -> PerformanceEstimate:
        """Expected accuracy (and binary F1) of predictions with these probabilities."""
        if not hasattr(self, "accuracy_calibrator_"):
            raise MonitoringError("ConfidenceBasedEstimator is not fitted: call .fit(probabilities, labels) first")
        proba = np.asarray(probabilities, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] != len(self.classes_):
            raise MonitoringError(f"expected a probability matrix with {len(self.classes_)} columns, got {proba.shape}")
        if not len(proba):
            raise MonitoringError("no rows to estimate performance on")
        confidence = self.accuracy_calibrator_.predict(proba.max(axis=1))
        n = len(confidence)
        f1 = None
        if self.positive_calibrator_ is not None:
            positive = self.positive_calibrator_.predict(proba[:, 1])
            predicted_positive = proba.argmax(axis=1) == 1
            tp = positive[predicted_positive].sum()
            fp = (1 - positive[predicted_positive]).sum()
            fn = positive[~predicted_positive].sum()
            f1 = float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) > 0 else 0.0
        return PerformanceEstimate(
            n=n,
            expected_accuracy=float(confidence.mean()),
            std_error=float(np.sqrt(np.sum(confidence * (1 - confidence))) / n),
            expected_f1=f1,
            reference_accuracy=self.reference_accuracy_,
        )
