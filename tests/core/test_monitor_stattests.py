"""Per-feature drift tests: one contract for all, then each against an independent reference."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from workbench.errors import MonitoringError
from workbench.monitor import (
    DRIFT_TESTS,
    ChiSquared,
    ColumnSample,
    DriftTestResult,
    JensenShannon,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    Wasserstein,
)
from workbench.profile import ReferenceProfile


def profile_of(values, name: str = "x", **kwargs) -> ReferenceProfile:
    return ReferenceProfile.from_data(pd.DataFrame({name: values}), **kwargs)


# -- the contract every drift test keeps ---------------------------------------------------------

CASES = [(name, kind) for name, cls in sorted(DRIFT_TESTS.items()) for kind in sorted(cls.kinds)]


def _data(kind: str, n: int, rng: np.random.Generator, shift: float = 0.0):
    if kind == "numeric":
        return pd.Series(rng.normal(shift, 1.0, n))
    probs = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 else np.array([0.1, 0.2, 0.3, 0.4])
    return pd.Series(rng.choice(["a", "b", "c", "d"], n, p=probs))


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_every_drift_test_keeps_the_contract(name: str, kind: str) -> None:
    rng = np.random.default_rng(12)
    cls = DRIFT_TESTS[name]
    feature = profile_of(_data(kind, 3000, rng)).features["x"]

    # __init__ only stores keyword arguments; an unfitted test says how to fit it.
    test = cls(threshold=None)
    assert test.threshold is None and not hasattr(test, "reference_")
    with pytest.raises(MonitoringError, match="not fitted"):
        test.score(_data(kind, 10, rng))
    assert test.fit(feature) is test

    other_kind = "categorical" if kind == "numeric" else "numeric"
    if other_kind not in cls.kinds:
        with pytest.raises(MonitoringError, match="does not apply"):
            cls().fit(profile_of(_data(other_kind, 100, rng)).features["x"])

    same = test.score(_data(kind, 3000, rng))
    shifted = test.score(_data(kind, 3000, rng, shift=1.0))
    for result in (same, shifted):
        assert isinstance(result, DriftTestResult) and result.test == name
        assert result.threshold == cls.default_threshold
        assert (result.p_value is None) == (cls.measure == "distance")
        assert result.measure == cls.measure
        expected = result.p_value < result.threshold if result.p_value is not None else result.statistic >= result.threshold
        assert result.drifted == expected
    assert not same.drifted and shifted.drifted
    with pytest.raises(dataclasses.FrozenInstanceError):
        same.drifted = True  # type: ignore[misc]

    # A Series, an array and a prepared ColumnSample are the same input.
    values = _data(kind, 500, rng, shift=0.2)
    by_series = test.score(values)
    assert test.score(values.to_numpy()) == by_series
    assert test.score(ColumnSample.from_values(values, kind)) == by_series

    # The threshold is a setting: moved just past the statistic, the verdict flips.
    sample = ColumnSample.from_values(values, kind)
    if cls.measure == "distance":
        at, above = by_series.statistic, by_series.statistic * 1.001 + 1e-12
        assert cls(threshold=at).fit(feature).score(sample).drifted
        assert not cls(threshold=above).fit(feature).score(sample).drifted
    else:
        assert by_series.p_value is not None
        assert cls(threshold=min(by_series.p_value * 1.001 + 1e-12, 0.999999)).fit(feature).score(sample).drifted
        assert not cls(threshold=by_series.p_value).fit(feature).score(sample).drifted

    # Nothing to test is an error that says so, not a number.
    with pytest.raises(MonitoringError, match="no non-missing values"):
        test.score(pd.Series([None, None], dtype=object if kind == "categorical" else float))


# -- KS against scipy ----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "shift"), [(400, 300, 0.0), (2000, 1500, 0.1), (20_000, 5000, 0.05),
                                               (300, 60, 0.4)])
def test_ks_matches_scipy_ks_2samp_up_to_the_sketch(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n + m)
    reference, current = rng.normal(size=n), rng.normal(shift, 1, size=m)
    ours = KolmogorovSmirnov().fit(profile_of(reference).features["x"]).score(current)
    theirs = stats.ks_2samp(reference, current, method="asymp")
    # The reference CDF comes from a 1,001-point sketch, linear between points: D moves by at most
    # one reference step (1/n) plus one sketch step (1/1000).
    sketch_error = 1 / n + 1 / 1000
    assert abs(ours.statistic - theirs.statistic) <= sketch_error
    # The p-value is SciPy's own distribution at our D: the same function of D as ks_2samp's ...
    en = round(max(n, m) * min(n, m) / (n + m))
    assert ours.p_value == pytest.approx(stats.kstwo.sf(ours.statistic, en), rel=1e-12)
    # ... so it differs from scipy's only as much as D does.
    low = stats.kstwo.sf(theirs.statistic + sketch_error, en)
    high = stats.kstwo.sf(max(theirs.statistic - sketch_error, 0), en)
    assert low <= ours.p_value <= high
    assert abs(ours.p_value - theirs.pvalue) < 0.02


def test_ks_on_tied_values_reads_the_atoms_of_the_sketch() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.integers(0, 6, 4000), rng.integers(0, 6, 3000)
    ours = KolmogorovSmirnov().fit(profile_of(reference).features["x"]).score(current)
    theirs = stats.ks_2samp(reference, current, method="asymp")
    assert abs(ours.statistic - theirs.statistic) <= 1 / 1000 + 1 / 4000
    shifted = KolmogorovSmirnov().fit(profile_of(reference).features["x"]).score(np.minimum(current + 1, 5))
    assert shifted.drifted and abs(shifted.statistic - stats.ks_2samp(reference, np.minimum(current + 1, 5)).statistic) < 0.002


# -- Wasserstein against scipy -------------------------------------------------------------------


@pytest.mark.parametrize(("m", "shift", "scale"), [(5000, 0.0, 1.0), (5000, 0.3, 1.0), (800, 0.0, 2.0)])
def test_wasserstein_matches_scipy_normed_by_the_reference_std(m: int, shift: float, scale: float) -> None:
    rng = np.random.default_rng(11)
    reference = rng.normal(5, 2, 20_000)
    current = rng.normal(5 + shift * 2, 2 * scale, m)
    ours = Wasserstein().fit(profile_of(reference).features["x"]).score(current)
    theirs = stats.wasserstein_distance(reference, current) / reference.std(ddof=1)
    assert ours.statistic == pytest.approx(theirs, abs=0.01)
    assert ours.drifted == (theirs >= 0.1)


# -- chi-squared against scipy -------------------------------------------------------------------


def test_chi_squared_matches_chi2_contingency_and_chisquare() -> None:
    rng = np.random.default_rng(5)
    reference = rng.choice(list("abcd"), 1000, p=[0.4, 0.3, 0.2, 0.1])
    current = rng.choice(list("abcd"), 700, p=[0.35, 0.3, 0.2, 0.15])
    ours = ChiSquared().fit(profile_of(reference).features["x"]).score(current)
    table = pd.crosstab(np.r_[np.zeros(1000), np.ones(700)], np.r_[reference, current]).to_numpy()
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    assert (ours.statistic, ours.p_value) == (pytest.approx(statistic, rel=1e-10), pytest.approx(p_value, rel=1e-9))
    # The same homogeneity test is a goodness-of-fit test of all cells against their expected counts.
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    gof = stats.chisquare(table.ravel(), expected.ravel(), ddof=table.size - 1 - dof)
    assert ours.p_value == pytest.approx(gof.pvalue, rel=1e-9)


def test_unseen_categories_are_their_own_cells_or_join_the_pooled_rest() -> None:
    reference = ["a"] * 60 + ["b"] * 40
    current = ["a"] * 30 + ["b"] * 30 + ["zz"] * 10
    ours = ChiSquared().fit(profile_of(reference).features["x"]).score(current)
    statistic, p_value, *_ = stats.chi2_contingency(np.array([[60, 40, 0], [30, 30, 10]]), correction=False)
    assert (ours.statistic, ours.p_value) == (pytest.approx(statistic), pytest.approx(p_value))

    # A profile that pooled its rare categories counts unknown ones in the pool.
    pooled = profile_of(reference + ["c"] * 5 + ["d"] * 5, max_categories=2).features["x"]
    assert pooled.other == 10
    ours = ChiSquared().fit(pooled).score(current)
    statistic, p_value, *_ = stats.chi2_contingency(np.array([[60, 40, 10], [30, 30, 10]]), correction=False)
    assert (ours.statistic, ours.p_value) == (pytest.approx(statistic), pytest.approx(p_value))


# -- PSI and Jensen-Shannon by hand --------------------------------------------------------------


def test_psi_and_jensen_shannon_on_a_small_categorical_table() -> None:
    feature = profile_of(["a"] * 50 + ["b"] * 30 + ["c"] * 20).features["x"]
    current = ["a"] * 40 + ["b"] * 30 + ["c"] * 30
    # reference shares (.5, .3, .2), current (.4, .3, .3)
    psi = (0.4 - 0.5) * math.log(0.4 / 0.5) + 0 + (0.3 - 0.2) * math.log(0.3 / 0.2)
    assert PopulationStabilityIndex().fit(feature).score(current).statistic == pytest.approx(psi, rel=1e-12)
    mid = (0.45, 0.30, 0.25)
    kl_ref = 0.5 * math.log(0.5 / mid[0]) + 0.3 * math.log(0.3 / mid[1]) + 0.2 * math.log(0.2 / mid[2])
    kl_cur = 0.4 * math.log(0.4 / mid[0]) + 0.3 * math.log(0.3 / mid[1]) + 0.3 * math.log(0.3 / mid[2])
    js = math.sqrt((kl_ref + kl_cur) / 2)
    ours = JensenShannon().fit(feature).score(current).statistic
    assert ours == pytest.approx(js, rel=1e-12)
    assert ours == pytest.approx(jensenshannon([0.5, 0.3, 0.2], [0.4, 0.3, 0.3]), rel=1e-12)


def test_psi_on_numeric_deciles_with_empty_bins_uses_eps() -> None:
    feature = profile_of(np.arange(1000, dtype=float)).features["x"]
    assert feature.bin_counts.tolist() == [100] * 10
    current = np.arange(50, dtype=float)  # all in the first decile, nine empty bins
    eps = 1e-4
    psi = (1 - 0.1) * math.log(1 / 0.1) + 9 * (eps - 0.1) * math.log(eps / 0.1)
    assert PopulationStabilityIndex(eps=eps).fit(feature).score(current).statistic == pytest.approx(psi, rel=1e-12)
    # Jensen-Shannon needs no eps: an empty bin contributes nothing to its own side.
    expected = jensenshannon(np.full(10, 0.1), np.r_[1.0, np.zeros(9)])
    assert JensenShannon().fit(feature).score(current).statistic == pytest.approx(expected, rel=1e-12)


# -- error rates over repeated samples -----------------------------------------------------------


def test_p_value_tests_false_alarm_near_their_level_and_detect_shifts() -> None:
    rng = np.random.default_rng(2024)
    repeats, level = 200, 0.05
    ks_alarms = chi_alarms = 0
    categories, probs = np.array(list("abcde")), np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    for _ in range(repeats):
        ks = KolmogorovSmirnov(threshold=level).fit(profile_of(rng.normal(size=500)).features["x"])
        ks_alarms += ks.score(rng.normal(size=300)).drifted
        chi = ChiSquared(threshold=level).fit(profile_of(rng.choice(categories, 500, p=probs)).features["x"])
        chi_alarms += chi.score(rng.choice(categories, 300, p=probs)).drifted
    # Binomial(200, 0.05): 10 expected, 3..20 holds with probability > 99.5%.
    assert 3 <= ks_alarms <= 20, ks_alarms
    assert 3 <= chi_alarms <= 20, chi_alarms

    shifted_probs = np.array([0.2, 0.2, 0.2, 0.2, 0.2])
    ks_hits = chi_hits = 0
    for _ in range(50):
        ks = KolmogorovSmirnov().fit(profile_of(rng.normal(size=500)).features["x"])
        ks_hits += ks.score(rng.normal(0.5, 1, size=300)).drifted
        chi = ChiSquared().fit(profile_of(rng.choice(categories, 500, p=probs)).features["x"])
        chi_hits += chi.score(rng.choice(categories, 300, p=shifted_probs)).drifted
    assert ks_hits >= 45 and chi_hits >= 45, (ks_hits, chi_hits)


def test_distance_tests_stay_quiet_on_large_samples_and_flag_a_third_of_a_std() -> None:
    rng = np.random.default_rng(99)
    wasserstein_alarms = js_alarms = 0
    for _ in range(20):
        reference = rng.normal(size=5000)
        w = Wasserstein().fit(profile_of(reference).features["x"])
        wasserstein_alarms += w.score(rng.normal(size=5000)).drifted
        assert w.score(rng.normal(0.3, 1, size=5000)).drifted
        cats = rng.choice(list("abcdefghij"), 5000)
        js = JensenShannon().fit(profile_of(cats).features["x"])
        js_alarms += js.score(rng.choice(list("abcdefghij"), 5000)).drifted
    assert wasserstein_alarms == 0 and js_alarms == 0


def test_pandas_categoricals_and_booleans_count_like_the_profile() -> None:
    feature = profile_of(["a"] * 60 + ["b"] * 40).features["x"]
    current = pd.Series(pd.Categorical(["a"] * 50 + ["b"] * 50, categories=["a", "b", "never-used"]))
    sample = ColumnSample.from_values(current, "categorical")
    assert sorted(sample.categories) == ["a", "b"] and sample.counts.sum() == 100
    assert ChiSquared().fit(feature).score(current).p_value == pytest.approx(
        stats.chi2_contingency(np.array([[60, 40], [50, 50]]), correction=False)[1])
    flags = profile_of(np.array([True] * 70 + [False] * 30)).features["x"]
    assert flags.kind == "categorical"
    assert JensenShannon().fit(flags).score(np.array([True] * 70 + [False] * 30)).statistic == pytest.approx(0)
