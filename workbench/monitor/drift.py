"""Data drift of a whole table against a reference profile: per feature, and for the dataset.

::

    >>> import workbench as wb
    >>> report = wb.detect_drift("models:/churn@champion", current_frame)
    >>> report.drifted, report.drifted_features
    (True, ['tenure', 'monthly_charges'])
    >>> report.to_frame()          # one row per feature: test, statistic, p-value, threshold, drifted

Defaults mirror Evidently's documented ones: when both samples have more than ``small_sample``
(1,000) values, numeric features use the normed Wasserstein distance (threshold 0.1) and categorical
ones the Jensen-Shannon distance (0.1); otherwise the KS and chi-squared tests at p < 0.05. (Evidently
looks at the reference size only; a live window is often the small side, so the smaller count
decides here.) P-values are corrected for testing many features at once (Benjamini-Hochberg by
default). The dataset drifts when at least ``drift_share`` (half) of the features drift, or when the
multivariate test (:mod:`workbench.monitor.multivariate`) finds drift that no single column shows.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Self

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, MonitoringError
from workbench.monitor._report import Report, metric_key
from workbench.monitor.multivariate import MIN_ROWS, DomainClassifierTest, MultivariateDrift
from workbench.monitor.stattests import (
    DRIFT_TESTS,
    ColumnSample,
    DriftTest,
    drift_test,
    unseen_categories,
)
from workbench.parquet import parquet_source, sample_positions
from workbench.profile import CategoricalProfile, ReferenceProfile

__all__ = [
    "DriftDetector",
    "DriftReport",
    "DriftSettings",
    "FeatureDrift",
    "adjust_p_values",
    "as_profile",
    "detect_drift",
]

Correction = Literal["bh", "bonferroni", "none"]


@dataclass(frozen=True)
class DriftSettings:
    """Which test each feature gets, the thresholds, and the dataset-level rules.

    Every field has a sensible default; override only what you need, e.g.
    ``DriftSettings(numeric_test="psi", thresholds={"psi": 0.2}, correction="bonferroni")``.
    """

    #: Test for numeric features (``ks``, ``wasserstein``, ``psi``, ``jensenshannon``); ``None``:
    #: ``wasserstein`` above ``small_sample`` values on both sides, else ``ks``.
    numeric_test: str | None = None
    #: Test for categorical features (``chisquare``, ``jensenshannon``, ``psi``); ``None``:
    #: ``jensenshannon`` above ``small_sample`` values on both sides, else ``chisquare``.
    categorical_test: str | None = None
    #: Per-feature test names, overriding the two above.
    feature_tests: Mapping[str, str] = field(default_factory=dict)
    #: Thresholds by test name (a significance level for p-value tests, a distance otherwise).
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: At or below this many values (the smaller side), p-value tests replace distance tests.
    small_sample: int = 1000
    #: Multiple-testing correction of p-values across features: Benjamini-Hochberg (false discovery
    #: rate), Bonferroni (family-wise error) or none.
    correction: Correction = "bh"
    #: The dataset drifts when at least this share of the tested features drift.
    drift_share: float = 0.5
    #: Run the multivariate domain-classifier test (needs the profile's sample).
    multivariate: bool = True
    #: Its AUC threshold and significance level.
    multivariate_threshold: float = 0.55
    multivariate_alpha: float = 0.05
    #: Rows per side it uses at most.
    multivariate_max_rows: int = 5000
    #: An increase of a feature's missing rate by more than this (absolute) is reported.
    missing_rate_tolerance: float = 0.05
    #: Features to test (default: every feature of the profile).
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in (self.numeric_test, self.categorical_test, *self.feature_tests.values(), *self.thresholds):
            if name is not None and name not in DRIFT_TESTS:
                raise MonitoringError(f"unknown drift test {name!r}; choose one of {sorted(DRIFT_TESTS)}")
        if self.correction not in ("bh", "bonferroni", "none"):
            raise MonitoringError(f"correction must be 'bh', 'bonferroni' or 'none', not {self.correction!r}")
        if not 0 < self.drift_share <= 1:
            raise MonitoringError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.small_sample < 0:
            raise MonitoringError("small_sample cannot be negative")
        object.__setattr__(self, "feature_tests", MappingProxyType(dict(self.feature_tests)))
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))

    def test_for(self, feature: str, kind: str, n_reference: int, n_current: int) -> str:
        """The test name a feature of ``kind`` gets for these sample sizes."""
        if feature in self.feature_tests:
            return self.feature_tests[feature]
        chosen = self.numeric_test if kind == "numeric" else self.categorical_test
        if chosen is not None:
            return chosen
        small = min(n_reference, n_current) <= self.small_sample
        if kind == "numeric":
            return "ks" if small else "wasserstein"
        return "chisquare" if small else "jensenshannon"


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature: the test that ran, its outcome, and the feature's missing values and
    unseen categories."""

    feature: str
    kind: str
    #: Test name; ``None`` when the feature could not be tested (see ``note``).
    test: str | None
    statistic: float
    p_value: float | None
    #: The p-value after the multiple-testing correction (``None`` for distance tests).
    p_value_adjusted: float | None
    threshold: float
    drifted: bool
    reference_count: int
    current_count: int
    reference_missing_rate: float
    current_missing_rate: float
    #: The missing rate rose by more than the settings' tolerance.
    missing_rate_jump: bool
    #: Categories in the current data that the reference profile does not list (first 20).
    unseen_categories: tuple[str, ...] = ()
    #: Share of current non-missing values that are of an unseen category.
    unseen_share: float = 0.0
    note: str = ""
    #: Bound on how far ``statistic`` may be from its value on the raw rows: 0 on rows, and for
    #: exact tests on merged window summaries; the sketch's error for KS and Wasserstein on them.
    error: float = 0.0

    @property
    def distance(self) -> float | None:
        """The statistic of a distance test; ``None`` for p-value tests."""
        return self.statistic if self.p_value is None and self.test is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "distance": self.distance,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "reference_missing_rate": self.reference_missing_rate,
            "current_missing_rate": self.current_missing_rate,
            "missing_rate_jump": self.missing_rate_jump,
            "unseen_categories": list(self.unseen_categories),
            "unseen_share": self.unseen_share,
            "note": self.note,
            "error": self.error,
        }


@dataclass(frozen=True)
class DriftReport(Report):
    """Drift of a current table against a reference profile: per feature and for the dataset."""

    features: tuple[FeatureDrift, ...]
    n_reference: int
    n_current: int
    #: Features that drifted / features tested.
    share_drifted: float
    #: The share at or above which the dataset counts as drifted.
    drift_share: float
    #: ``share_drifted >= drift_share``.
    dataset_drifted: bool
    correction: str
    multivariate: MultivariateDrift | None = None
    created: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))
    #: Why the multivariate test did not run on this data, or where its result comes from when it
    #: is an earlier window's (a live monitor runs it every few updates); empty when it ran here.
    multivariate_note: str = ""

    @property
    def drifted(self) -> bool:
        """The dataset-level verdict, the same for :func:`detect_drift` and a live monitor: enough
        features drifted, or the multivariate test found drift (see :attr:`tests` for which ran)."""
        return self.dataset_drifted or bool(self.multivariate and self.multivariate.drifted)

    @property
    def tests(self) -> tuple[str, ...]:
        """The tests that ran on this data: each per-feature test used, then ``domain_classifier``
        when the multivariate test ran on it (not when its result was carried from an earlier window)."""
        ran = sorted({f.test for f in self.features if f.test is not None})
        if self.multivariate is not None and not self.multivariate_note:
            ran.append(self.multivariate.test)
        return tuple(ran)

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that drifted."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def n_drifted(self) -> int:
        """How many features drifted."""
        return sum(f.drifted for f in self.features)

    def __getitem__(self, feature: str) -> FeatureDrift:
        for item in self.features:
            if item.feature == feature:
                return item
        raise KeyError(feature)

    def summary(self) -> str:
        """One line: the verdict, drifted features and the multivariate result."""
        tested = sum(f.test is not None for f in self.features)
        text = (f"{'drift' if self.drifted else 'no drift'}: {self.n_drifted} of {tested} features drifted "
                f"(share {self.share_drifted:.2f}, dataset threshold {self.drift_share:.2f}); "
                f"{self.n_current} current rows vs {self.n_reference} reference rows")
        if self.multivariate is not None:
            text += (f"; multivariate AUC {self.multivariate.statistic:.3f} "
                     f"({'drift' if self.multivariate.drifted else 'no drift'})")
        if self.multivariate_note:
            text += f"; multivariate test {self.multivariate_note}"
        return text + f"; tests run: {', '.join(self.tests) or 'none'}"

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: test, statistic, p-value, adjusted p-value, threshold, drifted, missing
        rates and unseen categories."""
        columns = ["feature", "kind", "test", "statistic", "p_value", "p_value_adjusted", "threshold",
                   "drifted", "reference_missing_rate", "current_missing_rate", "missing_rate_jump",
                   "unseen_share", "unseen_categories", "note", "error"]
        rows = [{c: (", ".join(v) if isinstance(v := getattr(f, c), tuple) else v) for c in columns}
                for f in self.features]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the dataset-level verdict and every feature."""
        return {
            "dataset": {
                "drifted": self.drifted,
                "dataset_drifted": self.dataset_drifted,
                "share_drifted": self.share_drifted,
                "drift_share": self.drift_share,
                "n_drifted": self.n_drifted,
                "n_features": len(self.features),
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "correction": self.correction,
                "multivariate": self.multivariate.to_dict() if self.multivariate else None,
                "multivariate_note": self.multivariate_note,
                "tests": list(self.tests),
                "created": self.created.isoformat(),
            },
            "features": [f.to_dict() for f in self.features],
        }

    def mlflow_metrics(self) -> dict[str, float]:
        """Dataset share, multivariate AUC, and each feature's statistic and drift flag."""
        metrics = {"drift.share_drifted": self.share_drifted, "drift.dataset_drifted": float(self.drifted)}
        if self.multivariate is not None:
            metrics["drift.multivariate_auc"] = self.multivariate.statistic
        for f in self.features:
            if f.test is not None:
                metrics[metric_key("drift", f.feature, f.test)] = f.statistic
                metrics[metric_key("drift", f.feature, "drifted")] = float(f.drifted)
        return metrics


def adjust_p_values(p_values: Sequence[float], method: Correction) -> np.ndarray:
    """P-values adjusted for multiple testing: ``bh`` (Benjamini-Hochberg), ``bonferroni`` or ``none``."""
    p = np.asarray(p_values, dtype=np.float64)
    if method == "none" or len(p) <= 1:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * len(p), 1.0)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]  # step-up: monotone from the largest p down
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(ranked, 1.0)
    return adjusted


def as_profile(reference: ReferenceProfile | pd.DataFrame | str | Any) -> ReferenceProfile:
    """A reference profile from a profile, a DataFrame or Parquet (profiled now, see
    :meth:`ReferenceProfile.from_data`; without the data hash, which only lineage reads) or a model
    URI (its logged one)."""
    if isinstance(reference, ReferenceProfile):
        return reference
    if isinstance(reference, pd.DataFrame):
        return ReferenceProfile.from_data(reference, hash_data=False)
    table = parquet_source(reference)
    if table is not None:
        return ReferenceProfile.from_data(table, hash_data=False)
    if isinstance(reference, str):
        from workbench.registry import load_profile

        return load_profile(reference)
    raise InvalidInputError(
        f"the reference must be a ReferenceProfile, a DataFrame, Parquet (a Path, a .parquet file or a pyarrow "
        f"dataset) or a model URI, not {type(reference).__name__}"
    )


class DriftDetector:
    """Per-feature and dataset-level drift against a reference profile, in the scikit-learn manner.

    ``DriftDetector(settings).fit(profile)`` prepares every test once (so scoring a stream of windows
    costs only the current data); ``score(current_frame)`` returns a :class:`DriftReport`.
    """

    def __init__(self, settings: DriftSettings | None = None) -> None:
        self.settings = settings

    @property
    def settings_(self) -> DriftSettings:
        """The settings in effect."""
        return self.settings or DriftSettings()

    def fit(self, reference: ReferenceProfile | pd.DataFrame | str) -> Self:
        """Fit the tests every feature may need on the reference profile; returns ``self``."""
        settings = self.settings_
        profile = as_profile(reference)
        columns = list(settings.columns) if settings.columns is not None else profile.feature_names
        unknown = [c for c in columns if c not in profile.features]
        if unknown:
            raise MonitoringError(
                f"the reference profile has no feature(s) {unknown}; it has {profile.feature_names}"
            )
        self.tests_: dict[str, dict[str, DriftTest]] = {}
        for name in columns:
            feature = profile.features[name]
            if feature.count == 0:
                self.tests_[name] = {}
                continue
            # Both the small- and the large-sample choice, since the current size decides.
            candidates = {settings.test_for(name, feature.kind, n, n) for n in (0, settings.small_sample + 1)}
            self.tests_[name] = {
                t: drift_test(t, threshold=settings.thresholds.get(t)).fit(feature) for t in candidates
            }
        self.multivariate_: DomainClassifierTest | None = None
        if settings.multivariate and len(profile.sample) > 0:
            self.multivariate_ = DomainClassifierTest(
                threshold=settings.multivariate_threshold, alpha=settings.multivariate_alpha,
                max_rows=settings.multivariate_max_rows,
            ).fit(profile, [c for c in columns if c in profile.sample.columns])
        self.profile_ = profile
        self.columns_ = columns
        return self

    def score(
        self, current: pd.DataFrame | Any, *, multivariate: bool | None = None,
        samples: Mapping[str, ColumnSample] | None = None,
    ) -> DriftReport:
        """Test ``current`` (a DataFrame with the reference's feature columns, or Parquet: a ``Path``,
        a ``.parquet`` path, a folder of Parquet files or a ``pyarrow.dataset.Dataset``) for drift.

        Parquet is read a group of columns at a time and each column summarised and tested as it
        passes, so memory holds a few columns, never the table; the report is the one the DataFrame
        ``pd.read_parquet`` makes would get. ``multivariate=False`` skips the domain classifier for
        this call (it costs about a second; the per-feature tests cost milliseconds). ``samples``
        are column summaries made already (:meth:`ColumnSample.from_values`), reused instead of
        summarising the columns again.
        """
        if not hasattr(self, "profile_"):
            raise MonitoringError("DriftDetector is not fitted: call .fit(reference_profile) first")
        table = parquet_source(current) if not isinstance(current, pd.DataFrame) else None
        if table is None and not isinstance(current, pd.DataFrame):
            raise InvalidInputError(
                f"current data must be a pandas DataFrame or Parquet (a Path, a .parquet file, a folder of Parquet "
                f"files or a pyarrow dataset), not {type(current).__name__}"
            )
        columns = list(table.columns) if table is not None else list(current.columns)
        n_rows = table.n_rows if table is not None else len(current)
        absent = [c for c in self.columns_ if c not in columns]
        if len(absent) == len(self.columns_):
            raise MonitoringError(
                f"the current data has none of the reference features {self.columns_[:10]}; "
                f"it has columns {columns[:10]}"
            )
        settings = self.settings_
        run_mv = settings.multivariate if multivariate is None else multivariate
        if not run_mv:
            note = "off"
        elif self.multivariate_ is None:
            note = "not run: the reference profile keeps no sample of rows"
        elif n_rows < MIN_ROWS:
            note = f"not run: {n_rows} current rows, it needs {MIN_ROWS}"
        else:
            note = ""
        present = [name for name in self.columns_ if name not in absent]
        given = samples or {}
        partial: dict[str, dict[str, Any]] = {}
        rows_for_mv: pd.DataFrame | None = None
        if table is None:
            for name in present:
                sample = given.get(name) or ColumnSample.from_values(current[name], self.profile_.features[name].kind)
                partial[name] = self._feature(name, sample, n_rows)
            rows_for_mv = current
        else:
            # The multivariate test's rows are the ones DataFrame.sample would pick, taken from
            # each column group as it passes.
            positions = None
            if not note and self.multivariate_ is not None:
                limit, seed = self.multivariate_.max_rows, self.multivariate_.seed
                positions = sample_positions(n_rows, limit, seed) if n_rows > limit else np.arange(n_rows)
            taken: list[pd.DataFrame] = []
            for frame in table.column_groups(present):
                for name in frame.columns:
                    sample = given.get(name) or ColumnSample.from_values(frame[name],
                                                                         self.profile_.features[name].kind)
                    partial[name] = self._feature(name, sample, n_rows)
                if positions is not None:
                    part = frame.take(positions)
                    part.index = positions
                    taken.append(part)
            if positions is not None:
                rows_for_mv = pd.concat(taken, axis=1) if len(taken) > 1 else taken[0]
        missing = "column missing from the current data"
        report = self._report([partial[name] if name in partial else self._base(name) | _untested(n_rows, missing)
                               for name in self.columns_], n_rows)
        mv = None
        if not note and self.multivariate_ is not None and rows_for_mv is not None:
            mv = self.multivariate_.score(rows_for_mv)
        return dataclasses.replace(report, multivariate=mv, multivariate_note=note)

    def score_samples(self, samples: Mapping[str, ColumnSample], n_rows: int) -> DriftReport:
        """Test column summaries alone (:class:`ColumnSample` per feature, e.g. merged window
        summaries' :class:`~workbench.monitor.stattests.BinnedSample`), without the rows: the same
        tests and verdicts as :meth:`score` (no multivariate test, which needs rows). A feature
        without a sample counts as missing from the current data."""
        if not hasattr(self, "profile_"):
            raise MonitoringError("DriftDetector is not fitted: call .fit(reference_profile) first")
        partial = [self._feature(name, samples[name], n_rows) if name in samples
                   else self._base(name) | _untested(n_rows, "column missing from the current data")
                   for name in self.columns_]
        return dataclasses.replace(self._report(partial, n_rows),
                                   multivariate_note="not run: it needs rows, and summaries keep none")

    def _base(self, name: str) -> dict[str, Any]:
        feature = self.profile_.features[name]
        return {"feature": name, "kind": feature.kind, "reference_count": feature.count,
                "reference_missing_rate": feature.missing_rate}

    def _feature(self, name: str, sample: ColumnSample, n_rows: int) -> dict[str, Any]:
        """One feature's test outcome (before the multiple-testing correction) on its current summary."""
        settings = self.settings_
        feature = self.profile_.features[name]
        base = self._base(name)
        base.update(current_count=sample.count, current_missing_rate=sample.missing_rate,
                    missing_rate_jump=sample.missing_rate - feature.missing_rate > settings.missing_rate_tolerance)
        if isinstance(feature, CategoricalProfile):
            unseen, unseen_rows = unseen_categories(feature, sample)
            base.update(unseen_categories=tuple(unseen[:20]),
                        unseen_share=unseen_rows / sample.count if sample.count else 0.0)
        tests = self.tests_[name]
        if not tests or sample.count == 0:
            where = "reference profile" if not tests else "current data"
            return base | _untested(n_rows, f"no non-missing values in the {where}", keep_counts=True)
        test_name = settings.test_for(name, feature.kind, feature.count, sample.count)
        result = tests[test_name].score(sample)
        return base | {"test": result.test, "statistic": result.statistic, "p_value": result.p_value,
                       "threshold": result.threshold, "drifted": result.drifted, "error": result.error}

    def _report(self, partial: list[dict[str, Any]], n_rows: int) -> DriftReport:
        """The report of every feature's outcome: p-values corrected, the dataset-level verdict."""
        settings = self.settings_
        features = _corrected(partial, settings.correction)
        tested = [f for f in features if f.test is not None]
        share = sum(f.drifted for f in tested) / len(tested) if tested else 0.0
        return DriftReport(
            features=tuple(features),
            n_reference=self.profile_.n_rows,
            n_current=n_rows,
            share_drifted=share,
            drift_share=settings.drift_share,
            dataset_drifted=bool(tested) and share >= settings.drift_share,
            correction=settings.correction,
            multivariate=None,
            created=pd.Timestamp(_dt.datetime.now(_dt.UTC)),
        )


def _untested(n_rows: int, note: str, *, keep_counts: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"test": None, "statistic": float("nan"), "p_value": None, "threshold": float("nan"),
                           "drifted": False, "note": note}
    if not keep_counts:
        out.update(current_count=0, current_missing_rate=1.0 if n_rows else 0.0, missing_rate_jump=False)
    return out


def _corrected(partial: list[dict[str, Any]], correction: Correction) -> list[FeatureDrift]:
    """FeatureDrift items with p-values adjusted across the p-value tests, and verdicts to match."""
    tested = [i for i, f in enumerate(partial) if f.get("p_value") is not None]
    adjusted = adjust_p_values([partial[i]["p_value"] for i in tested], correction)
    for i, p in zip(tested, adjusted):
        partial[i]["p_value_adjusted"] = float(p)
        partial[i]["drifted"] = bool(p < partial[i]["threshold"])
    return [FeatureDrift(**{"p_value_adjusted": None, **f}) for f in partial]


def detect_drift(
    reference: ReferenceProfile | pd.DataFrame | str | Any,
    current: pd.DataFrame | Any,
    settings: DriftSettings | None = None,
    **overrides: Any,
) -> DriftReport:
    """Drift of ``current`` against ``reference`` (a profile, a DataFrame, Parquet, or a model URI
    whose logged profile is used); keyword arguments override :class:`DriftSettings` fields::

        detect_drift("models:/churn@champion", window, correction="bonferroni", multivariate=False)
        detect_drift(Path("reference.parquet"), Path("current.parquet"))

    Parquet (a ``Path``, a ``.parquet`` path, a folder of Parquet files or a ``pyarrow.dataset``
    Dataset) is read a group of columns at a time on both sides, so a table larger than memory can
    be tested; the report is the one its DataFrame would get.
    """
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(DriftSettings)}
        if unknown:
            raise InvalidInputError(f"unknown drift setting(s) {sorted(unknown)}")
        settings = dataclasses.replace(settings or DriftSettings(), **overrides)
    return DriftDetector(settings).fit(reference).score(current)
