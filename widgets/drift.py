"""DriftMonitor: live per-feature drift of a deployment, streaming as predictions arrive.

::

    from workbench.widgets import DriftMonitor
    DriftMonitor(deployment="churn")              # updates every 2 s while shown

Underneath is a :class:`workbench.monitor.LiveMonitor` over the deployment's prediction logs (one
source per replica) and the reference profile logged with the served version. A periodic callback
starts each update on a background thread (pulling only new records and re-testing the window costs
milliseconds; the multivariate test about a second every tenth update), and the page changes in
place: the drift table with status badges, the reference vs current histogram of the selected
feature (reference bins from the profile, current counts from the window), and the alerts as they
fire.

The two charts over time open on history: :func:`workbench.drift_history` of the period picked
(the last hour, day or 7 days, or from a custom start), per period from the window summaries kept
beside the logs, so they are filled however long ago the traffic was. The drift of the feature and
of the dataset, and the performance measured on the rows whose ground truth came back
(``dep.log_feedback``), are drawn with their alerts as markers, the threshold line, and the audit
trail's deploys, updates, challengers, promotions, rollbacks and retrains as bands on the same time
axis; each update appends what arrived since.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.monitor import LiveMonitor
from workbench.profile import CategoricalProfile, NumericProfile, category_values, numeric_values
from workbench.widgets import charts, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["DriftMonitor", "histogram_shares"]

#: Categories drawn per categorical feature (the rest are pooled as "(other)").
MAX_CATEGORIES = 15
_TABLE_COLUMNS = ["feature", "status", "kind", "test", "statistic", "p_value", "threshold", "missing", "note"]

#: The period picker's choices: how far back, and the length of each point.
PERIODS: Mapping[str, tuple[str, str]] = {"hour": ("1h", "1min"), "day": ("1d", "15min"), "7 days": ("7d", "2h")}
#: Measured metrics the summaries keep (thresholds on others stay with the live window).
_HISTORY_METRICS = ("accuracy", "f1", "mae", "rmse", "r2")


@dataclass(frozen=True)
class _Snapshot:
    """What one update hands to the page."""

    deployment: Any
    report: Any
    alerts: list[Any]
    window: pd.DataFrame
    profile: Any
    history: Any
    #: The window's alert state: the one every surface shows (see LiveMonitor.verdict).
    verdict: Any = None


class DriftMonitor(ui.NotebookView, pn.viewable.Viewer):
    """Live drift of a deployment's inputs against its model's reference profile: a table with status
    badges, reference vs current histograms, drift over time, alerts as they fire."""

    deployment = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Name of the deployment watched.""")
    window = param.Integer(default=1000, bounds=(20, None), doc="""
        The latest this many prediction rows are tested against the reference.""")
    feature = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Feature whose histograms and drift over time are drawn (default: the most drifted).""")
    model_name = param.String(default=None, allow_None=True, doc="""
        Offer only deployments of this registered model.""")
    live = param.Boolean(default=True, doc="Update every ``interval`` seconds while shown.")
    interval = param.Number(default=2.0, bounds=(0.5, None), doc="Seconds between updates.")
    report = param.Parameter(default=None, constant=True, doc="""
        The latest :class:`~workbench.monitor.MonitorReport` (read only).""")
    alerts = param.List(default=[], constant=True, doc="""
        Every :class:`~workbench.monitor.Alert` raised so far, oldest first (read only).""")
    rows = param.Integer(default=0, constant=True, doc="Prediction rows in the current window (read only).")
    thresholds = param.Dict(default={}, doc="""
        Measured-metric thresholds (``{"accuracy": 0.85}``, ``{"rmse": 4.0}``): a ``performance``
        alert fires when the window's measured value decays past one (drawn on the chart).""")
    period = param.Selector(default="day", objects=[*PERIODS, "custom"], doc="""
        The history drawn over time: the last hour, day or 7 days, or from ``since`` (custom).""")
    since = param.String(default="3d", doc="""
        Start of a custom period: a time (``2026-12-01 09:00``, UTC) or a span back from now (``3d``).""")
    history = param.Parameter(default=None, constant=True, doc="""
        The :class:`~workbench.monitor.DriftHistory` drawn (read only).""")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._task = BackgroundTask()
        self._monitor: LiveMonitor | None = None
        self._monitor_key: tuple[Any, ...] = ()
        self._window = pd.DataFrame()
        self._profile: Any = None
        self._drift_history: Any = None
        #: Each version's reference profile, loaded once for the history (reset with the deployment).
        self._profiles: dict[str, Any] = {}
        self._summary = ui.markdown("Waiting for the first update...")
        # A plain HTML table: it is redrawn on every update (see ui.html_table for why not Tabulator).
        self._table = pn.pane.HTML("", sizing_mode="stretch_width")
        self._rows_shown = pd.DataFrame(columns=_TABLE_COLUMNS)
        self._histogram = charts.grouped_bars("Reference vs current", y_label="share of rows")
        self._over_time = charts.timeline("Drift over time", y_label="drift score (1 = threshold)",
                                          name="drift-history")
        self._performance = charts.timeline("Measured performance", y_label="metric", name="performance-history")
        self._performance.figure.x_range = self._over_time.figure.x_range  # zoom and pan the two together
        # Each chart shows once it has something to draw (an empty Bokeh figure is a bare frame with a
        # toolbar, and makes the browser log "could not set initial ranges" on every redraw).
        self._histogram_area = ui.ChartArea(self._histogram, "A feature's reference and current shares appear here",
                                            "once the deployment has logged predictions")
        self._over_time_area = ui.ChartArea(self._over_time, "Drift over time appears here",
                                            "once predictions are logged in the period shown")
        self._performance_area = ui.ChartArea(self._performance, "Measured performance appears here",
                                              "send ground truth with dep.log_feedback or `workbench feedback`")
        self._timeline = ui.markdown("")
        self._alerts = pn.pane.HTML("", sizing_mode="stretch_width")
        update = ui.button("Update now", lambda: self.refresh(deployments=True), disabled=self._task.param.running)
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.deployment, label="Deployment", width=220),
                pn.widgets.IntInput.from_param(self.param.window, label="Window (rows)", width=120),
                pn.widgets.Select.from_param(self.param.feature, label="Feature", width=180),
                pn.widgets.RadioButtonGroup.from_param(self.param.period, name="Period", align="end"),
                pn.widgets.TextInput.from_param(self.param.since, name="Custom start", width=150,
                                                visible=self.param.period.rx() == "custom"),
                pn.widgets.Checkbox.from_param(self.param.live, label="live", align="end"),
                update,
            ),
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            self._summary,
            self._alerts,
            pn.Row(self._table, sizing_mode="stretch_width"),
            self._timeline,
            pn.Row(self._histogram_area.panel, self._over_time_area.panel, sizing_mode="stretch_width"),
            pn.Row(self._performance_area.panel, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self._poller = pn.state.add_periodic_callback(self._poll, period=int(self.interval * 1000), start=self.live)
        self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- updating --------------------------------------------------------------------------------

    def refresh(self, deployments: bool = False) -> bool:
        """Pull what the deployment logged since the last update and test the window now (off the
        event loop); ``deployments=True`` also lists the deployments again. Returns ``False`` while
        an update is still running."""
        name, window, model_name, thresholds = self.deployment, self.window, self.model_name, dict(self.thresholds)
        since, every = _period(self.period, self.since)
        listing = deployments or not self.param.deployment.objects or not name

        def work(job: Job[_Snapshot | None]) -> _Snapshot | None:
            if listing:
                names = [d.name for d in wb.deployments() if model_name is None or d.model_name == model_name]
                job.ui(lambda: self._offer(names))
                if not name:
                    return None
            dep = wb.get_deployment(name)
            key = (dep.name, dep.model_uri, tuple(dep.log_sources), window, tuple(sorted(thresholds.items())))
            if self._monitor is None or self._monitor_key != key:
                job.update(None, f"loading the reference profile of {dep.model_uri}...", force=True)
                # As the sidebars build theirs, so the status line says what their badges say.
                self._monitor = LiveMonitor.for_deployment(dep, window=window, performance_thresholds=thresholds,
                                                           estimate_accuracy=True)
                self._monitor_key = key
            monitor = self._monitor
            job.update(None, f"reading new predictions of {name}...")
            monitor.update()
            job.update(None, f"reading the history of {name}...")
            history = wb.drift_history(dep, since=since, every=every, profiles=self._profiles,
                                       thresholds={k: v for k, v in thresholds.items() if k in _HISTORY_METRICS})
            return _Snapshot(dep, monitor.latest, monitor.alerts, monitor.window_rows, monitor.profile, history,
                             monitor.verdict())

        return self._task.start(work, self._show, message="updating drift...", exclusive=True)

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the running update is done (for scripts and tests)."""
        return self._task.wait(timeout)

    def _poll(self) -> None:
        if not self._task.running:
            self.refresh()

    @param.depends("live", "interval", watch=True)
    def _restart_polling(self) -> None:
        ui.set_polling(self._poller, self.live, self.interval)

    @param.depends("period", "since", watch=True)
    def _repick(self) -> None:
        if self.period != "custom" or self.since.strip():
            self.refresh()

    @param.depends("deployment", "window", "thresholds", watch=True)
    def _restart(self) -> None:
        self._task.cancel()
        self._monitor = None
        self._profiles = {}
        self._summary.object = "Waiting for the first update..."
        self.refresh()

    def _offer(self, names: list[str]) -> None:
        self.param.deployment.objects = names
        if self.deployment is None and names:
            self.deployment = names[0]  # starts the first update of it
        elif not names:
            self._summary.object = "No deployment to watch yet: deploy a model first."

    # -- showing ---------------------------------------------------------------------------------

    def _show(self, snapshot: _Snapshot | None) -> None:
        if snapshot is None:
            return
        report = snapshot.report
        self._window, self._profile, self._drift_history = snapshot.window, snapshot.profile, snapshot.history
        with param.edit_constant(self):
            self.param.update(report=report, alerts=list(snapshot.alerts), rows=len(snapshot.window),
                              history=snapshot.history)
        self._show_alerts(snapshot.alerts)
        self._show_timeline_note()
        self._draw_performance()
        self._draw_over_time()
        dep = snapshot.deployment
        if report is None:
            self._task.message = "no predictions logged yet"
            self._summary.object = (f"**{dep.name}** serves `{dep.model_uri}`: no predictions logged yet. "
                                    "Send requests to its URL and this view updates by itself.")
            return
        drift = report.drift
        frame = drift.to_frame()
        # The verdict the Lab sidebar and the Deployments badges show, from the same kind of monitor.
        state = snapshot.verdict
        badge = ui.badge(state.state if state.state != "ok" else "no drift or performance alert",
                         "drift" if state.alerting else "ok")
        multivariate = (f" · multivariate AUC {drift.multivariate.statistic:.3f}" if drift.multivariate else "")
        because = f" · {html.escape(state.message)}" if state.alerting else ""
        self._summary.object = (
            f"**{dep.name}** serves `{dep.model_uri}` · window: **{report.n_rows:,} rows** "
            f"({report.new_rows:,} new) · **{drift.n_drifted} of {len(drift.features)}** features drifted "
            f"{badge}{because}{multivariate} · updated {report.time:%H:%M:%S} UTC"
        )
        self._task.message = f"{report.new_rows:,} new rows tested"
        self._rows_shown = _drift_table(frame)
        features = [str(f) for f in frame["feature"]]
        self.param.feature.objects = features
        if self.feature not in features:
            most = frame.sort_values("drifted", ascending=False, kind="stable")["feature"]
            self.feature = str(most.iloc[0]) if len(most) else None
        else:
            self._show_feature()

    def _show_alerts(self, alerts: list[Any]) -> None:
        if not alerts:
            self._alerts.object = ""
            return
        items = "".join(
            f"<li><code>{a.time:%H:%M:%S}</code> {html.escape(a.message)}</li>" for a in reversed(alerts[-20:])
        )
        self._alerts.object = (
            f"<div style='border-left:4px solid {ui.BADGE_COLORS['drift']};padding:2px 10px;background:#fff5f5'>"
            f"<b>{len(alerts)} alert{'s' if len(alerts) != 1 else ''}</b> (newest first)<ul style='margin:4px 0'>"
            f"{items}</ul></div>"
        )

    @param.depends("feature", watch=True)
    def _show_feature(self) -> None:
        shown = self._rows_shown
        features = list(shown["feature"])
        self._table.object = ui.html_table(shown, html_columns=("status",),
                                           highlight=features.index(self.feature) if self.feature in features else None)
        if self._profile is None or not self.feature or self.feature not in self._profile.features:
            return
        profile = self._profile.features[self.feature]
        values = self._window[self.feature] if self.feature in self._window else pd.Series(dtype=float)
        labels, reference, current = histogram_shares(profile, values)
        x = [(label, group) for label in labels for group in ("reference", "current")]
        charts.show_data(
            self._histogram,
            {"bars": {
                "x": x,
                "value": [v for pair in zip(reference, current, strict=True) for v in pair],
                "group": ["reference", "current"] * len(labels),
                "color": [charts.REFERENCE_COLOR, charts.CURRENT_COLOR] * len(labels),
                "category": [label for label in labels for _ in (0, 1)],
            }},
            x_factors=x,
            title=f"{self.feature}: reference vs current ({len(values.dropna()):,} rows)",
        )
        self._histogram_area.show(bool(labels))
        self._draw_over_time()

    def _show_timeline_note(self) -> None:
        """One line under the alerts: what the charts over time hold, and the events in the period."""
        history = self._drift_history
        if history is None:
            self._timeline.object = ""
            return
        frame = history.frame
        span = f"{history.since:%a %d %b %H:%M} to {history.until:%a %d %b %H:%M} UTC"
        if not len(frame):
            text = f"**History** {span}: no predictions logged in this period."
        else:
            every = pd.Timedelta(seconds=history.every)
            periods = frame["start"].nunique()
            text = (f"**History** {span}: **{int(frame['rows'].sum()):,} rows** in {periods} "
                    f"period{'s' if periods != 1 else ''} of {_duration(every)}, "
                    f"version{'s' if len(history.versions) != 1 else ''} {', '.join(history.versions)} · "
                    f"{len(history.alerts)} alert{'s' if len(history.alerts) != 1 else ''}")
        if len(history.events):
            names, times = history.event_names[-6:], list(history.events["ts"])[-6:]
            shown = "; ".join(f"{name} {when:%a %H:%M}" for name, when in zip(names, times, strict=True))
            text += f" · events: {html.escape(shown)}"
        self._timeline.object = text

    def _timeline_extras(self, kinds: set[str], y: Any) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """Alert markers of ``kinds`` (placed at ``y(alert)``) and the events of the history."""
        history = self._drift_history
        every = pd.Timedelta(seconds=history.every)
        shown = [a for a in history.alerts if a.kind in kinds and (a.kind != "feature_drift" or a.feature == self.feature)]
        alerts = {"x": [_naive(a.time - every) for a in shown], "y": [y(a) for a in shown],
                  "label": [a.message for a in shown]}
        events = history.events.to_dict("records")
        return alerts, {"x": [_naive(e["ts"]) for e in events], "label": history.event_names,
                        "detail": [f"{e['action']} by {e['user']}" for e in events]}

    def _draw_over_time(self) -> None:
        history = self._drift_history
        if history is None:
            return
        features, frame = history.features, history.frame
        several = len(history.versions) > 1
        series = []
        chosen = features[features["feature"] == self.feature] if self.feature else features.iloc[0:0]
        for version, rows in chosen.groupby("version", sort=False):
            label = f"{self.feature} (v{version})" if several else str(self.feature)
            series.append((label, _starts(rows["start"]), rows["score"].to_numpy(dtype=float)))
        drift_share = history.report.drift_share if history.report is not None else 0.5
        for version, rows in frame.groupby("version", sort=False):
            label = f"dataset (v{version})" if several else "dataset (share drifted)"
            series.append((label, _starts(rows["start"]),
                           np.minimum(rows["share_drifted"].to_numpy(dtype=float) / drift_share, 10.0)))

        def where(alert: Any) -> float:
            # On the threshold line for p-value tests and the dataset; at its score for distances.
            if alert.kind == "dataset_drift" or alert.test in ("ks", "chisquare") or not alert.threshold:
                return 1.0
            return float(min(alert.statistic / alert.threshold, 10.0))

        alerts, events = self._timeline_extras({"feature_drift", "dataset_drift"}, where)
        title = (f"Drift over time: {self.feature} and the dataset (1 = drift threshold)" if self.feature
                 else "Drift over time (1 = drift threshold)")
        if not len(frame):
            title += ": no predictions logged in this period"
        charts.show_timeline(self._over_time, series, start=_naive(history.since), end=_naive(history.until),
                             alerts=alerts, events=events, title=title,
                             colors_=charts.colors(len(series)), spans={"threshold": 1.0})
        self._over_time_area.show(bool(series), "No predictions logged in this period",
                                  "choose a longer period, or send the deployment some traffic")

    def _draw_performance(self) -> None:
        history = self._drift_history
        if history is None:
            return
        frame = history.frame
        shown = [m for m in _HISTORY_METRICS if m in frame.columns and frame[m].notna().any()]
        several = len(history.versions) > 1
        series = []
        for metric in shown:
            for version, rows in frame[frame[metric].notna()].groupby("version", sort=False):
                label = f"{metric} (v{version})" if several else metric
                series.append((label, _starts(rows["start"]), rows[metric].to_numpy(dtype=float)))
        alerts, events = self._timeline_extras({"performance"}, lambda alert: alert.statistic)
        if not series:
            title = ("Measured performance: no ground truth yet (send it with dep.log_feedback or "
                     "`workbench feedback`)")
        else:
            labelled = int(frame["labelled"].sum())
            title = f"Measured performance over time ({labelled:,} labelled rows in the period)"
        limit = next((self.thresholds[m] for m in shown if m in self.thresholds), None)
        charts.show_timeline(self._performance, series, start=_naive(history.since), end=_naive(history.until),
                             alerts=alerts, events=events, title=title, spans={"threshold": limit})
        self._performance_area.show(bool(series), "No ground truth in this period yet",
                                    "send it with dep.log_feedback or `workbench feedback`; measured accuracy "
                                    "then appears here")


def _period(period: str, since: str) -> tuple[str, str]:
    """``since`` and ``every`` of a period picker's choice (a custom start gets about 100 points)."""
    if period in PERIODS:
        return PERIODS[period]
    from workbench.audit import parse_since

    start = parse_since(since.strip() or "3d")
    minutes = max(1, int(np.ceil((pd.Timestamp.now(tz="UTC") - start).total_seconds() / 60 / 100)))
    return since.strip() or "3d", f"{minutes}min"


def _naive(stamp: Any) -> np.datetime64:
    """A UTC time as Bokeh takes it (no time zone)."""
    return pd.Timestamp(stamp).tz_convert("UTC").tz_localize(None).to_datetime64()


def _starts(starts: pd.Series) -> np.ndarray:
    """Where each period's point goes: at its start, as time axes of buckets read ("the 14:00 hour")."""
    return starts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def _duration(delta: pd.Timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def histogram_shares(profile: NumericProfile | CategoricalProfile, values: pd.Series) -> tuple[list[str], list[float], list[float]]:
    """Bin labels and the share of reference and of current rows in each bin.

    Numeric features use the reference profile's bins (deciles of the training data, open at both
    ends), so the reference shares are about 0.1 each and any departure is the drift; categorical
    features use the most frequent reference categories and pool the rest (and unseen ones) as
    "(other)".
    """
    if isinstance(profile, NumericProfile):
        edges = profile.bin_edges
        current_counts, _ = np.histogram(numeric_values(values), bins=edges) if len(edges) > 1 else (np.zeros(1), None)
        labels = _bin_labels(edges)
        return labels, _shares(profile.bin_counts), _shares(current_counts)
    reference = dict(sorted(profile.categories.items(), key=lambda kv: -kv[1])[:MAX_CATEGORIES])
    pooled_reference = profile.count - sum(reference.values())
    counts = category_values(values).value_counts()
    current = [int(counts.get(c, 0)) for c in reference]
    pooled_current = int(counts.sum()) - sum(current)
    labels = [*reference]
    ref_counts, cur_counts = list(reference.values()), current
    if pooled_reference or pooled_current:
        labels.append("(other)")
        ref_counts = [*ref_counts, pooled_reference]
        cur_counts = [*cur_counts, pooled_current]
    return labels, _shares(np.asarray(ref_counts)), _shares(np.asarray(cur_counts))


def _shares(counts: Any) -> list[float]:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return (counts / total if total else counts).tolist()


def _bin_labels(edges: np.ndarray) -> list[str]:
    def fmt(value: float) -> str:
        return f"{value:.3g}"

    labels = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        if np.isneginf(low):
            labels.append(f"< {fmt(high)}")
        elif np.isposinf(high):
            labels.append(f">= {fmt(low)}")
        else:
            labels.append(f"{fmt(low)} to {fmt(high)}")
    return labels


def _scores(rows: pd.DataFrame) -> np.ndarray:
    """Each update's drift as a multiple of its threshold: statistic / threshold for distances and the
    dataset share, threshold / p-value for p-value tests (so above 1 means drifted for every test)."""
    statistic = rows["statistic"].astype(float).to_numpy()
    threshold = rows["threshold"].astype(float).to_numpy()
    p_value = pd.to_numeric(rows["p_value"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(np.isfinite(p_value), threshold / np.maximum(p_value, 1e-12), statistic / threshold)
    return np.clip(np.nan_to_num(score, nan=0.0, posinf=10.0), 0.0, 10.0)


def _drift_table(frame: pd.DataFrame) -> pd.DataFrame:
    def status(row: Mapping[str, Any]) -> str:
        if row["test"] is None or (isinstance(row["test"], float) and np.isnan(row["test"])):
            return ui.badge("untested", "muted")
        if row["drifted"]:
            return ui.badge("drift", "drift")
        if row["missing_rate_jump"]:
            return ui.badge("missing", "warn")
        return ui.badge("ok", "ok")

    def number(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.4g}"

    shown = pd.DataFrame({
        "feature": frame["feature"],
        "status": [status(row) for row in frame.to_dict(orient="records")],
        "kind": frame["kind"],
        "test": frame["test"].fillna("-"),
        "statistic": frame["statistic"].map(number),
        "p_value": frame["p_value_adjusted"].map(number),
        "threshold": frame["threshold"].map(number),
        "missing": frame["current_missing_rate"].map(lambda v: f"{v:.1%}"),
        "note": frame["note"].fillna(""),
    })
    # Drifted features first: they are what the reader is looking for.
    order = np.argsort(~frame["drifted"].to_numpy(dtype=bool), kind="stable")
    return shown.iloc[order].reset_index(drop=True)
