"""Per-feature drift tests against a reference profile: one small interface, five tests.

Every test is fitted on one feature's profile (never on the training data itself) and scores the
current values of that feature::

    >>> from workbench.monitor.stattests import KolmogorovSmirnov
    >>> test = KolmogorovSmirnov().fit(profile.features["age"])
    >>> test.score(current["age"])
    DriftTestResult(test='ks', statistic=0.031, p_value=0.27, threshold=0.05, drifted=False)

===================  =============  ===========  ==========  =========================================
name                 class          kinds        measure     default threshold (drifted when)
===================  =============  ===========  ==========  =========================================
``ks``               KS             numeric      p-value     0.05 (p < 0.05)
``wasserstein``      Wasserstein    numeric      distance    0.1 (normed distance >= 0.1)
``psi``              PSI            both         distance    0.1 (PSI >= 0.1)
``chisquare``        ChiSquared     categorical  p-value     0.05 (p < 0.05)
``jensenshannon``    JensenShannon  both         distance    0.1 (distance >= 0.1)
===================  =============  ===========  ==========  =========================================

The reference side of a numeric feature is the profile's quantile sketch (1,001 points), read as a
piecewise-linear CDF; binned tests (PSI, Jensen-Shannon) use the profile's decile bins for numeric
features and its category counts for categorical ones. Current values are summarised once per column
(:class:`ColumnSample`) so several tests on one column share the sorting and counting.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
from scipy import special, stats

from workbench.errors import MonitoringError
from workbench.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    numeric_values,
)

__all__ = [
    "DRIFT_TESTS",
    "BinnedSample",
    "ChiSquared",
    "ColumnSample",
    "DriftTest",
    "DriftTestResult",
    "JensenShannon",
    "KolmogorovSmirnov",
    "PopulationStabilityIndex",
    "Wasserstein",
    "drift_test",
]

Kind = Literal["numeric", "categorical"]
Measure = Literal["p_value", "distance"]

#: Category name that stands for the categories a profile pooled beyond its cap.
OTHER = "__other__"


@dataclass(frozen=True)
class DriftTestResult:
    """The outcome of one drift test on one feature."""

    #: The test's short name (``ks``, ``wasserstein``, ``psi``, ``chisquare``, ``jensenshannon``).
    test: str
    #: The test statistic: KS D, chi-squared, normed Wasserstein distance, PSI or JS distance.
    statistic: float
    #: For p-value tests; ``None`` for distance tests.
    p_value: float | None
    #: p-value tests drift when ``p_value < threshold``; distance tests when ``statistic >= threshold``.
    threshold: float
    drifted: bool
    #: Bound on how far ``statistic`` may be from the value computed on the raw rows: 0 for tests on
    #: raw rows, and for binned tests on a :class:`BinnedSample`; the sketch's error for KS and
    #: Wasserstein on one.
    error: float = 0.0

    @property
    def measure(self) -> Measure:
        """``"p_value"`` or ``"distance"``: how :attr:`threshold` is read."""
        return "distance" if self.p_value is None else "p_value"

    @property
    def distance(self) -> float | None:
        """The statistic of a distance test; ``None`` for p-value tests."""
        return self.statistic if self.p_value is None else None


@dataclass(frozen=True)
class ColumnSample:
    """Current values of one column, summarised once for every test that scores them.

    Numeric: the non-missing values sorted. Categorical: each category (as a string, the way the
    profile counts them) with its count.
    """

    kind: Kind
    #: Rows in the column, missing ones included.
    n_total: int
    #: Rows where the value is missing (or, for numeric columns, not a finite number).
    missing: int
    sorted_values: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    categories: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object), repr=False)
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64), repr=False)

    @property
    def count(self) -> int:
        """Non-missing values."""
        return self.n_total - self.missing

    @property
    def missing_rate(self) -> float:
        """Share of rows with a missing value."""
        return self.missing / self.n_total if self.n_total else 0.0

    @classmethod
    def from_values(cls, values: Any, kind: Kind) -> ColumnSample:
        """Summarise a Series, array or list as a ``kind`` column."""
        series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
        if kind == "numeric":
            finite = numeric_values(series)
            return cls("numeric", len(series), len(series) - len(finite), sorted_values=np.sort(finite))
        counts = series.value_counts(dropna=True, sort=False)
        counts = counts[counts > 0]  # a pandas categorical lists its unused categories too
        index = counts.index.astype(str)
        if index.has_duplicates:  # e.g. 1 and "1" are one category once written as strings
            counts = counts.groupby(index).sum()
            index = counts.index
        n_values = int(counts.sum())
        return cls(
            "categorical",
            len(series),
            len(series) - n_values,
            categories=np.asarray(index, dtype=object),
            counts=counts.to_numpy(dtype=np.int64),
        )


@dataclass(frozen=True)
class BinnedSample(ColumnSample):
    """A numeric column known only by its counts in fine bins (a merged window summary, see
    :mod:`workbench.monitor.summaries`): the same tests run on it without the rows.

    ``edges`` are the inner bin edges (a subset of the reference's quantile sketch points that holds
    its histogram's edges); ``bin_counts[k]`` counts the values in ``[edges[k-1], edges[k])``, the
    first and last bins open below and above. ``minimum`` and ``maximum`` bound the outer bins. Binned
    tests (PSI, Jensen-Shannon) are exact on it; KS and Wasserstein read the current distribution as
    shaped like the reference's inside each bin and state their error (:attr:`DriftTestResult.error`).
    """

    edges: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    bin_counts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64), repr=False)
    #: Of each bin's values, how many equal its lower edge exactly (0 for the first bin): discrete
    #: features (ages, counts) sit on the edges, and are then known exactly.
    edge_counts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64), repr=False)
    minimum: float = float("nan")
    maximum: float = float("nan")

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper value bound of each bin (the outer bins closed by the minimum and maximum)."""
        low = np.concatenate([[self.minimum], self.edges])
        high = np.concatenate([self.edges, [self.maximum]])
        if len(self.edges):
            low[0] = min(self.minimum, self.edges[0])
            high[-1] = max(self.maximum, self.edges[-1])
        return low, high

    def order_bins(self, positions: np.ndarray) -> np.ndarray:
        """The bin of each order statistic (0-based positions among the sorted values)."""
        totals = np.cumsum(self.bin_counts)
        return np.minimum(np.searchsorted(totals, positions, side="right"), len(totals) - 1)


def _as_sample(current: Any, kind: Kind) -> ColumnSample:
    if isinstance(current, ColumnSample):
        if current.kind != kind:
            raise MonitoringError(
                f"a {current.kind} column sample cannot be scored against a {kind} reference feature"
            )
        return current
    return ColumnSample.from_values(current, kind)


class DriftTest(abc.ABC):
    """Base of every per-feature drift test, in the scikit-learn manner.

    ``__init__`` only stores ``threshold`` (``None``: the test's default); :meth:`fit` learns from one
    feature's profile and returns ``self``; :meth:`score` returns a :class:`DriftTestResult`.
    """

    #: Short name used in settings, reports and the CLI.
    name: ClassVar[str]
    #: Human-readable name.
    display_name: ClassVar[str]
    #: The feature kinds the test accepts.
    kinds: ClassVar[frozenset[Kind]]
    #: Whether the threshold is a significance level or a distance.
    measure: ClassVar[Measure]
    default_threshold: ClassVar[float]

    def __init__(self, *, threshold: float | None = None) -> None:
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold!r})"

    @property
    def threshold_(self) -> float:
        """The threshold in effect (the given one, else the test's default)."""
        return self.default_threshold if self.threshold is None else float(self.threshold)

    def fit(self, reference: FeatureProfile) -> Self:
        """Learn the reference distribution from one feature's profile; returns ``self``."""
        if reference.kind not in self.kinds:
            raise MonitoringError(
                f"the {self.display_name} test does not apply to {reference.kind} feature "
                f"{reference.name!r}; use one of {sorted(n for n, t in DRIFT_TESTS.items() if reference.kind in t.kinds)}"
            )
        if reference.count == 0:
            raise MonitoringError(
                f"feature {reference.name!r} has no non-missing values in the reference profile, so its "
                "drift cannot be tested: leave it out (columns=[...]) or re-profile with data"
            )
        threshold = self.threshold_
        if self.measure == "p_value" and not 0 < threshold < 1:
            raise MonitoringError(f"the {self.name} test needs a significance level in (0, 1), got {threshold}")
        if self.measure == "distance" and threshold < 0:
            raise MonitoringError(f"the {self.name} test needs a non-negative distance threshold, got {threshold}")
        self._fit(reference)
        self.reference_ = reference
        return self

    def score(self, current: Any) -> DriftTestResult:
        """Test the current values (a Series, an array or a :class:`ColumnSample`) for drift."""
        reference = getattr(self, "reference_", None)
        if reference is None:
            raise MonitoringError(f"{type(self).__name__} is not fitted: call .fit(feature_profile) first")
        sample = _as_sample(current, reference.kind)
        if sample.count == 0:
            raise MonitoringError(
                f"feature {reference.name!r} has no non-missing values in the current data: nothing to test"
            )
        statistic, p_value = self._score(sample)
        threshold = self.threshold_
        drifted = bool(p_value < threshold) if p_value is not None else bool(statistic >= threshold)
        error = self._error(sample) if isinstance(sample, BinnedSample) else 0.0
        return DriftTestResult(self.name, float(statistic), p_value, threshold, drifted, float(error))

    def _error(self, sample: BinnedSample) -> float:
        """Bound on the statistic's distance from the raw rows' value (binned tests are exact)."""
        return 0.0

    @abc.abstractmethod
    def _fit(self, reference: FeatureProfile) -> None: ...

    @abc.abstractmethod
    def _score(self, sample: ColumnSample) -> tuple[float, float | None]: ...


# -- the reference side of numeric features ------------------------------------------------------


def _sketch_cdf(quantiles: np.ndarray, probs: np.ndarray, x: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """The reference CDF at ``x`` read from the quantile sketch (linear between sketch points).

    ``side="right"`` gives F(x) (right-continuous), ``"left"`` the limit from the left; they differ
    where the sketch has ties, i.e. where the reference has an atom (a repeated value).
    """
    idx = np.searchsorted(quantiles, x, side=side) - 1  # last sketch point <= x (right) or < x (left)
    out = np.empty(len(x))
    below, above = idx < 0, idx >= len(quantiles) - 1
    out[below] = 0.0
    out[above] = 1.0
    inner = ~(below | above)
    j = idx[inner]
    q0, q1 = quantiles[j], quantiles[j + 1]
    # q1 > x >= q0 (right) or q1 >= x > q0 (left), so q1 > q0 wherever this divides.
    frac = (x[inner] - q0) / (q1 - q0)
    out[inner] = probs[j] + (probs[j + 1] - probs[j]) * frac
    return out


def _binned_counts(reference: NumericProfile, sorted_values: np.ndarray | BinnedSample) -> np.ndarray:
    """Counts of the current values in the reference's bins (np.histogram's half-open rule)."""
    inner = reference.bin_edges[1:-1]
    if isinstance(sorted_values, BinnedSample):  # the fine edges hold the reference's: exact sums
        fine = sorted_values
        cuts = np.searchsorted(fine.edges, inner, side="left") + 1
        totals = np.concatenate([[0], np.cumsum(fine.bin_counts)])
        return np.diff(np.concatenate([[0], totals[cuts], [totals[-1]]]))
    cuts = np.searchsorted(sorted_values, inner, side="left")
    return np.diff(np.concatenate([[0], cuts, [len(sorted_values)]]))


def _aligned_categories(
    reference: CategoricalProfile, sample: ColumnSample
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reference and current counts over one set of categories, and the categories never seen.

    Categories the reference never had get a reference count of zero; when the profile pooled rare
    categories (``other``), unknown current categories are counted in that pool instead.
    """
    names = list(reference.categories)
    ref = np.fromiter(reference.categories.values(), dtype=np.float64, count=len(names))
    pooled = reference.other > 0
    if pooled:
        names.append(OTHER)
        ref = np.append(ref, float(reference.other))
    positions = _positions(reference, sample.categories)
    known = positions >= 0
    cur = np.zeros(len(names))
    np.add.at(cur, positions[known], sample.counts[known])
    unseen = [str(c) for c in sample.categories[~known]]
    if unseen:
        if pooled:
            cur[-1] += sample.counts[~known].sum()
        else:
            ref = np.concatenate([ref, np.zeros(len(unseen))])
            cur = np.concatenate([cur, sample.counts[~known].astype(np.float64)])
    return ref, cur, unseen


def _positions(reference: CategoricalProfile, categories: np.ndarray) -> np.ndarray:
    """Each current category's position among the reference's (-1: unseen)."""
    if len(categories) > 64:  # many levels: pandas' hash join
        return np.asarray(pd.Index(list(reference.categories)).get_indexer(categories), dtype=np.int64)
    lookup = {name: i for i, name in enumerate(reference.categories)}
    return np.fromiter((lookup.get(c, -1) for c in categories), dtype=np.int64, count=len(categories))


def _proportions(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ref / ref.sum(), cur / cur.sum()


# -- the tests -----------------------------------------------------------------------------------


class KolmogorovSmirnov(DriftTest):
    """Two-sample Kolmogorov-Smirnov test, the reference side read from the quantile sketch.

    D is the largest gap between the reference CDF (the sketch, linear between its 1,001 points)
    and the current empirical CDF; the p-value is SciPy's two-sample KS distribution for the
    reference count n and the current count m (``kstwo`` at ``round(n*m/(n+m))``, which is what
    ``scipy.stats.ks_2samp(method="asymp")`` uses).
    """

    name = "ks"
    display_name = "Kolmogorov-Smirnov"
    kinds = frozenset({"numeric"})
    measure = "p_value"
    default_threshold = 0.05

    def _fit(self, reference: FeatureProfile) -> None:
        assert isinstance(reference, NumericProfile)
        self.quantiles_ = np.asarray(reference.quantiles, dtype=np.float64)
        self.probs_ = np.linspace(0.0, 1.0, len(self.quantiles_))

    def _score(self, sample: ColumnSample) -> tuple[float, float | None]:
        if isinstance(sample, BinnedSample):
            return self._p(self._binned_d(sample), sample.count)
        values = sample.sorted_values
        m = len(values)
        # Each distinct current value: the ECDF just before it and at it.
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        distinct = values[starts]
        ecdf_left = starts / m
        ecdf_right = np.append(starts[1:], m) / m
        # Between two distinct current values the ECDF is flat and the reference CDF monotone, so the
        # largest gap is at one of these one-sided limits.
        gap_right = np.abs(ecdf_right - _sketch_cdf(self.quantiles_, self.probs_, distinct, "right"))
        gap_left = np.abs(ecdf_left - _sketch_cdf(self.quantiles_, self.probs_, distinct, "left"))
        d = float(max(gap_right.max(), gap_left.max()))
        return self._p(d, m)

    def _p(self, d: float, m: int) -> tuple[float, float]:
        n = self.reference_.count
        big, small = max(n, m), min(n, m)
        effective = max(1, round(big * small / (big + small)))
        return d, float(stats.kstwo.sf(d, effective))

    def _binned_d(self, sample: BinnedSample) -> float:
        """The largest gap at the points where the current ECDF is known exactly: both sides of every
        edge, below the minimum and at the maximum (a lower bound of the rows' D; see :meth:`_error`)."""
        m = sample.count
        below = np.concatenate([[0], np.cumsum(sample.bin_counts)[:-1]])[1:]  # values < each edge
        at_or_below = below + sample.edge_counts[1:]
        x = np.concatenate([sample.edges, [sample.minimum]])
        left = np.concatenate([below, [0]]) / m
        right = np.concatenate([at_or_below, [m]]) / m
        x_right = np.concatenate([sample.edges, [sample.maximum]])
        gap_left = np.abs(left - _sketch_cdf(self.quantiles_, self.probs_, x, "left"))
        gap_right = np.abs(right - _sketch_cdf(self.quantiles_, self.probs_, x_right, "right"))
        return float(max(gap_left.max(), gap_right.max()))

    def _error(self, sample: BinnedSample) -> float:
        # Inside a bin, off its edge, both CDFs rise; the ECDF by the bin's values off the edge, so
        # the rows' D is at most that much above the gaps at the edges.
        return float((sample.bin_counts - sample.edge_counts).max() / sample.count)


class Wasserstein(DriftTest):
    """First Wasserstein distance between reference and current, divided by the reference std.

    Computed on the quantile functions, ``integral |Q_ref(p) - Q_cur(p)| dp`` over the sketch's
    probability grid, each segment integrated exactly for the linear pieces (the same normalisation
    as Evidently: the std floored at 0.001).
    """

    name = "wasserstein"
    display_name = "Wasserstein distance (normed)"
    kinds = frozenset({"numeric"})
    measure = "distance"
    default_threshold = 0.1

    def _fit(self, reference: FeatureProfile) -> None:
        assert isinstance(reference, NumericProfile)
        self.quantiles_ = np.asarray(reference.quantiles, dtype=np.float64)
        self.probs_ = np.linspace(0.0, 1.0, len(self.quantiles_))
        self.norm_ = max(float(reference.std) if np.isfinite(reference.std) else 0.0, 0.001)

    def _score(self, sample: ColumnSample) -> tuple[float, float | None]:
        if isinstance(sample, BinnedSample):
            return self._distance(self._binned_quantiles(sample)), None
        values = sample.sorted_values
        position = self.probs_ * (len(values) - 1)
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, len(values) - 1)
        current = values[lower] + (values[upper] - values[lower]) * (position - lower)
        return self._distance(current), None

    def _binned_quantiles(self, sample: BinnedSample) -> np.ndarray:
        """The current quantiles at the sketch's probabilities as the rows' are made (between two
        order statistics), each order statistic read from its bin: exactly when it sits on the bin's
        edge, else where the reference's shape inside the bin puts it."""
        position = self.probs_ * (sample.count - 1)
        first = np.floor(position).astype(np.int64)
        last = np.minimum(first + 1, sample.count - 1)
        values = self._order_values(sample, np.concatenate([first, last]))
        low_value, high_value = values[:len(first)], values[len(first):]
        return low_value + (high_value - low_value) * (position - first)

    def _order_values(self, sample: BinnedSample, positions: np.ndarray) -> np.ndarray:
        counts = sample.bin_counts.astype(np.float64)
        edge = sample.edge_counts.astype(np.float64)
        low_all, high_all = sample.bounds()
        # The reference CDF at every bin's bounds, once (a bin holds many order statistics).
        f_low_all = _sketch_cdf(self.quantiles_, self.probs_, low_all, "right")
        f_high_all = _sketch_cdf(self.quantiles_, self.probs_, high_all, "left")
        k = sample.order_bins(positions)
        low, high, f_low, f_high = low_all[k], high_all[k], f_low_all[k], f_high_all[k]
        totals = np.concatenate([[0.0], np.cumsum(counts)])
        into = positions - totals[k] - edge[k]
        spread = counts[k] - edge[k]
        frac = np.clip(np.divide(into + 0.5, spread, out=np.zeros(len(k)), where=spread > 0), 0.0, 1.0)
        shaped = np.interp(f_low + frac * (f_high - f_low), self.probs_, self.quantiles_)
        linear = low + frac * (high - low)
        inside = np.clip(np.where(f_high > f_low, shaped, linear), low, high)
        return np.where(into < 0, low, inside)

    def _error(self, sample: BinnedSample) -> float:
        # The rows' quantile at p and this one weigh the same two order statistics alike; each
        # statistic is exact on an edge, else somewhere in its bin.
        position = self.probs_ * (sample.count - 1)
        first = np.floor(position).astype(np.int64)
        last = np.minimum(first + 1, sample.count - 1)
        t = position - first
        widths = self._order_width(sample, np.concatenate([first, last]))
        gap = (1 - t) * widths[:len(first)] + t * widths[len(first):]
        return float(np.sum((gap[:-1] + gap[1:]) / 2 * np.diff(self.probs_)) / self.norm_)

    @staticmethod
    def _order_width(sample: BinnedSample, positions: np.ndarray) -> np.ndarray:
        low, high = sample.bounds()
        k = sample.order_bins(positions)
        totals = np.concatenate([[0], np.cumsum(sample.bin_counts)])
        on_edge = positions - totals[k] < sample.edge_counts[k]
        return np.where(on_edge, 0.0, high[k] - low[k])

    def _distance(self, current: np.ndarray) -> float:
        diff = self.quantiles_ - current
        a, b = diff[:-1], diff[1:]
        width = np.diff(self.probs_)
        same_sign = a * b >= 0
        abs_sum = np.abs(a) + np.abs(b)
        # A linear piece that crosses zero: two triangles, (a^2 + b^2) / (2 (|a| + |b|)) per unit width.
        with np.errstate(invalid="ignore", divide="ignore"):
            crossing = np.where(abs_sum > 0, (a * a + b * b) / (2 * abs_sum), 0.0)
        area = np.where(same_sign, abs_sum / 2, crossing) * width
        return float(area.sum() / self.norm_)


class PopulationStabilityIndex(DriftTest):
    """Population Stability Index: ``sum (cur - ref) * ln(cur / ref)`` over bins of proportions.

    Numeric features use the profile's decile bins, categorical ones its categories (a category the
    reference never had is its own bin). Empty bins count as ``eps`` so the logarithm stays finite.
    """

    name = "psi"
    display_name = "PSI"
    kinds = frozenset({"numeric", "categorical"})
    measure = "distance"
    default_threshold = 0.1

    def __init__(self, *, threshold: float | None = None, eps: float = 1e-4) -> None:
        super().__init__(threshold=threshold)
        self.eps = eps

    def _fit(self, reference: FeatureProfile) -> None:
        if self.eps <= 0:
            raise MonitoringError(f"PSI needs a positive eps for empty bins, got {self.eps}")

    def _score(self, sample: ColumnSample) -> tuple[float, float | None]:
        ref, cur = _binned(self.reference_, sample)
        p, q = _proportions(ref, cur)
        p, q = np.maximum(p, self.eps), np.maximum(q, self.eps)
        return float(np.sum((q - p) * np.log(q / p))), None


class JensenShannon(DriftTest):
    """Jensen-Shannon distance (natural logarithm, so at most sqrt(ln 2)) between binned proportions.

    Bins as for :class:`PopulationStabilityIndex`; equal to ``scipy.spatial.distance.jensenshannon``.
    """

    name = "jensenshannon"
    display_name = "Jensen-Shannon distance"
    kinds = frozenset({"numeric", "categorical"})
    measure = "distance"
    default_threshold = 0.1

    def _fit(self, reference: FeatureProfile) -> None:
        pass

    def _score(self, sample: ColumnSample) -> tuple[float, float | None]:
        ref, cur = _binned(self.reference_, sample)
        p, q = _proportions(ref, cur)
        mid = (p + q) / 2
        divergence = (special.rel_entr(p, mid).sum() + special.rel_entr(q, mid).sum()) / 2
        return float(np.sqrt(max(divergence, 0.0))), None


class ChiSquared(DriftTest):
    """Pearson's chi-squared test of homogeneity on the 2 x k table of reference and current counts.

    The same statistic and p-value as ``scipy.stats.chi2_contingency(table, correction=False)``:
    both samples are treated as samples (the reference is not taken as exact expected
    frequencies), so a small reference does not inflate false alarms. Categories the reference
    never had are columns with a reference count of zero. Categories expecting fewer than
    :data:`MIN_EXPECTED` counts are pooled first (see :func:`_pooled_sparse`).
    """

    name = "chisquare"
    display_name = "chi-squared"
    kinds = frozenset({"categorical"})
    measure = "p_value"
    default_threshold = 0.05

    def _fit(self, reference: FeatureProfile) -> None:
        pass

    def _score(self, sample: ColumnSample) -> tuple[float, float | None]:
        assert isinstance(self.reference_, CategoricalProfile)
        ref, cur, _ = _aligned_categories(self.reference_, sample)
        table = np.vstack(_pooled_sparse(ref, cur))
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 0.0, 1.0
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        statistic = float(((table - expected) ** 2 / expected).sum())
        return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


def _binned(reference: FeatureProfile, sample: ColumnSample) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(reference, NumericProfile):
        current = sample if isinstance(sample, BinnedSample) else sample.sorted_values
        return reference.bin_counts.astype(np.float64), _binned_counts(reference, current).astype(np.float64)
    ref, cur, _ = _aligned_categories(reference, sample)
    return _pooled_sparse(ref, cur)


#: A category whose expected count is below this in either sample joins the pooled rest.
MIN_EXPECTED = 5.0


def _pooled_sparse(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categories too rare to compare on their own pooled into one cell (Cochran's rule).

    With many levels and few rows (a 500-level column, 300 rows) most cells expect under one count:
    chi-squared's approximation fails and distances grow with the levels alone, so unshifted data
    would look drifted. A cell whose expected count under "no drift" is below :data:`MIN_EXPECTED`
    in either sample is pooled with the other such cells; a single sparse cell stays as it is.
    """
    total = ref.sum() + cur.sum()
    if total == 0:
        return ref, cur
    column = ref + cur
    expected = np.minimum(ref.sum(), cur.sum()) * column / total
    sparse = expected < MIN_EXPECTED
    if sparse.sum() < 2:
        return ref, cur
    return (np.append(ref[~sparse], ref[sparse].sum()), np.append(cur[~sparse], cur[sparse].sum()))


#: Every drift test by its short name.
DRIFT_TESTS: Mapping[str, type[DriftTest]] = {
    cls.name: cls
    for cls in (KolmogorovSmirnov, Wasserstein, PopulationStabilityIndex, ChiSquared, JensenShannon)
}


def drift_test(name: str, *, threshold: float | None = None) -> DriftTest:
    """A new, unfitted drift test by short name (``ks``, ``wasserstein``, ``psi``, ``chisquare``,
    ``jensenshannon``)."""
    cls = DRIFT_TESTS.get(name)
    if cls is None:
        raise MonitoringError(f"unknown drift test {name!r}; choose one of {sorted(DRIFT_TESTS)}")
    return cls(threshold=threshold)


def unseen_categories(reference: CategoricalProfile, sample: ColumnSample) -> tuple[list[str], int]:
    """Current categories the reference profile does not list (the most frequent first, ties by
    name: the same list whatever order the rows came in), and how many rows carry them."""
    known = _positions(reference, sample.categories) >= 0
    names, counts = [str(c) for c in sample.categories[~known]], sample.counts[~known]
    order = sorted(range(len(names)), key=lambda i: (-int(counts[i]), names[i]))
    return [names[i] for i in order], int(counts.sum())
