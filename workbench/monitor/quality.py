"""Data-quality checks of incoming rows against the reference profile.

Checks: the schema (columns missing or extra, values of the wrong type), categories the reference
never had, and missing-rate jumps::

    >>> report = check_quality(profile, window)
    >>> report.ok
    False
    >>> report.to_frame()
         check      feature                                          detail  severity  value
    missing_column  region            column missing from the current data     error    1.0
    new_category    plan      3 new categories (12.0% of values): 'trial'...   warning  0.12
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.monitor._report import Report
from workbench.monitor.stattests import ColumnSample, unseen_categories
from workbench.profile import CategoricalProfile, ReferenceProfile

__all__ = ["QualityIssue", "QualityReport", "check_quality"]

Check = Literal["missing_column", "extra_column", "wrong_type", "new_category", "missing_rate"]


@dataclass(frozen=True)
class QualityIssue:
    """One problem found in the current data."""

    check: Check
    #: The column concerned.
    feature: str
    #: ``error`` (the model cannot use the data as is) or ``warning``.
    severity: Literal["error", "warning"]
    detail: str
    #: A number for the issue: the share of bad values, the new missing rate, ...
    value: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"check": self.check, "feature": self.feature, "severity": self.severity,
                "detail": self.detail, "value": self.value}


@dataclass(frozen=True)
class QualityReport(Report):
    """The issues found in one batch of rows (none: the data looks like the reference's)."""

    issues: tuple[QualityIssue, ...]
    n_rows: int

    @property
    def ok(self) -> bool:
        """True when no issue was found."""
        return not self.issues

    @property
    def errors(self) -> list[QualityIssue]:
        """Issues the model cannot work around (schema violations)."""
        return [i for i in self.issues if i.severity == "error"]

    def summary(self) -> str:
        """One line: the count of issues by severity."""
        if self.ok:
            return f"no data-quality issues in {self.n_rows} rows"
        return f"{len(self.errors)} errors and {len(self.issues) - len(self.errors)} warnings in {self.n_rows} rows"

    def to_frame(self) -> pd.DataFrame:
        """One row per issue."""
        return pd.DataFrame([i.to_dict() for i in self.issues],
                            columns=["check", "feature", "severity", "detail", "value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "n_rows": self.n_rows, "issues": [i.to_dict() for i in self.issues]}

    def mlflow_metrics(self) -> dict[str, float]:
        """Issue counts."""
        return {"quality.errors": float(len(self.errors)), "quality.issues": float(len(self.issues))}


def _type_problem(kind: str, series: pd.Series, sample: ColumnSample) -> tuple[str, float] | None:
    """Why the values do not fit the reference kind, and the share that do not, if they do not."""
    present = int(series.notna().sum())
    if not present:
        return None
    dtype = series.dtype
    if kind == "numeric":
        if pd.api.types.is_bool_dtype(dtype):
            return f"expected numbers, got {dtype}", 1.0
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
            return None
        bad = present - sample.count  # present, but not a finite number once coerced
        return f"expected numbers, got {dtype}" + (f" ({bad} values are not numbers)" if bad else ""), bad / present
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.dropna().to_numpy(dtype=np.float64)
        fractional = float(np.mean(values != np.round(values))) if len(values) else 0.0
        if fractional > 0:
            return f"expected categories, got {series.dtype} numbers with fractions", fractional
    return None


def check_quality(
    reference: ReferenceProfile,
    current: pd.DataFrame,
    *,
    missing_rate_tolerance: float = 0.05,
    ignore: Sequence[str] = (),
    samples: Mapping[str, ColumnSample] | None = None,
) -> QualityReport:
    """Schema violations, new categories and missing-rate jumps of ``current`` against ``reference``.

    ``ignore`` names columns that are expected besides the features (ids, timestamps, outputs).
    A missing rate that rises by more than ``missing_rate_tolerance`` (absolute) is reported.
    ``samples`` are column summaries already made for the drift tests (saves summarising twice).
    """
    issues: list[QualityIssue] = []
    features = reference.feature_names
    for name in features:
        if name not in current.columns:
            issues.append(QualityIssue("missing_column", name, "error", "column missing from the current data", 1.0))
    known = set(features) | set(ignore) | ({reference.target} if reference.target else set())
    for name in current.columns:
        if str(name) not in known:
            issues.append(QualityIssue("extra_column", str(name), "warning",
                                       "column not in the reference profile", float("nan")))
    for name in features:
        if name not in current.columns:
            continue
        feature = reference.features[name]
        series = current[name]
        sample = (samples or {}).get(name) or ColumnSample.from_values(series, feature.kind)
        problem = _type_problem(feature.kind, series, sample)
        if problem is not None:
            issues.append(QualityIssue("wrong_type", name, "error", problem[0], problem[1]))
        if isinstance(feature, CategoricalProfile) and sample.count:
            unseen, rows = unseen_categories(feature, sample)
            if unseen and feature.other == 0:
                shown = ", ".join(repr(c) for c in unseen[:5]) + ("..." if len(unseen) > 5 else "")
                issues.append(QualityIssue(
                    "new_category", name, "warning",
                    f"{len(unseen)} new categor{'y' if len(unseen) == 1 else 'ies'} "
                    f"({rows / sample.count:.1%} of values): {shown}", rows / sample.count))
        jump = sample.missing_rate - feature.missing_rate
        if len(series) and jump > missing_rate_tolerance:
            issues.append(QualityIssue(
                "missing_rate", name, "warning",
                f"missing rate {sample.missing_rate:.1%} (reference {feature.missing_rate:.1%})",
                sample.missing_rate))
    return QualityReport(tuple(issues), len(current))
