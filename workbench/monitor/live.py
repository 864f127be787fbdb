"""Live monitoring of a deployment: pull its prediction log, test the latest window, raise alerts.

::

    import workbench as wb
    from workbench.monitor import LiveMonitor, Window, NotebookAlerts, WebhookAlerts

    monitor = LiveMonitor(
        "models:/churn@champion",                       # its logged reference profile
        sources=["http://127.0.0.1:8080", "/srv/replica-2/predictions"],
        window=Window(rows=5000),                       # or Window(seconds=3600)
        alerts=[NotebookAlerts(), WebhookAlerts("http://hooks.local/drift")],
    )
    report = monitor.update()        # pull what is new from every source, test the latest window
    report.performance               # measured on the window's rows whose ground truth arrived
    monitor.performance()            # per window over time, with how many labels each had
    monitor.history_frame()          # every update's per-feature statistics, for plots
    monitor.alerts                   # threshold crossings: time, feature, statistic, threshold
    monitor.start(interval=10)       # or keep updating in a background thread

Each update pulls only records after each source's cursor, appends them to the window buffer
(trimmed to the window), and re-tests the window with tests fitted once on the profile, so an update
costs milliseconds; the multivariate test (about a second) runs every ``multivariate_every`` updates.
An alert is raised when a check *crosses* its threshold (it was fine in the previous update), not
again on every update while it stays crossed.

Ground truth sent to the deployment later (``dep.log_feedback``, ``POST .../feedback``) is read from
the same sources after its own cursor and joined to the predictions it labels, so measured
performance follows as labels arrive; ``performance_thresholds`` (``{"accuracy": 0.85}``,
``{"rmse": 4.0}``) raise a ``performance`` alert when the window's measured value decays past one.
"""

from __future__ import annotations

import collections
import html
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from workbench._repeat import Repeater
from workbench.errors import InvalidInputError, MonitoringError, WorkbenchError
from workbench.monitor._report import Report
from workbench.monitor.drift import DriftDetector, DriftReport, DriftSettings, as_profile
from workbench.monitor.outliers import OutlierDetector
from workbench.monitor.performance import (
    LOWER_IS_BETTER,
    ConfidenceBasedEstimator,
    PerformanceEstimate,
    PerformanceReport,
    WindowPerformance,
    evaluate_performance,
    join_labels,
    probabilities,
)
from workbench.monitor.quality import QualityReport, check_quality
from workbench.monitor.stattests import ColumnSample
from workbench.monitor.windows import Window
from workbench.predlog import (
    META_COLUMNS,
    FeedbackSource,
    PredictionSource,
    StoreSource,
    as_source,
    is_output_column,
    log_rows,
    read_all_feedback,
)
from workbench.profile import ReferenceProfile
from workbench.serialize import jsonable

if TYPE_CHECKING:
    from workbench.deployment import Deployment

__all__ = ["Alert", "AlertCallback", "AlertState", "LiveMonitor", "MonitorReport", "NotebookAlerts", "Verdict",
           "WebhookAlerts", "accuracy_estimator"]

_log = logging.getLogger(__name__)

#: Measured metrics a performance threshold can be set on.
_METRICS = frozenset({"accuracy", "f1", "auc", "log_loss", "mae", "rmse", "r2"})

AlertKind = Literal["feature_drift", "dataset_drift", "multivariate_drift", "missing_rate", "schema",
                    "outliers", "performance", "feedback"]


@dataclass(frozen=True)
class Alert:
    """A threshold crossing: what crossed, when, by how much."""

    time: pd.Timestamp
    kind: AlertKind
    #: The feature concerned, or ``None`` for dataset-level alerts.
    feature: str | None
    #: The test or check (``wasserstein``, ``share_drifted``, ``domain_classifier``, ...).
    test: str
    statistic: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a webhook receives)."""
        return jsonable({"time": self.time.isoformat(), "kind": self.kind, "feature": self.feature,
                      "test": self.test, "statistic": self.statistic, "threshold": self.threshold,
                      "message": self.message})


#: Called once per alert, from the thread that runs the update.
AlertCallback = Callable[[Alert], None]


class NotebookAlerts:
    """Alert callback that shows each alert in the notebook cell's output (printed elsewhere)."""

    def __call__(self, alert: Alert) -> None:
        text = f"[{alert.time:%H:%M:%S}] {alert.message}"
        try:
            from IPython import get_ipython
            from IPython.display import HTML, display
        except ImportError:
            print(text)
            return
        if get_ipython() is None:
            print(text)
            return
        display(HTML(f'<div style="color:#b00020"><strong>alert</strong> {html.escape(text)}</div>'))


class WebhookAlerts:
    """Alert callback that POSTs each alert as JSON to ``url`` (failures are logged, not raised)."""

    def __init__(self, url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = dict(headers or {})
        #: Alerts that could not be delivered, with the reason.
        self.failures: list[tuple[Alert, str]] = []

    def __call__(self, alert: Alert) -> None:
        import httpx

        try:
            response = httpx.post(self.url, json=alert.to_dict(), timeout=self.timeout, headers=self.headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.failures.append((alert, str(exc)))
            _log.warning("could not deliver a drift alert to %s: %s", self.url, exc)


@dataclass(frozen=True)
class MonitorReport(Report):
    """One update of a live monitor: the window's drift, data quality, outliers and estimates."""

    time: pd.Timestamp
    #: The window definition (``last 1000 rows``) and the rows it held.
    window: str
    n_rows: int
    #: Rows that arrived with this update.
    new_rows: int
    drift: DriftReport
    quality: QualityReport
    #: Share of the new rows that are outliers, and the share expected on reference-like data.
    outlier_share: float | None = None
    expected_outlier_share: float | None = None
    estimate: PerformanceEstimate | None = None
    alerts: tuple[Alert, ...] = field(default=())
    #: Performance measured on the window's rows whose ground truth has arrived (``None``: none has).
    performance: WindowPerformance | None = None

    def summary(self) -> str:
        """One line: time, window, and each part's verdict."""
        parts = [f"{self.time:%Y-%m-%d %H:%M:%S} UTC, {self.window} ({self.n_rows} rows, {self.new_rows} new)",
                 self.drift.summary(), self.quality.summary()]
        if self.outlier_share is not None:
            parts.append(f"outliers {self.outlier_share:.3f} (expected {self.expected_outlier_share:.3f})")
        if self.estimate is not None:
            parts.append(self.estimate.summary())
        if self.performance is not None:
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in self.performance.metrics.items())
            parts.append(f"measured on {self.performance.n} labelled rows: {metrics}")
        if self.alerts:
            parts.append(f"{len(self.alerts)} new alerts")
        return "; ".join(parts)

    def to_frame(self) -> pd.DataFrame:
        """The window's per-feature drift table."""
        return self.drift.to_frame()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "time": self.time.isoformat(),
            "window": self.window,
            "n_rows": self.n_rows,
            "new_rows": self.new_rows,
            "drift": self.drift.to_dict(),
            "quality": self.quality.to_dict(),
            "outlier_share": self.outlier_share,
            "expected_outlier_share": self.expected_outlier_share,
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "performance": self.performance.to_dict() if self.performance else None,
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def mlflow_metrics(self) -> dict[str, float]:
        """Drift, quality, outlier and estimate metrics of this update."""
        metrics = {**self.drift.mlflow_metrics(), **self.quality.mlflow_metrics(), "window.rows": float(self.n_rows)}
        if self.outlier_share is not None:
            metrics["outliers.share"] = self.outlier_share
        if self.estimate is not None:
            metrics.update(self.estimate.mlflow_metrics())
        if self.performance is not None:
            metrics.update({f"performance.{k}": v for k, v in self.performance.metrics.items()})
            metrics["performance.labelled_rows"] = float(self.performance.n)
        return metrics


#: A deployment's alert state: what every surface (the Lab sidebar, the Deployments widget, the Drift
#: page's status line) shows, from one :meth:`LiveMonitor.verdict`.
AlertState = Literal["ok", "drift", "performance", "drift and performance", "no data", "unknown"]


@dataclass(frozen=True)
class Verdict:
    """A window's alert state and the sentence behind it (``"1 feature(s) drifted: x0; measured
    accuracy 0.490 on 200 labelled rows (reference 0.930) over the last 1000 predictions"``)."""

    state: AlertState
    message: str

    @property
    def alerting(self) -> bool:
        """Drift or performance (or both): a red badge."""
        return self.state in ("drift", "performance", "drift and performance")


class LiveMonitor:
    """Follows one or more prediction-log sources and tests the latest window against a reference.

    ``reference``: a :class:`ReferenceProfile`, a model URI (its logged profile) or a DataFrame.
    ``sources``: log folders, server URLs or :class:`PredictionSource` objects (one per replica), or
    one ``postgresql://...?deployment=NAME`` log store that every replica writes (read with one query
    per update, starting at the window rather than at the beginning of the log).
    ``outliers=True`` scores new rows with an :class:`OutlierDetector`; ``estimator`` (a fitted
    :class:`ConfidenceBasedEstimator`) estimates accuracy from the logged ``predict_proba``, or from
    ``model`` (an object with ``predict_proba``, e.g. ``wb.load_model(uri).get_raw_model()``) applied
    to the logged inputs when the log has no probabilities. ``performance_thresholds`` maps measured
    metrics (accuracy, f1, auc, log_loss; mae, rmse, r2) to the value past which the window's
    performance raises an alert, once at least ``min_labels`` of its rows are labelled.
    """

    def __init__(
        self,
        reference: ReferenceProfile | pd.DataFrame | str,
        sources: Sequence[PredictionSource | str | Path] = (),
        *,
        window: Window | int | str = 1000,
        settings: DriftSettings | None = None,
        multivariate_every: int = 10,
        outliers: bool = False,
        outlier_alert_factor: float = 3.0,
        estimator: ConfidenceBasedEstimator | None = None,
        model: Any = None,
        accuracy_alert_drop: float = 0.05,
        performance_thresholds: Mapping[str, float] | None = None,
        min_labels: int = 30,
        alerts: Sequence[AlertCallback] = (),
        history: int = 1000,
        page_size: int = 5000,
        keep_predictions: int = 100_000,
        feedback_alert_share: float = 0.9,
        min_feedback: int = 20,
    ) -> None:
        self.profile = as_profile(reference)
        self.sources = [as_source(s) for s in sources]
        self.window = Window.parse(window)
        self.settings = settings or DriftSettings()
        self.multivariate_every = multivariate_every
        self.outlier_alert_factor = outlier_alert_factor
        self.estimator = estimator
        self.model = model
        self.accuracy_alert_drop = accuracy_alert_drop
        self.performance_thresholds = dict(performance_thresholds or {})
        unknown = sorted(set(self.performance_thresholds) - _METRICS)
        if unknown:
            raise InvalidInputError(f"no measured metric named {unknown}: thresholds can be set on "
                                    f"{', '.join(sorted(_METRICS))}")
        self.min_labels = min_labels
        #: A ``feedback`` alert: at least ``min_feedback`` rewards in one update, more than
        #: ``feedback_alert_share`` of them for one version that gave at most half the answers.
        self.feedback_alert_share = feedback_alert_share
        self.min_feedback = min_feedback
        self.callbacks = list(alerts)
        self.page_size = page_size
        self.keep_predictions = keep_predictions
        self.detector = DriftDetector(self.settings).fit(self.profile)
        self.outlier_detector = OutlierDetector().fit(self.profile) if outliers else None
        #: Cursor per source name: the last ``seq`` read from it.
        self.cursors: dict[str, int] = {s.name: 0 for s in self.sources}
        #: Cursor per source name in its feedback (ground truth) log.
        self.feedback_cursors: dict[str, int] = {s.name: 0 for s in self.sources}
        self._history: collections.deque[MonitorReport] = collections.deque(maxlen=history)
        self._alerts: list[Alert] = []
        self._buffer = pd.DataFrame()
        self._outputs: tuple[str, ...] = ()
        self._predictions = pd.DataFrame()
        self._labelled = pd.DataFrame()
        self._updates = 0
        self._seq = 0
        self._lock = threading.RLock()
        self._repeater = Repeater(self.update, name="workbench-monitor", what="monitor update")

    @classmethod
    def for_deployment(cls, deployment: Deployment | str, *, estimate_accuracy: bool = False,
                       **options: Any) -> LiveMonitor:
        """A monitor of every log of a deployment (each replica's, and the challenger's) against the
        reference profile of the version it serves; ``options`` as for the constructor.

        ``estimate_accuracy=True``: a classifier whose profile holds labelled reference rows gets a
        label-free accuracy estimate (:class:`ConfidenceBasedEstimator`, calibrated on those rows),
        and measured accuracy is compared with the reference's, as the sidebars do."""
        from workbench.deployment import get_deployment

        dep = get_deployment(deployment) if isinstance(deployment, str) else deployment
        if estimate_accuracy and "estimator" not in options:
            options["estimator"], options["model"] = accuracy_estimator(dep.model_uri)
        return cls(dep.model_uri, dep.log_sources, **options)

    def verdict(self, report: MonitorReport | None = None) -> Verdict:
        """The alert state of ``report`` (default: the latest) and why: drift (features or the
        dataset), performance (measured accuracy below the reference's by ``accuracy_alert_drop``
        once ``min_labels`` rows are labelled, else the estimate's; a measured metric past its
        threshold), both, or ``no data``. Every surface shows this one verdict."""
        report = report if report is not None else self.latest
        if report is None:
            return Verdict("no data", "no predictions yet")
        found: list[str] = []
        estimate, measured = report.estimate, report.performance
        reference = self.estimator.reference_accuracy_ if self.estimator is not None else None
        labelled = measured is not None and measured.n >= self.min_labels
        if labelled and reference is not None and "accuracy" in measured.metrics:  # type: ignore[union-attr]
            # Ground truth has arrived for enough of the window: what was measured outranks the estimate.
            accuracy = measured.metrics["accuracy"]  # type: ignore[union-attr]
            if accuracy < reference - self.accuracy_alert_drop:
                found.append(f"measured accuracy {accuracy:.3f} on {measured.n} labelled rows "  # type: ignore[union-attr]
                             f"(reference {reference:.3f})")
        elif estimate is not None and estimate.expected_accuracy < estimate.reference_accuracy - self.accuracy_alert_drop:
            found.append(f"estimated accuracy {estimate.expected_accuracy:.3f} (reference "
                         f"{estimate.reference_accuracy:.3f})")
        if labelled and not found:
            for metric, limit in self.performance_thresholds.items():
                value = measured.metrics.get(metric)  # type: ignore[union-attr]
                if value is not None and not np.isnan(value) and (
                        value > limit if metric in LOWER_IS_BETTER else value < limit):
                    found.append(f"measured {metric} {value:.3f} on {measured.n} labelled rows "  # type: ignore[union-attr]
                                 f"(threshold {limit})")
                    break
        drifted = [f.feature for f in report.drift.features if f.drifted]
        if drifted or report.drift.dataset_drifted:
            found.insert(0, f"{len(drifted)} feature(s) drifted: " + ", ".join(drifted[:5])
                         + ("..." if len(drifted) > 5 else ""))
        span = f"over the last {report.n_rows} predictions"
        if not found:
            return Verdict("ok", f"no drift {span}")
        state: AlertState = ("drift and performance" if len(found) == 2
                             else "performance" if "drifted" not in found[0] else "drift")
        return Verdict(state, "; ".join(found) + f" {span}")

    def __repr__(self) -> str:
        return (f"LiveMonitor({len(self.profile.feature_names)} features, {len(self.sources)} sources, "
                f"{self.window}, {len(self._history)} reports, {len(self._alerts)} alerts)")

    # -- reading ---------------------------------------------------------------------------------

    def pull(self, max_rows: int = 1_000_000) -> pd.DataFrame:
        """New rows from every source since its cursor (at most ``max_rows`` per source)."""
        frames = []
        for source in self.sources:
            since = self.cursors.get(source.name, 0)
            if since == 0 and isinstance(source, StoreSource):
                # The store finds where the window starts (one query): history before it is not read,
                # nor feedback on it.
                since = source.cursor_at(self.window.rows, seconds=self.window.seconds)
                if self.feedback_cursors.get(source.name, 0) == 0:
                    self.feedback_cursors[source.name] = source.feedback_cursor_at(since)
            taken = 0
            while taken < max_rows:
                page = source.fetch(since, self.page_size)
                if not len(page):
                    break
                rows = log_rows(page.records, source=source.name)
                self._outputs = tuple(dict.fromkeys((*self._outputs, *rows.outputs)))
                frames.append(rows.frame)
                taken += len(rows)
                since = page.next_since
                self.cursors[source.name] = since
                if not page.more:  # cut by records or bytes: read on; else the end for now
                    break
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def pull_feedback(self, max_items: int = 1_000_000) -> pd.DataFrame:
        """Feedback recorded since each source's feedback cursor: the newest value of each answered
        row, with the ``source`` it came from."""
        frames = []
        for source in self.sources:
            if not isinstance(source, FeedbackSource):
                continue
            read = read_all_feedback(source, self.page_size, self.feedback_cursors.get(source.name, 0), max_items)
            self.feedback_cursors[source.name] = read.next_since
            frames.append(read.records)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # -- updating --------------------------------------------------------------------------------

    def update(self, rows: pd.DataFrame | None = None) -> MonitorReport | None:
        """Take new rows (pulled from the sources, or given), test the latest window, raise alerts.

        Returns the new report, or ``None`` when nothing new arrived.
        """
        with self._lock:
            new = self.pull() if rows is None else self._stamped(rows)
            truth = self.pull_feedback() if rows is None else pd.DataFrame()
            if len(new):
                self._append(new)
            labelled = self._add_feedback(truth) if len(truth) else 0
            suspicious = self._feedback_alerts(truth) if len(truth) else []
            if not len(self._buffer) or not (len(new) or labelled or suspicious):
                return None
            window = self._buffer
            self._updates += 1
            # Due every few updates, and on every update until it has given a result (a first
            # window too small for it must not leave the monitor without it for the next ten).
            last = self._history[-1].drift if self._history else None
            run_mv = self.multivariate_every > 0 and (
                (self._updates - 1) % self.multivariate_every == 0 or last is None or last.multivariate is None)
            samples = {
                name: ColumnSample.from_values(window[name], self.profile.features[name].kind)
                for name in self.detector.columns_ if name in window.columns
            }
            drift = self.detector.score(window, multivariate=run_mv and self.settings.multivariate, samples=samples)
            if drift.multivariate is None and last is not None and not run_mv and self.settings.multivariate:
                drift = _with_multivariate(drift, last, self.multivariate_every)
            quality = check_quality(
                self.profile, window, missing_rate_tolerance=self.settings.missing_rate_tolerance,
                ignore=(*META_COLUMNS, *self._outputs), samples=samples,
            )
            outlier_share = expected = None
            if self.outlier_detector is not None:
                scored = self.outlier_detector.score(new)
                outlier_share, expected = scored.share, scored.expected_share
            estimate = self._estimate(window)
            now = pd.Timestamp.now(tz="UTC")
            report = MonitorReport(now, str(self.window), len(window), len(new), drift, quality,
                                   outlier_share, expected, estimate, performance=self._measured(window))
            alerts = [*self._crossings(report, self._history[-1] if self._history else None), *suspicious]
            report = _replace(report, alerts=tuple(alerts))
            self._history.append(report)
            self._alerts.extend(alerts)
        for alert in alerts:
            for callback in self.callbacks:
                try:
                    callback(alert)
                except Exception as exc:  # a broken sink must not stop monitoring
                    _log.warning("alert callback %r failed: %s", callback, exc)
        return report

    def _stamped(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows given directly get the log's bookkeeping columns when they lack them."""
        if not isinstance(rows, pd.DataFrame):
            raise InvalidInputError(f"rows must be a DataFrame, not {type(rows).__name__}")
        extra: dict[str, Any] = {}
        if "ts" not in rows.columns:
            extra["ts"] = time.time()
        if "seq" not in rows.columns:
            extra["seq"] = np.arange(self._seq + 1, self._seq + len(rows) + 1)
            self._seq += len(rows)
        if "source" not in rows.columns:
            extra["source"] = "direct"
        outputs = [c for c in rows.columns if is_output_column(c)]
        self._outputs = tuple(dict.fromkeys((*self._outputs, *outputs)))
        return rows.assign(**extra) if extra else rows

    def _append(self, new: pd.DataFrame) -> None:
        buffer = pd.concat([self._buffer, new], ignore_index=True) if len(self._buffer) else new.reset_index(drop=True)
        start = self.window.start_of_latest(buffer["ts"].to_numpy(dtype=np.float64)) if "ts" in buffer else 0
        self._buffer = buffer.iloc[start:].reset_index(drop=True) if start else buffer
        if "request_id" in new.columns:
            kept = [c for c in ("request_id", "ts", "seq", "source", *self._outputs) if c in new.columns]
            # The row's position in its request tells apart the rows of one multi-row request.
            fresh = new[kept].assign(_row_in_request=new.groupby(["source", "seq"], sort=False).cumcount())
            predictions = pd.concat([self._predictions, fresh], ignore_index=True) if len(self._predictions) else fresh
            self._predictions = predictions.iloc[-self.keep_predictions:].reset_index(drop=True)

    def _estimate(self, window: pd.DataFrame) -> PerformanceEstimate | None:
        if self.estimator is None:
            return None
        proba = probabilities(window)
        if proba is None and self.model is not None:
            features = [c for c in self.profile.feature_names if c in window.columns]
            try:
                proba = np.asarray(self.model.predict_proba(window[features]))
            except Exception as exc:
                raise MonitoringError(f"the model could not give probabilities for the window: {exc}") from exc
        return self.estimator.estimate(proba) if proba is not None else None

    def _add_feedback(self, feedback: pd.DataFrame) -> int:
        """Join feedback's truths to the kept predictions they label (by log, record and row: a
        request id a client reused names two answers); how many got one."""
        truths = feedback[feedback["truth"].notna()] if len(feedback) else feedback
        if not len(truths) or not len(self._predictions):
            return 0
        labels = pd.DataFrame({"source": truths["source"].to_numpy(),
                               "seq": truths["prediction_seq"].to_numpy(dtype=np.int64),
                               "_row_in_request": truths["row"].to_numpy(dtype=np.int64),
                               "label": pd.Series(truths["truth"].tolist()).infer_objects().to_numpy()})
        found = self._predictions.drop(columns=["label"], errors="ignore").merge(
            labels, on=["source", "seq", "_row_in_request"], how="inner", sort=False)
        return self._keep_labelled(found)

    def _keep_labelled(self, found: pd.DataFrame) -> int:
        """Add newly labelled predictions to those kept (a row's newest label wins, the newest
        ``keep_predictions`` stay); how many were added."""
        labelled = pd.concat([self._labelled, found], ignore_index=True) if len(self._labelled) else found
        self._labelled = labelled.drop_duplicates(["source", "seq", "_row_in_request"], keep="last").sort_values(
            "seq", kind="stable").iloc[-self.keep_predictions:].reset_index(drop=True)
        return len(found)

    def _measured(self, window: pd.DataFrame) -> WindowPerformance | None:
        """Performance on the labelled rows of the current window."""
        labelled = self._labelled
        if not len(labelled) or "ts" not in window.columns or not len(window):
            return None
        inside = labelled[labelled["ts"] >= float(window["ts"].min())]
        if not len(inside) or "predict" not in inside.columns:
            return None
        report = evaluate_performance(inside)
        return report.windows[-1] if report.windows else None

    def _feedback_alerts(self, feedback: pd.DataFrame) -> list[Alert]:
        """Feedback that does not look like the traffic (someone steering a bandit with forged
        rewards): many rewards at once, nearly all for a version that gave at most half of the
        answers in the window."""
        if "reward" not in feedback.columns or "model_version" not in feedback.columns:
            return []
        rewards = feedback[feedback["reward"].notna()]
        if len(rewards) < self.min_feedback or "model_version" not in self._buffer.columns:
            return []
        answers = self._buffer["model_version"].astype(str).value_counts(normalize=True)
        shares = rewards["model_version"].astype(str).value_counts(normalize=True)
        alerts = []
        for version, share in shares.items():
            answered = float(answers.get(version, 0.0))
            if share > self.feedback_alert_share and answered <= 0.5:
                alerts.append(Alert(
                    pd.Timestamp.now(tz="UTC"), "feedback", None, "reward_share", float(share),
                    self.feedback_alert_share,
                    f"{share:.0%} of {len(rewards)} rewards just received are for version {version}, which gave "
                    f"{answered:.0%} of the answers: feedback that does not look like the traffic (forged "
                    "rewards steering the bandit?); check who sends it, and give feedback writes the "
                    "deployment's feedback token"))
        return alerts

    def _crossings(self, report: MonitorReport, previous: MonitorReport | None) -> list[Alert]:
        now = report.time
        alerts: list[Alert] = []
        before = {f.feature: f for f in previous.drift.features} if previous else {}
        for f in report.drift.features:
            old = before.get(f.feature)
            if f.drifted and not (old and old.drifted):
                shown = f"p={f.p_value_adjusted:.3g}" if f.p_value_adjusted is not None else f"{f.statistic:.3f}"
                alerts.append(Alert(now, "feature_drift", f.feature, f.test or "", f.statistic, f.threshold,
                                    f"feature {f.feature!r} drifted: {f.test} {shown} (threshold {f.threshold})"))
            if f.missing_rate_jump and not (old and old.missing_rate_jump):
                alerts.append(Alert(now, "missing_rate", f.feature, "missing_rate", f.current_missing_rate,
                                    f.reference_missing_rate + self.settings.missing_rate_tolerance,
                                    f"feature {f.feature!r} is missing in {f.current_missing_rate:.1%} of rows "
                                    f"(reference {f.reference_missing_rate:.1%})"))
        drift = report.drift
        if drift.dataset_drifted and not (previous and previous.drift.dataset_drifted):
            alerts.append(Alert(now, "dataset_drift", None, "share_drifted", drift.share_drifted, drift.drift_share,
                                f"dataset drift: {drift.n_drifted} features drifted (share "
                                f"{drift.share_drifted:.2f} >= {drift.drift_share:.2f})"))
        mv, old_mv = drift.multivariate, previous.drift.multivariate if previous else None
        if mv is not None and mv.drifted and not (old_mv and old_mv.drifted):
            alerts.append(Alert(now, "multivariate_drift", None, mv.test, mv.statistic, mv.threshold,
                                f"multivariate drift: a classifier tells the window from the reference with "
                                f"AUC {mv.statistic:.3f} (p={mv.p_value:.2g})"))
        old_errors = {(i.check, i.feature) for i in previous.quality.errors} if previous else set()
        for issue in report.quality.errors:
            if (issue.check, issue.feature) not in old_errors:
                alerts.append(Alert(now, "schema", issue.feature, issue.check, issue.value, float("nan"),
                                    f"schema: {issue.feature!r} {issue.detail}"))
        if report.outlier_share is not None and report.expected_outlier_share is not None:
            limit = report.expected_outlier_share * self.outlier_alert_factor
            was = previous is not None and previous.outlier_share is not None and previous.outlier_share > limit
            if report.outlier_share > limit and not was:
                alerts.append(Alert(now, "outliers", None, "outlier_share", report.outlier_share, limit,
                                    f"{report.outlier_share:.1%} of new rows are outliers (expected "
                                    f"{report.expected_outlier_share:.1%})"))
        measured, before_measured = report.performance, previous.performance if previous else None
        if measured is not None and measured.n >= self.min_labels:
            for metric, limit in self.performance_thresholds.items():
                value = measured.metrics.get(metric)
                if value is None or np.isnan(value):
                    continue
                lower = metric in LOWER_IS_BETTER
                past = value > limit if lower else value < limit
                prior = before_measured.metrics.get(metric) if before_measured is not None else None
                was = (prior is not None and before_measured is not None and before_measured.n >= self.min_labels
                       and (prior > limit if lower else prior < limit))
                if past and not was:
                    alerts.append(Alert(now, "performance", None, metric, value, limit,
                                        f"measured {metric} {'rose' if lower else 'fell'} to {value:.3f} on "
                                        f"{measured.n} labelled rows (threshold {limit})"))
        if report.estimate is not None:
            limit = report.estimate.reference_accuracy - self.accuracy_alert_drop
            was = (previous is not None and previous.estimate is not None
                   and previous.estimate.expected_accuracy < limit)
            if report.estimate.expected_accuracy < limit and not was:
                alerts.append(Alert(now, "performance", None, "estimated_accuracy",
                                    report.estimate.expected_accuracy, limit,
                                    f"estimated accuracy fell to {report.estimate.expected_accuracy:.3f} "
                                    f"(reference {report.estimate.reference_accuracy:.3f})"))
        return alerts

    # -- labels and performance ------------------------------------------------------------------

    def add_labels(self, labels: pd.DataFrame, *, label_column: str = "label") -> int:
        """Join true labels (request_id, ``label_column``, optional ``row``) to the logged predictions
        kept so far; returns how many predictions got a label."""
        with self._lock:
            if not len(self._predictions):
                return 0
            joined = join_labels(self._predictions, labels, label_column=label_column)
            found = joined[joined[label_column].notna()]
            if label_column != "label":
                found = found.rename(columns={label_column: "label"})
            return self._keep_labelled(found)

    def performance(self, window: Window | int | str | None = None, **kwargs: Any) -> PerformanceReport:
        """Measured performance of the labelled predictions, per window (default: the monitor's)."""
        with self._lock:
            labelled = self._labelled
        if not len(labelled):
            return PerformanceReport("classification", (), len(self._predictions))
        return evaluate_performance(labelled, window=window if window is not None else self.window, **kwargs)

    # -- history ---------------------------------------------------------------------------------

    @property
    def history(self) -> list[MonitorReport]:
        """Every report kept (oldest first)."""
        with self._lock:
            return list(self._history)

    @property
    def alerts(self) -> list[Alert]:
        """Every alert raised so far (oldest first)."""
        with self._lock:
            return list(self._alerts)

    @property
    def latest(self) -> MonitorReport | None:
        """The newest report, if any."""
        with self._lock:
            return self._history[-1] if self._history else None

    @property
    def window_rows(self) -> pd.DataFrame:
        """The rows of the current window (inputs, outputs and log columns)."""
        with self._lock:
            return self._buffer.copy()

    def history_frame(self) -> pd.DataFrame:
        """One row per (update, feature): time, test, statistic, adjusted p-value, threshold, drifted;
        plus a ``__dataset__`` row per update with the share of drifted features."""
        rows = []
        for report in self.history:
            for f in report.drift.features:
                rows.append({"time": report.time, "feature": f.feature, "test": f.test, "statistic": f.statistic,
                             "p_value": f.p_value_adjusted, "threshold": f.threshold, "drifted": f.drifted})
            rows.append({"time": report.time, "feature": "__dataset__", "test": "share_drifted",
                         "statistic": report.drift.share_drifted, "p_value": None,
                         "threshold": report.drift.drift_share, "drifted": report.drift.drifted})
        return pd.DataFrame(rows, columns=["time", "feature", "test", "statistic", "p_value", "threshold", "drifted"])

    def performance_frame(self) -> pd.DataFrame:
        """One row per update whose window had labelled rows: time, labelled rows (``n``) and each
        measured metric; beside it ``estimated_accuracy`` where an estimator ran."""
        rows = []
        for report in self.history:
            row: dict[str, Any] = {"time": report.time}
            if report.performance is not None:
                row.update({"n": report.performance.n, **dict(report.performance.metrics)})
            if report.estimate is not None:
                row["estimated_accuracy"] = report.estimate.expected_accuracy
            if len(row) > 1:
                rows.append(row)
        return pd.DataFrame(rows)

    def alerts_frame(self) -> pd.DataFrame:
        """Every alert as a row."""
        return pd.DataFrame([a.to_dict() for a in self.alerts],
                            columns=["time", "kind", "feature", "test", "statistic", "threshold", "message"])

    def _repr_html_(self) -> str:
        latest = self.latest
        head = html.escape(repr(self))
        return f"<div><strong>{head}</strong>{latest._repr_html_() if latest else ''}</div>"

    def log_to_mlflow(self, run_id: str | None = None, *, experiment: str = "monitoring") -> str:
        """Log every kept update's metrics (step = update number) and the latest report; returns the run id."""
        reports = self.history
        if not reports:
            raise MonitoringError("the monitor has no reports yet: call update() first")
        for step, report in enumerate(reports):
            run_id = report.log_to_mlflow(run_id, experiment=experiment, step=step,
                                          artifact_file="monitoring/latest.json")
        assert run_id is not None
        return run_id

    # -- background updates ----------------------------------------------------------------------

    def start(self, interval: float = 10.0) -> None:
        """Update every ``interval`` seconds in a background thread until :meth:`stop`."""
        self._repeater.start(interval)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop background updates (waits for a running update to finish)."""
        self._repeater.stop(timeout)

def _replace(report: MonitorReport, **changes: Any) -> MonitorReport:
    import dataclasses

    return dataclasses.replace(report, **changes)


def _with_multivariate(drift: DriftReport, previous: DriftReport, every: int) -> DriftReport:
    """Carry the last multivariate result forward on updates that do not re-run it, saying so."""
    import dataclasses

    if previous.multivariate is None:
        return drift
    ran = previous.created.isoformat(timespec="seconds") if not previous.multivariate_note else None
    note = previous.multivariate_note or (f"result from the window of {ran} (it runs every {every} updates)")
    return dataclasses.replace(drift, multivariate=previous.multivariate, multivariate_note=note)


def accuracy_estimator(model_uri: str) -> tuple[ConfidenceBasedEstimator | None, Any]:
    """A label-free accuracy estimator for a classifier, calibrated on its reference sample (whose
    labels were logged with it), and the model that gives the window's probabilities; ``(None,
    None)`` for a regressor, a model without ``predict_proba`` or a profile without labels."""
    from workbench.registry import load_model, load_profile

    try:
        profile = load_profile(model_uri)
        if not profile.target or profile.target not in profile.sample.columns:
            return None, None
        model = load_model(model_uri).get_raw_model()
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            return None, None
        sample = profile.sample.dropna(subset=[profile.target])
        features = sample[[c for c in profile.feature_names if c in sample.columns]]
        estimator = ConfidenceBasedEstimator(classes=list(model.classes_)).fit(
            model.predict_proba(features), sample[profile.target])
        return estimator, model
    except (WorkbenchError, AttributeError, ValueError, TypeError):
        return None, None  # no estimate: drift only
