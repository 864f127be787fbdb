"""Group fairness: fairlearn's numbers, as a report, logged to the version's run and read back."""

from __future__ import annotations

import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.governance import FairnessReport, logged_fairness

N = 2000


@pytest.fixture(scope="module")
def decisions() -> pd.DataFrame:
    """Loan decisions that favour one group: true labels, predictions, and two sensitive attributes."""
    rng = np.random.default_rng(21)
    sex = rng.choice(["female", "male"], N, p=[0.4, 0.6])
    race = rng.choice(["a", "b", "c"], N)
    truth = rng.random(N) < 0.5
    # The model approves more men, and errs differently per group.
    approve = np.where(sex == "male", rng.random(N) < np.where(truth, 0.9, 0.3), rng.random(N) < np.where(truth, 0.7, 0.1))
    return pd.DataFrame({"sex": sex, "race": race, "y_true": truth.astype(int), "y_pred": approve.astype(int)})


def test_the_numbers_are_fairlearns_own(decisions: pd.DataFrame) -> None:
    report = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"])
    expected = MetricFrame(
        metrics={"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
                 "false_positive_rate": false_positive_rate, "accuracy": accuracy_score},
        y_true=decisions["y_true"], y_pred=decisions["y_pred"], sensitive_features=decisions["sex"])
    groups = report.to_frame().set_index("sex")
    pd.testing.assert_frame_equal(groups[list(expected.by_group.columns)], expected.by_group, check_names=False)
    assert groups["count"].to_dict() == decisions["sex"].value_counts().to_dict()
    assert groups["positives"].to_dict() == decisions.groupby("sex")["y_true"].sum().to_dict()
    kwargs = {"sensitive_features": decisions["sex"]}
    y_true, y_pred = decisions["y_true"], decisions["y_pred"]
    assert report.demographic_parity_difference == demographic_parity_difference(y_true, y_pred, **kwargs)
    assert report.demographic_parity_ratio == demographic_parity_ratio(y_true, y_pred, **kwargs)
    assert report.equalized_odds_difference == equalized_odds_difference(y_true, y_pred, **kwargs)
    assert report.equalized_odds_ratio == equalized_odds_ratio(y_true, y_pred, **kwargs)
    assert report.overall["selection_rate"] == pytest.approx(y_pred.mean())
    # the disparity the data was built with shows
    assert report.demographic_parity_difference > 0.15
    assert report.attribute == "sex" and report.n_rows == N and report.groups == ["female", "male"]


def test_a_favourable_label_other_than_1_is_counted_as_positive(decisions: pd.DataFrame) -> None:
    words = {1: "approved", 0: "denied"}
    as_words = wb.fairness_report(decisions["y_true"].map(words), decisions["y_pred"].map(words), decisions["sex"],
                                  pos_label="approved")
    as_numbers = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"])
    pd.testing.assert_frame_equal(as_words.to_frame(), as_numbers.to_frame())
    assert as_words.demographic_parity_difference == as_numbers.demographic_parity_difference
    assert as_words.pos_label == "approved"
    denied = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"], pos_label=0)
    assert denied.to_frame()["selection_rate"].tolist() == pytest.approx(
        (1 - as_numbers.to_frame()["selection_rate"]).tolist())


def test_intersected_attributes_give_one_group_per_combination(decisions: pd.DataFrame) -> None:
    report = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions[["sex", "race"]])
    assert report.attribute == "sex+race" and len(report.by_group) == 6
    assert report.groups[0] == "female|a"
    expected = demographic_parity_difference(decisions["y_true"], decisions["y_pred"],
                                             sensitive_features=decisions[["sex", "race"]])
    assert report.demographic_parity_difference == expected


def test_a_report_is_a_table_json_and_html(decisions: pd.DataFrame) -> None:
    report = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"])
    again = FairnessReport.from_dict(report.to_dict())
    pd.testing.assert_frame_equal(again.to_frame(), report.to_frame(), check_dtype=False)
    assert again.disparities() == report.disparities()
    assert report.summary().startswith(f"sex: 2 groups over {N} rows; demographic parity difference "
                                       f"{report.demographic_parity_difference:.3f}")
    assert "<table" in report._repr_html_() and "false_positive_rate" in report._repr_html_()


def test_logging_puts_the_numbers_on_the_versions_run_and_they_read_back(decisions, numeric_data) -> None:
    X, y = numeric_data
    with wb.start_run(experiment="governance-tests"):
        logged = wb.log_model(LogisticRegression().fit(X, y), training_data=X, training_labels=y)
    version = wb.register(logged, f"gov-fair-{uuid.uuid4().hex[:6]}")
    report = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"],
                                model_uri=version.uri, log=True)
    metrics = wb.get_run(version.run_id).metrics
    assert metrics["fairness.sex.demographic_parity_difference"] == pytest.approx(report.demographic_parity_difference)
    assert metrics["fairness.sex.equalized_odds_ratio"] == pytest.approx(report.equalized_odds_ratio)
    male = report.to_frame().set_index("sex").loc["male"]
    assert metrics["fairness.sex.male.true_positive_rate"] == pytest.approx(male["true_positive_rate"])
    (read_back,) = logged_fairness(version.uri)
    assert read_back.disparities() == pytest.approx(report.disparities())
    pd.testing.assert_frame_equal(read_back.to_frame(), report.to_frame(), check_dtype=False)


def test_logging_without_a_model_uses_the_active_run_or_says_what_to_give(decisions) -> None:
    report = wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"])
    with pytest.raises(InvalidInputError, match="no run to log the fairness report to"):
        report.log_to_mlflow()
    with wb.start_run(experiment="governance-tests") as run:
        assert report.log_to_mlflow() == run.info.run_id
    assert "fairness.sex.demographic_parity_ratio" in wb.get_run(run.info.run_id).metrics
    assert mlflow.active_run() is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: (d["y_true"], d["y_pred"].head(10), d["sex"]), "one value per row: got 2000, 10 and 2000"),
    (lambda d: (d["y_true"], d["y_pred"], d["sex"].where(d.index > 5)), "sensitive_features has missing values"),
    (lambda d: (d["y_true"], d["y_pred"] * 0.3 + 0.1 * d["y_true"], d["sex"]), "give predicted labels"),
    (lambda d: (d["y_true"], d["y_pred"], d["sex"].iloc[:0]), "one value per row"),
])
def test_unusable_input_is_refused_with_advice(decisions, change, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        wb.fairness_report(*change(decisions))


def test_a_favourable_label_that_never_occurs_is_refused(decisions) -> None:
    with pytest.raises(InvalidInputError, match="pos_label='yes' is not among the labels"):
        wb.fairness_report(decisions["y_true"], decisions["y_pred"], decisions["sex"], pos_label="yes")
