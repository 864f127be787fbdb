"""Drift and measured performance of a deployment over any period, from merged window summaries.

::

    import workbench as wb
    history = wb.drift_history("churn", since="7d", every="1h")
    history.frame        # one row per hour and version: rows, drifted, share drifted, accuracy, ...
    history.features     # one row per hour, version and feature: test, statistic, threshold, drifted
    history.report       # the whole week's drift of the version served last (a DriftReport)
    history.events       # deploys, updates, challengers, promotions, rollbacks, retrains in the period
    history.alerts       # where a check crossed its threshold, period by period

Every replica's log is summarised per minute (:mod:`workbench.monitor.summaries`) as this reads it
(only what was logged since the last read), so a week costs the merging of its minutes, not reading
its rows; verdicts equal the raw rows' (KS and Wasserstein within the stated ``error``). Each
version is compared with its own reference profile.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.config import get_settings
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.monitor._report import Report
from workbench.monitor.drift import DriftDetector, DriftReport, DriftSettings
from workbench.monitor.live import Alert
from workbench.monitor.performance import LOWER_IS_BETTER
from workbench.monitor.summaries import NO_VERSION, SummaryGrid, WindowSummary, summary_store
from workbench.monitor.windows import Window
from workbench.predlog import as_source
from workbench.profile import ReferenceProfile

if TYPE_CHECKING:
    from workbench.deployment import Deployment

__all__ = ["DriftHistory", "EVENT_ACTIONS", "HISTORY_COLUMNS", "drift_history", "summaries_history"]

#: Audit actions drawn on a deployment's timeline.
EVENT_ACTIONS = frozenset({"deploy", "update", "rollback", "stop", "start_challenger", "set_traffic", "promote",
                           "abort", "retrain", "gate", "set_alias"})

#: Columns of :attr:`DriftHistory.frame`, before the measured metrics.
HISTORY_COLUMNS = ("start", "end", "version", "rows", "drifted", "share_drifted", "n_drifted", "drifted_features",
                   "out_of_range", "labelled")

_FEATURE_COLUMNS = ("start", "end", "version", "feature", "kind", "test", "statistic", "p_value", "threshold",
                    "drifted", "error", "missing_rate", "score")


@dataclass(frozen=True)
class DriftHistory(Report):
    """Drift and measured performance of one deployment, period by period, with its events."""

    deployment: str
    since: pd.Timestamp
    until: pd.Timestamp
    #: Length of a period, in seconds.
    every: float
    #: One row per period and version (:data:`HISTORY_COLUMNS`, then each measured metric).
    frame: pd.DataFrame = field(repr=False)
    #: One row per period, version and feature: the test, statistic, threshold, verdict, the bound
    #: on the statistic's distance from the raw rows' (``error``) and ``score`` (1 = threshold).
    features: pd.DataFrame = field(repr=False)
    #: The whole period's drift per version (merged summaries of all its periods).
    reports: Mapping[str, DriftReport] = field(repr=False)
    #: The whole period's measured metrics per version (with ``n``, the labelled rows).
    performance: Mapping[str, Mapping[str, float]] = field(repr=False)
    #: The audit trail's events of the deployment and its model in the period (``audit_log`` columns).
    events: pd.DataFrame = field(repr=False)
    #: Threshold crossings, period by period (a check that stays crossed alerts once).
    alerts: tuple[Alert, ...] = ()
    #: Measured-metric thresholds the alerts used.
    thresholds: Mapping[str, float] = field(default_factory=dict)

    @property
    def report(self) -> DriftReport | None:
        """The whole period's drift of the version that answered last (``None``: nothing logged)."""
        if not len(self.frame):
            return None
        return self.reports.get(str(self.frame["version"].iloc[-1]))

    @property
    def event_names(self) -> list[str]:
        """Each event as a timeline names it: ``deploy v1``, ``challenger v2``, ``promote v2``."""
        return [_event_name(e) for e in self.events.to_dict("records")]

    @property
    def versions(self) -> list[str]:
        """The versions that answered in the period, in order of first answer."""
        return list(dict.fromkeys(self.frame["version"])) if len(self.frame) else []

    def summary(self) -> str:
        """One line: the period, rows, the verdict of the latest version, events and alerts."""
        rows = int(self.frame["rows"].sum()) if len(self.frame) else 0
        report = self.report
        verdict = report.summary() if report is not None else "no predictions logged in the period"
        return (f"{self.deployment}, {self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC: {rows:,} rows "
                f"in {self.frame['start'].nunique() if len(self.frame) else 0} periods; {verdict}; "
                f"{len(self.events)} events, {len(self.alerts)} alerts")

    def headline(self) -> str:
        """The period in one sentence, for a glance: rows, when drift began, how the measured
        accuracy (or RMSE) moved, and the last events."""
        frame = self.frame
        span = _span(self.until - self.since)
        if not len(frame):
            text = f"last {span}: no predictions"
        else:
            # A period drifted where a feature did (the glance's "drift"), whatever the dataset verdict.
            drifted = frame.groupby("start")["n_drifted"].max() > 0
            text = (f"last {span}: {int(frame['rows'].sum()):,} rows in {len(drifted)} "
                    f"period{'s' if len(drifted) != 1 else ''}")
            if drifted.any():
                first = drifted[drifted].index[0]
                names = frame.loc[(frame["start"] == first) & (frame["n_drifted"] > 0), "drifted_features"].iloc[0]
                text += f", drift in {int(drifted.sum())} (first {first:%a %H:%M}: {names})"
            else:
                text += ", no drift"
            metric = next((m for m in ("accuracy", "rmse") if m in frame.columns and frame[m].notna().any()), None)
            if metric is not None:
                values = frame[metric].dropna()
                text += f"; {metric} {values.iloc[0]:.3f} to {values.iloc[-1]:.3f}"
        if len(self.events):
            last = self.events.to_dict("records")[-3:]
            text += "; " + ", ".join(f"{_event_name(e)} {e['ts']:%a %H:%M}" for e in last)
        return text

    def to_frame(self) -> pd.DataFrame:
        """The per-period frame (a copy)."""
        return self.frame.copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the periods, per-feature statistics, reports, events and alerts."""
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            out = frame.copy()
            for column in out.columns:
                if isinstance(out[column].dtype, pd.DatetimeTZDtype):
                    out[column] = out[column].map(lambda t: t.isoformat())
            return out.to_dict(orient="records")

        return {
            "deployment": self.deployment, "since": self.since.isoformat(), "until": self.until.isoformat(),
            "every": self.every, "periods": records(self.frame), "features": records(self.features),
            "reports": {v: r.to_dict() for v, r in self.reports.items()},
            "performance": {v: dict(m) for v, m in self.performance.items()},
            "events": records(self.events.drop(columns=["details"], errors="ignore")),
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def mlflow_metrics(self) -> dict[str, float]:
        """The latest version's whole-period drift metrics."""
        report = self.report
        return report.mlflow_metrics() if report is not None else {}


def _span(delta: pd.Timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)  # "since 1h" ends a moment after it began: 60 min
    if minutes >= 47 * 60:
        return f"{round(minutes / 1440)} days"
    return f"{round(minutes / 60)} h" if minutes >= 60 else f"{minutes} min"


def _event_name(event: Mapping[str, Any]) -> str:
    """``promote v2``, ``deploy v1``: an audit event as a timeline names it."""
    action = str(event["action"]).replace("start_challenger", "challenger").replace("_", " ")
    version = event.get("to_version")
    return f"{action} v{version}" if version else action


def _seconds(spec: str | float | _dt.timedelta, what: str) -> float:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        seconds = float(spec)
    else:
        window = Window.parse(spec if not isinstance(spec, str) or not spec.strip().isdigit() else f"{spec}s")
        if window.seconds is None:
            raise InvalidInputError(f"{what} is a duration ('1min', '1h', '1d'), not a row count")
        seconds = window.seconds
    if seconds <= 0:
        raise InvalidInputError(f"{what} must be a positive duration, got {spec!r}")
    return seconds


def _time(value: Any, default: pd.Timestamp) -> pd.Timestamp:
    from workbench.audit import parse_since

    return default if value is None else parse_since(value)


def _score(statistic: float, p_value: float | None, threshold: float) -> float:
    """Drift as a multiple of its threshold (above 1: drifted, for every test)."""
    if p_value is not None and np.isfinite(p_value):
        return float(min(threshold / max(p_value, 1e-12), 10.0))
    if not np.isfinite(statistic) or not threshold:
        return 0.0
    return float(min(statistic / threshold, 10.0))


def drift_history(
    deployment: Deployment | str,
    since: Any = "7d",
    until: Any = None,
    *,
    every: str | float | _dt.timedelta = "1h",
    window: str | float | _dt.timedelta = "1min",
    settings: DriftSettings | None = None,
    thresholds: Mapping[str, float] | None = None,
    min_labels: int = 30,
    sources: Sequence[str] | None = None,
    reference: ReferenceProfile | None = None,
    profiles: MutableMapping[str, ReferenceProfile | None] | None = None,
) -> DriftHistory:
    """Drift and measured performance of ``deployment`` from ``since`` to ``until``, per ``every``.

    ``since`` / ``until``: a time, a date, or a span back from now (``"1h"``, ``"1d"``, ``"7d"``;
    see :func:`workbench.audit_log`); ``every``: the period of each point (``"1min"``, ``"1h"``,
    ``"1d"``); ``window``: the summaries' own window (a period is a whole number of them).
    ``thresholds`` (``{"accuracy": 0.85}``) raise ``performance`` alerts where a period with at
    least ``min_labels`` labelled rows crosses one. ``sources`` / ``reference`` replace the
    deployment's log sources and its versions' reference profiles (for logs read elsewhere);
    ``profiles`` keeps the versions' profiles between calls (a page that asks every few seconds).

    Reads only what was logged since the last call (the summaries are kept beside each log); a
    period's drift comes from its merged summaries, never from its rows.
    """
    from workbench.audit import audit_log
    from workbench.deployment import get_deployment

    dep = get_deployment(deployment) if isinstance(deployment, str) else deployment
    now = pd.Timestamp.now(tz="UTC")
    start = _time(since, now - pd.Timedelta(days=7))
    end = _time(until, now)
    if end <= start:
        raise InvalidInputError(f"until ({end}) must come after since ({start})")
    period = _seconds(every, "every")
    length = _seconds(window, "window")
    if period < length or not math.isclose(period / length, round(period / length)):
        raise InvalidInputError(f"every={every!r} must be a whole number of summary windows of {window!r}")
    limits = dict(thresholds or {})
    unknown = sorted(set(limits) - {"accuracy", "f1", "mae", "rmse", "r2"})
    if unknown:
        raise InvalidInputError(f"no metric named {unknown} is kept in the summaries: thresholds can be set on "
                                "accuracy, f1, mae, rmse, r2")
    settings = settings or DriftSettings()
    profiles = {} if profiles is None else profiles

    def profile_for(version: str) -> ReferenceProfile | None:
        if version not in profiles:
            if reference is not None:
                profiles[version] = reference
            else:
                from workbench.registry import load_profile

                uri = dep.model_uri if version in (NO_VERSION, str(dep.model_version)) else \
                    f"models:/{dep.model_name}/{version}"
                try:
                    profiles[version] = load_profile(uri)
                except WorkbenchError:  # a version deleted from the registry: its rows are left out
                    profiles[version] = None
        return profiles[version]

    home = get_settings().home
    summaries: list[WindowSummary] = []
    for name in (sources if sources is not None else dep.log_sources):
        store = summary_store(as_source(name), home, every=length)
        store.catch_up(profile_for)
        summaries += store.read(start.timestamp(), end.timestamp(), every=period)
    return summaries_history(summaries, profile_for, since=start, until=end, every=period, settings=settings,
                             thresholds=limits, min_labels=min_labels, name=dep.name,
                             events=_events(audit_log, dep, start, end))


def _events(audit_log: Any, dep: Any, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    frame = audit_log(model=dep.model_name, since=start)
    keep = frame["action"].isin(list(EVENT_ACTIONS)) & (frame["ts"] < end)
    keep &= frame["deployment"].isna() | (frame["deployment"] == dep.name)
    return frame[keep].reset_index(drop=True)


def summaries_history(summaries: Sequence[WindowSummary], profile_for: Any, *, since: pd.Timestamp,
                      until: pd.Timestamp, every: float, settings: DriftSettings | None = None,
                      thresholds: Mapping[str, float] | None = None, min_labels: int = 30, name: str = "",
                      events: pd.DataFrame | None = None) -> DriftHistory:
    """A :class:`DriftHistory` from window summaries already read (any sources, e.g. every
    replica's :meth:`SummaryStore.read`), merged into periods of ``every`` seconds; each version's
    rows are tested against ``profile_for(version)``. What :func:`drift_history` returns, for logs
    read elsewhere."""
    from workbench.audit import AUDIT_COLUMNS

    start, end, period = since, until, float(every)
    settings = settings or DriftSettings()
    limits = dict(thresholds or {})
    if events is None:
        events = pd.DataFrame(columns=list(AUDIT_COLUMNS))
    detectors: dict[str, tuple[DriftDetector, SummaryGrid]] = {}

    def detector(version: str) -> tuple[DriftDetector, SummaryGrid]:
        if version not in detectors:
            profile = profile_for(version)
            detectors[version] = (DriftDetector(settings).fit(profile), SummaryGrid.of(profile))
        return detectors[version]

    grouped: dict[tuple[float, str], list[WindowSummary]] = {}
    for summary in summaries:
        _, grid = detector(summary.version)
        if summary.grid != grid.key:  # counted on another profile of this version: not comparable
            continue
        grouped.setdefault((math.floor(summary.start / period) * period, summary.version), []).append(summary)
    groups = {key: WindowSummary.merged(parts) for key, parts in grouped.items()}
    by_version: dict[str, list[WindowSummary]] = {}
    for (_, version), merged in sorted(groups.items()):
        by_version.setdefault(version, []).append(merged)
    whole = {version: WindowSummary.merged(parts) for version, parts in by_version.items()}
    rows, feature_rows = [], []
    for (begin, version), merged in sorted(groups.items()):
        drift_detector, grid = detector(version)
        report = drift_detector.score_samples(merged.samples(grid), merged.rows)
        stamp = pd.Timestamp(begin, unit="s", tz="UTC")
        finish = pd.Timestamp(begin + period, unit="s", tz="UTC")
        out_of_range = sum(s.out_of_range() for s in merged.features.values() if s.kind == "numeric")
        metrics = merged.performance.metrics() if merged.performance is not None else {}
        rows.append({"start": stamp, "end": finish, "version": version, "rows": merged.rows,
                     "drifted": report.drifted, "share_drifted": report.share_drifted, "n_drifted": report.n_drifted,
                     "drifted_features": ", ".join(report.drifted_features), "out_of_range": out_of_range,
                     "labelled": merged.labelled, **metrics})
        for f in report.features:
            feature_rows.append({
                "start": stamp, "end": finish, "version": version, "feature": f.feature, "kind": f.kind,
                "test": f.test, "statistic": f.statistic, "p_value": f.p_value_adjusted, "threshold": f.threshold,
                "drifted": f.drifted, "error": f.error, "missing_rate": f.current_missing_rate,
                "score": _score(f.statistic, f.p_value_adjusted, f.threshold) if f.test else 0.0})
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*HISTORY_COLUMNS, *(k for r in rows for k in r)])))
    features = pd.DataFrame(feature_rows, columns=list(_FEATURE_COLUMNS))
    reports = {v: detector(v)[0].score_samples(s.samples(detector(v)[1]), s.rows) for v, s in whole.items()}
    performance = {v: MappingProxyType({**(s.performance.metrics() if s.performance else {}), "n": float(s.labelled)})
                   for v, s in whole.items()}
    alerts = _alerts(frame, features, limits, min_labels, settings.drift_share)
    return DriftHistory(name, start, end, period, frame, features, MappingProxyType(reports),
                        MappingProxyType(performance), events, tuple(alerts), MappingProxyType(limits))


def _alerts(frame: pd.DataFrame, features: pd.DataFrame, limits: Mapping[str, float],
            min_labels: int, drift_share: float) -> list[Alert]:
    """Where a check crosses its threshold from one period to the next of the same version (the
    same crossings a live monitor raises, on the periods' reports)."""
    alerts: list[Alert] = []
    feature_records = features.to_dict("records")
    by_period: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for f in feature_records:
        by_period.setdefault((f["start"], f["version"]), []).append(f)
    for version, periods in frame.groupby("version", sort=False):
        before: dict[str, bool] = {}
        drifted_before = False
        past_before: dict[str, bool] = {}
        for row in periods.to_dict("records"):
            when = row["end"]
            for f in by_period.get((row["start"], version), []):
                if f["drifted"] and not before.get(f["feature"], False):
                    alerts.append(Alert(when, "feature_drift", f["feature"], f["test"] or "", float(f["statistic"]),
                                        float(f["threshold"]), f"version {version}: feature {f['feature']!r} drifted "
                                        f"({f['test']} {f['statistic']:.3g}, threshold {f['threshold']})"))
                before[f["feature"]] = bool(f["drifted"])
            if row["drifted"] and not drifted_before:
                alerts.append(Alert(when, "dataset_drift", None, "share_drifted", float(row["share_drifted"]),
                                    drift_share, f"version {version}: dataset drift, {row['n_drifted']} features "
                                    f"drifted ({row['drifted_features']})"))
            drifted_before = bool(row["drifted"])
            for metric, limit in limits.items():
                value = row.get(metric)
                if value is None or not np.isfinite(value) or row["labelled"] < min_labels:
                    continue
                lower = metric in LOWER_IS_BETTER
                past = value > limit if lower else value < limit
                if past and not past_before.get(metric, False):
                    alerts.append(Alert(when, "performance", None, metric, float(value), float(limit),
                                        f"version {version}: measured {metric} {'rose' if lower else 'fell'} to "
                                        f"{value:.3f} on {row['labelled']} labelled rows (threshold {limit})"))
                past_before[metric] = past
    return sorted(alerts, key=lambda a: a.time)
