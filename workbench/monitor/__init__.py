"""Monitoring: drift, outliers, data quality and performance, in batches or live from deployments.

Everything compares against a model's :class:`~workbench.profile.ReferenceProfile` (logged with the
model), never against the training data itself.

- :func:`detect_drift` / :class:`DriftDetector`: per-feature drift tests (:mod:`.stattests`: KS,
  Wasserstein, PSI, chi-squared, Jensen-Shannon) and dataset-level drift (share of drifted features
  and a multivariate domain classifier), as a :class:`DriftReport`.
- :class:`OutlierDetector`: anomaly scores for incoming rows (:class:`OutlierReport`).
- :func:`check_quality`: schema violations, new categories, missing-rate jumps (:class:`QualityReport`).
- :func:`evaluate_performance` (labels joined by request id) and :class:`ConfidenceBasedEstimator`
  (label-free accuracy estimates).
- :func:`compare_versions`: a deployment's champion and challenger side by side on live traffic.
- :func:`drift_history` (:class:`DriftHistory`): drift and measured performance over any period from
  mergeable per-minute window summaries kept beside each log (:mod:`.summaries`), with the audit
  trail's events.
- :class:`LiveMonitor`: windows over prediction logs pulled from log folders or servers, history and
  alerts (:class:`NotebookAlerts`, :class:`WebhookAlerts`).

Reports are frozen dataclasses with ``to_frame()``, ``to_dict()``, ``to_json()``, a notebook table,
and ``log_to_mlflow()``.
"""

from __future__ import annotations

from workbench.monitor.compare import VersionComparison, compare_versions
from workbench.monitor.drift import (
    DriftDetector,
    DriftReport,
    DriftSettings,
    FeatureDrift,
    adjust_p_values,
    detect_drift,
)
from workbench.monitor.history import DriftHistory, drift_history, summaries_history
from workbench.monitor.live import (
    Alert,
    AlertCallback,
    AlertState,
    LiveMonitor,
    MonitorReport,
    NotebookAlerts,
    Verdict,
    WebhookAlerts,
    accuracy_estimator,
)
from workbench.monitor.multivariate import DomainClassifierTest, MultivariateDrift
from workbench.monitor.outliers import OutlierDetector, OutlierReport
from workbench.monitor.performance import (
    ConfidenceBasedEstimator,
    PerformanceEstimate,
    PerformanceReport,
    WindowPerformance,
    evaluate_performance,
    join_labels,
)
from workbench.monitor.quality import QualityIssue, QualityReport, check_quality
from workbench.monitor.stattests import (
    DRIFT_TESTS,
    BinnedSample,
    ChiSquared,
    ColumnSample,
    DriftTest,
    DriftTestResult,
    JensenShannon,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    Wasserstein,
    drift_test,
)
from workbench.monitor.summaries import PerformanceCounts, SummaryGrid, SummaryStore, WindowSummary, summarise_rows
from workbench.monitor.windows import Window

__all__ = [
    "DRIFT_TESTS",
    "Alert",
    "AlertCallback",
    "AlertState",
    "BinnedSample",
    "ChiSquared",
    "ColumnSample",
    "ConfidenceBasedEstimator",
    "DomainClassifierTest",
    "DriftDetector",
    "DriftHistory",
    "DriftReport",
    "DriftSettings",
    "DriftTest",
    "DriftTestResult",
    "FeatureDrift",
    "JensenShannon",
    "KolmogorovSmirnov",
    "LiveMonitor",
    "MonitorReport",
    "MultivariateDrift",
    "NotebookAlerts",
    "OutlierDetector",
    "OutlierReport",
    "PerformanceCounts",
    "PerformanceEstimate",
    "PerformanceReport",
    "PopulationStabilityIndex",
    "QualityIssue",
    "QualityReport",
    "SummaryGrid",
    "SummaryStore",
    "Verdict",
    "VersionComparison",
    "Wasserstein",
    "accuracy_estimator",
    "WebhookAlerts",
    "Window",
    "WindowPerformance",
    "WindowSummary",
    "adjust_p_values",
    "check_quality",
    "compare_versions",
    "detect_drift",
    "drift_history",
    "drift_test",
    "evaluate_performance",
    "join_labels",
    "summarise_rows",
    "summaries_history",
]
