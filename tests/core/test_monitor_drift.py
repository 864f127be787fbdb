"""Drift of whole tables: test choice, corrections, dataset verdicts, the multivariate test, reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import workbench as wb
from workbench.errors import MonitoringError
from workbench.monitor import DriftDetector, DriftReport, DriftSettings, adjust_p_values, detect_drift
from workbench.profile import ReferenceProfile


def table(n: int, rng: np.random.Generator, shift: float = 0.0, shifted: int = 3) -> pd.DataFrame:
    data = {f"n{i}": rng.normal(shift if i < shifted else 0.0, 1.0, n) for i in range(8)}
    for j in range(2):
        data[f"c{j}"] = rng.choice([f"level{k}" for k in range(10)], n)
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return ReferenceProfile.from_data(table(20_000, np.random.default_rng(0)))


def test_defaults_follow_the_sample_size_like_evidently(reference) -> None:
    rng = np.random.default_rng(1)
    large = detect_drift(reference, table(5000, rng), multivariate=False)
    assert {f.feature: f.test for f in large.features} == {
        **{f"n{i}": "wasserstein" for i in range(8)}, "c0": "jensenshannon", "c1": "jensenshannon"}
    # The smaller side decides: a 1,000-row window against a 20,000-row reference is small.
    small = detect_drift(reference, table(1000, rng), multivariate=False)
    assert {f.test for f in small.features} == {"ks", "chisquare"}
    assert all(f.p_value is not None and f.p_value_adjusted is not None for f in small.features)
    # Every choice is a setting.
    chosen = detect_drift(reference, table(5000, rng), numeric_test="psi", categorical_test="chisquare",
                          feature_tests={"n0": "ks"}, thresholds={"psi": 0.2}, multivariate=False)
    assert chosen["n0"].test == "ks" and chosen["n1"].test == "psi" and chosen["n1"].threshold == 0.2
    assert chosen["c0"].test == "chisquare"


def test_exactly_the_shifted_columns_are_flagged_and_the_share_decides_the_dataset(reference) -> None:
    rng = np.random.default_rng(2)
    report = detect_drift(reference, table(5000, rng, shift=0.3), multivariate=False)
    assert report.drifted_features == ["n0", "n1", "n2"]
    assert report.share_drifted == pytest.approx(3 / 10)
    assert not report.dataset_drifted and not report.drifted
    assert detect_drift(reference, table(5000, rng, shift=0.3), drift_share=0.3, multivariate=False).drifted
    many = detect_drift(reference, table(5000, rng, shift=0.3, shifted=6), multivariate=False)
    assert many.n_drifted == 6 and many.dataset_drifted


def test_p_values_are_corrected_for_testing_many_features() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.20, 0.002])
    assert adjust_p_values(p, "bh") == pytest.approx(stats.false_discovery_control(p, method="bh"))
    assert adjust_p_values(p, "bonferroni") == pytest.approx(np.minimum(p * 5, 1))
    assert adjust_p_values(p, "none") == pytest.approx(p)

    rng = np.random.default_rng(3)
    profile = ReferenceProfile.from_data(pd.DataFrame({f"x{i}": rng.normal(size=400) for i in range(20)}))
    current = pd.DataFrame({f"x{i}": rng.normal(0.25 if i == 0 else 0, 1, size=300) for i in range(20)})
    raw = detect_drift(profile, current, correction="none", multivariate=False)
    for method in ("bh", "bonferroni"):
        corrected = detect_drift(profile, current, correction=method, multivariate=False)
        expected = adjust_p_values([f.p_value for f in raw.features], method)
        assert [f.p_value_adjusted for f in corrected.features] == pytest.approx(expected)
        assert [f.drifted for f in corrected.features] == [p < 0.05 for p in expected]
        assert corrected.n_drifted <= raw.n_drifted


def test_no_drift_tables_rarely_alarm_with_the_correction() -> None:
    rng = np.random.default_rng(4)
    alarms = 0
    for _ in range(40):
        profile = ReferenceProfile.from_data(table(500, rng))
        alarms += detect_drift(profile, table(300, rng), multivariate=False).n_drifted > 0
    # Benjamini-Hochberg under no drift holds the chance of any false alarm near 5%.
    assert alarms <= 6


def test_missing_values_and_unseen_categories_are_reported(reference) -> None:
    rng = np.random.default_rng(5)
    current = table(3000, rng)
    current.loc[: 899, "n3"] = np.nan
    current.loc[: 299, "c1"] = "brand-new"
    current = current.drop(columns=["n7"])
    report = detect_drift(reference, current, multivariate=False)
    n3, c1, n7 = report["n3"], report["c1"], report["n7"]
    assert n3.current_missing_rate == pytest.approx(0.3) and n3.reference_missing_rate == 0
    assert n3.missing_rate_jump and n3.current_count == 2100 and not n3.drifted  # values themselves unchanged
    assert c1.unseen_categories == ("brand-new",) and c1.unseen_share == pytest.approx(0.1)
    assert c1.drifted  # a tenth of the values in a category the reference never had
    assert n7.test is None and "missing" in n7.note and not n7.drifted
    assert report.n_drifted == 1


def test_the_multivariate_test_catches_a_correlation_no_single_column_shows() -> None:
    rng = np.random.default_rng(6)
    n = 6000
    independent = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "x3": rng.normal(size=n)})
    profile = ReferenceProfile.from_data(independent)
    correlated = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=4000)
    current = pd.DataFrame({"x1": correlated[:, 0], "x2": correlated[:, 1], "x3": rng.normal(size=4000)})

    report = detect_drift(profile, current)
    assert report.n_drifted == 0  # every marginal is still N(0, 1)
    mv = report.multivariate
    assert mv is not None and mv.drifted and report.drifted
    assert mv.statistic > 0.6 and mv.p_value < 1e-6
    assert set(mv.top_features[:2]) == {"x1", "x2"}
    # Same joint distribution: no alarm.
    calm = detect_drift(profile, pd.DataFrame({c: rng.normal(size=4000) for c in ("x1", "x2", "x3")}))
    assert calm.multivariate is not None and not calm.multivariate.drifted and not calm.drifted
    assert 0.45 < calm.multivariate.statistic < 0.55



def test_the_multivariate_culprits_name_category_and_number_columns_alike() -> None:
    # The classifier keeps category columns first internally, and only the columns its trees use are
    # ranked; the culprits are still named by the table's own columns (a category column listed after
    # the numbers and after columns no tree can use, and a number).
    rng = np.random.default_rng(7)

    def frame(n: int, shifted: bool) -> pd.DataFrame:
        data = {f"n{i}": rng.normal(0.0, 1.0, n) + (1.0 if shifted and i == 3 else 0.0) for i in range(4)}
        data |= {f"k{i}": np.full(n, float(i)) for i in range(6)}
        data["c0"] = rng.choice(["a", "b", "c"], n)
        data["c1"] = rng.choice(["a", "b", "c"], n, p=[0.1, 0.2, 0.7] if shifted else [0.7, 0.2, 0.1])
        return pd.DataFrame(data)

    report = detect_drift(ReferenceProfile.from_data(frame(4000, False)), frame(3000, True))
    assert report.multivariate is not None and report.multivariate.drifted
    assert set(report.multivariate.top_features[:2]) == {"c1", "n3"}

def test_reports_render_as_frames_json_and_notebook_tables(reference) -> None:
    report = detect_drift(reference, table(2000, np.random.default_rng(7), shift=0.5))
    assert isinstance(report, DriftReport)
    frame = report.to_frame()
    assert list(frame["feature"]) == [f"n{i}" for i in range(8)] + ["c0", "c1"]
    assert {"test", "statistic", "p_value", "p_value_adjusted", "threshold", "drifted"} <= set(frame.columns)
    data = json.loads(report.to_json())
    assert data["dataset"]["share_drifted"] == report.share_drifted
    assert data["dataset"]["multivariate"]["test"] == "domain_classifier"
    assert [f["feature"] for f in data["features"] if f["drifted"]] == report.drifted_features
    assert data["features"][0]["distance"] == report.features[0].statistic
    html = report._repr_html_()
    assert "<table" in html and "n0" in html and "drift" in html
    with pytest.raises(AttributeError):
        report.share_drifted = 0.0  # type: ignore[misc]


def test_a_model_uri_reference_uses_its_logged_profile(registered_model, numeric_data) -> None:
    X, _ = numeric_data
    shifted = X.assign(x0=X["x0"] + 2 * X["x0"].std())
    report = wb.detect_drift("models:/fixture-rf@champion", shifted, multivariate=False)
    assert report.drifted_features == ["x0"]
    assert report.n_reference == len(X)


def test_reports_log_to_mlflow(reference) -> None:
    report = detect_drift(reference, table(2000, np.random.default_rng(8), shift=0.4), multivariate=False)
    run_id = report.log_to_mlflow(experiment="monitor-tests")
    run = wb.get_run(run_id)
    assert run.metrics["drift.share_drifted"] == pytest.approx(0.3)
    assert run.metrics["drift.n0.wasserstein"] == pytest.approx(report["n0"].statistic)
    assert run.metrics["drift.n0.drifted"] == 1.0 and run.metrics["drift.n5.drifted"] == 0.0
    from workbench import _mlflow

    artifacts = [a.path for a in _mlflow.client().list_artifacts(run_id, "monitoring")]
    assert artifacts == ["monitoring/DriftReport.json"]
    # Into the active run when there is one.
    with wb.start_run(experiment="monitor-tests") as active:
        assert report.log_to_mlflow() == active.info.run_id


def test_settings_and_misuse_fail_with_advice(reference) -> None:
    with pytest.raises(MonitoringError, match="unknown drift test 'kss'"):
        DriftSettings(numeric_test="kss")
    with pytest.raises(MonitoringError, match="not fitted"):
        DriftDetector().score(table(10, np.random.default_rng(0)))
    with pytest.raises(MonitoringError, match="has no feature"):
        DriftDetector(DriftSettings(columns=("nope",))).fit(reference)
    with pytest.raises(MonitoringError, match="none of the reference features"):
        DriftDetector(DriftSettings(multivariate=False)).fit(reference).score(pd.DataFrame({"z": [1.0]}))
