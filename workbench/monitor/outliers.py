"""Outlier scores for incoming rows: how unlike the reference each row is.

An isolation forest is fitted on the reference profile's bounded sample (numeric features
standardised, categories replaced by their reference frequency, so rare and never-seen categories
stand out). A row's score is its isolation-forest anomaly score (about 0.5 for ordinary rows, towards
1 for rows isolated quickly); the threshold is the score that ``contamination`` of the reference
sample exceeds, so on data like the reference about that share of rows is flagged::

    >>> detector = OutlierDetector(contamination=0.01).fit(profile)
    >>> report = detector.score(window)
    >>> report.share, report.expected_share
    (0.012, 0.01)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd

from workbench.errors import MonitoringError
from workbench.monitor._encoding import FeatureEncoder
from workbench.monitor._report import Report
from workbench.profile import ReferenceProfile

__all__ = ["OutlierDetector", "OutlierReport"]


@dataclass(frozen=True)
class OutlierReport(Report):
    """Outlier scores of a batch of rows."""

    #: One anomaly score per row, in the order given (higher: more unusual).
    scores: np.ndarray = field(repr=False)
    #: Rows scoring at or above it are outliers.
    threshold: float
    #: The share of reference rows above the threshold (the detector's ``contamination``).
    expected_share: float
    index: pd.Index = field(repr=False, default_factory=lambda: pd.RangeIndex(0))

    @property
    def is_outlier(self) -> np.ndarray:
        """Boolean mask of the outlying rows."""
        return self.scores >= self.threshold

    @property
    def n_outliers(self) -> int:
        """How many rows are outliers."""
        return int(self.is_outlier.sum())

    @property
    def share(self) -> float:
        """Share of rows that are outliers (compare with :attr:`expected_share`)."""
        return self.n_outliers / len(self.scores) if len(self.scores) else 0.0

    def summary(self) -> str:
        """One line: how many outliers, against how many expected."""
        return (f"{self.n_outliers} of {len(self.scores)} rows are outliers (share {self.share:.3f}, "
                f"{self.expected_share:.3f} expected on reference-like data)")

    def to_frame(self) -> pd.DataFrame:
        """One row per scored row: score and outlier flag, indexed like the input."""
        index = self.index if len(self.index) == len(self.scores) else pd.RangeIndex(len(self.scores))
        return pd.DataFrame({"score": self.scores, "outlier": self.is_outlier}, index=index)

    def _repr_html_(self) -> str:
        import html

        top = self.to_frame().sort_values("score", ascending=False).head(10)
        return (f"<div><strong>OutlierReport</strong>: {html.escape(self.summary())}"
                f"{top.to_html(float_format=lambda v: f'{v:.4g}')}</div>")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the summary numbers, and the scores."""
        return {
            "n_rows": len(self.scores),
            "n_outliers": self.n_outliers,
            "share": self.share,
            "expected_share": self.expected_share,
            "threshold": self.threshold,
            "scores": self.scores.tolist(),
        }

    def mlflow_metrics(self) -> dict[str, float]:
        """Outlier share and count."""
        return {"outliers.share": self.share, "outliers.count": float(self.n_outliers)}


class OutlierDetector:
    """Isolation-forest outlier scores against the reference sample, in the scikit-learn manner."""

    def __init__(self, *, contamination: float = 0.01, n_estimators: int = 100, seed: int = 0) -> None:
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.seed = seed

    def fit(self, profile: ReferenceProfile, columns: list[str] | None = None) -> Self:
        """Fit on the profile's sample (``columns``, default every feature it holds)."""
        from sklearn.ensemble import IsolationForest

        if not 0 < self.contamination < 0.5:
            raise MonitoringError(f"contamination must be in (0, 0.5), got {self.contamination}")
        names = [c for c in (columns if columns is not None else profile.feature_names) if c in profile.sample.columns]
        if len(profile.sample) < 50 or not names:
            raise MonitoringError(
                f"outlier scores need the profile's sample (at least 50 rows); it has {len(profile.sample)} "
                f"rows of {len(names)} features: profile the training data with sample_size >= 50"
            )
        self.encoder_ = FeatureEncoder(categorical="frequency").fit(profile, names)
        X = self.encoder_.transform(profile.sample)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(X)
        reference_scores = -self.forest_.score_samples(X)
        self.threshold_ = float(np.quantile(reference_scores, 1 - self.contamination))
        return self

    def score(self, current: pd.DataFrame) -> OutlierReport:
        """Score each row of ``current``."""
        if not hasattr(self, "forest_"):
            raise MonitoringError("OutlierDetector is not fitted: call .fit(profile) first")
        if len(current) == 0:
            return OutlierReport(np.empty(0), self.threshold_, self.contamination, current.index)
        scores = -self.forest_.score_samples(self.encoder_.transform(current))
        return OutlierReport(scores, self.threshold_, self.contamination, current.index)
