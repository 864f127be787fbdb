"""Data-quality checks and outlier scores of incoming rows against the reference profile."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MonitoringError
from workbench.monitor import OutlierDetector, check_quality
from workbench.profile import ReferenceProfile


@pytest.fixture(scope="module")
def mixed() -> tuple[ReferenceProfile, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame({
        "amount": rng.normal(100, 15, n),
        "count": rng.integers(0, 20, n),
        "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
        "region": rng.choice(["north", "south"], n),
    })
    frame.loc[rng.random(n) < 0.02, "amount"] = np.nan
    return ReferenceProfile.from_data(frame), frame


def test_clean_data_has_no_issues(mixed) -> None:
    profile, frame = mixed
    report = check_quality(profile, frame.sample(500, random_state=1))
    assert report.ok and report.issues == () and "no data-quality issues" in report.summary()


def test_schema_violations_new_categories_and_missing_rate_jumps(mixed) -> None:
    profile, frame = mixed
    current = frame.sample(1000, random_state=2).reset_index(drop=True)
    current = current.drop(columns=["region"]).assign(extra=1, request_id="r")
    current["count"] = current["count"].astype(str)
    current.loc[:9, "count"] = "many"
    current.loc[:99, "plan"] = "trial"
    current.loc[:399, "amount"] = np.nan
    report = check_quality(profile, current, ignore=["request_id"])
    found = {(i.check, i.feature): i for i in report.issues}
    assert set(found) == {("missing_column", "region"), ("extra_column", "extra"), ("wrong_type", "count"),
                          ("new_category", "plan"), ("missing_rate", "amount")}
    assert found[("missing_column", "region")].severity == "error"
    assert found[("wrong_type", "count")].severity == "error"
    assert "10 values are not numbers" in found[("wrong_type", "count")].detail
    assert found[("wrong_type", "count")].value == pytest.approx(0.01)
    assert found[("new_category", "plan")].value == pytest.approx(0.1) and "'trial'" in found[("new_category", "plan")].detail
    assert found[("missing_rate", "amount")].value == pytest.approx(0.4 + 0.6 * 0.02, abs=0.01)
    assert not report.ok and len(report.errors) == 2
    assert list(report.to_frame()["check"]) == [i.check for i in report.issues]
    assert json.loads(report.to_json())["issues"][0]["check"] == "missing_column"
    assert "<table" in report._repr_html_()
    # A tolerance is a setting: a 40% missing rate is fine when 50% is tolerated.
    tolerant = check_quality(profile, current, missing_rate_tolerance=0.5, ignore=["request_id"])
    assert ("missing_rate", "amount") not in {(i.check, i.feature) for i in tolerant.issues}


def test_outlier_scores_flag_about_the_chosen_share_and_the_odd_rows(mixed) -> None:
    profile, frame = mixed
    detector = OutlierDetector(contamination=0.02)
    with pytest.raises(MonitoringError, match="not fitted"):
        detector.score(frame)
    assert detector.fit(profile) is detector

    rng = np.random.default_rng(3)
    ordinary = frame.sample(2000, random_state=3)
    report = detector.score(ordinary)
    assert report.expected_share == 0.02
    assert 0.005 <= report.share <= 0.05  # close to the contamination on reference-like rows
    odd = pd.DataFrame({
        "amount": rng.normal(100, 15, 20) + 120,      # eight standard deviations away
        "count": rng.integers(0, 20, 20),
        "plan": ["enterprise"] * 20,                   # a category never seen
        "region": rng.choice(["north", "south"], 20),
    })
    mixed_rows = pd.concat([ordinary.head(200), odd], ignore_index=True)
    scored = detector.score(mixed_rows)
    assert scored.is_outlier[200:].all()
    assert scored.scores[200:].min() > np.median(scored.scores[:200])
    frame_out = scored.to_frame()
    assert list(frame_out.columns) == ["score", "outlier"] and len(frame_out) == 220
    assert json.loads(scored.to_json())["n_outliers"] == scored.n_outliers
