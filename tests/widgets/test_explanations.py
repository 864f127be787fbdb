"""Explanations: one prediction as a waterfall or bars, global importance and dependence."""

from __future__ import annotations

import pandas as pd
import panel as pn
import pytest

from workbench.widgets import Explanations
from workbench.widgets.explanations import waterfall_steps

from driving import control, errors_shown, shown_text


@pytest.fixture(scope="module")
def explained(registered_model) -> Explanations:
    widget = Explanations(model_uri=registered_model.uri, n_rows=20)
    assert widget.wait(120)
    return widget


def test_rows_of_the_reference_sample_are_explained(explained: Explanations) -> None:
    local = explained.local_explanation
    assert len(local) == 20 and local.additive
    rows = control(explained, pn.widgets.Tabulator, "explained rows").value
    assert len(rows) == 20 and {"prediction", "base_value", "x0"} <= set(rows.columns)
    assert "the reference sample" in shown_text(explained)
    assert errors_shown(explained) == []


def test_the_waterfall_goes_from_the_base_value_to_the_prediction(explained: Explanations) -> None:
    explained.row = 3
    steps = explained._local.sources["steps"].data
    local = explained.local_explanation
    assert steps["start"][0] == pytest.approx(local.base_values[3])
    assert steps["end"][-1] == pytest.approx(local.predictions[3], abs=1e-6)
    assert control(explained, pn.widgets.Tabulator, "explained rows").selection == [3]


def test_the_bar_view_shows_each_contribution_with_its_sign(explained: Explanations) -> None:
    explained.plot = "bar"
    bars = explained._local_bars.sources["bars"].data
    assert explained._bars_box.visible and not explained._waterfall_box.visible
    assert len(bars["value"]) == 6
    for value, color in zip(bars["value"], bars["color"], strict=True):
        assert (color == "#d62728") == (value > 0)
    explained.plot = "waterfall"


def test_global_importance_and_dependence(explained: Explanations) -> None:
    importance = explained.global_explanation.importance
    bars = explained._importance.sources["bars"].data
    assert bars["label"][-1] == importance["feature"].iloc[0]  # the most important at the top
    assert explained.feature == importance["feature"].iloc[0]
    explained.feature = "x1"
    points = explained._dependence.sources["points"].data
    assert len(points["x"]) == explained.global_explanation.n_rows


def test_waterfall_steps_sum_the_small_contributions() -> None:
    row = pd.DataFrame({"feature": [f"f{i}" for i in range(12)], "value": range(12),
                        "contribution": [0.5, -0.3] + [0.01] * 10})
    steps = waterfall_steps(row, base_value=0.2, top=3)
    assert steps["label"][0] == "9 other features" and steps["label"][-1] == "f0 = 0"
    assert steps["end"][-1] == pytest.approx(0.2 + 0.5 - 0.3 + 0.1)


def test_a_deployment_is_explained_on_its_latest_predictions(live_deployment, numeric_data) -> None:
    X, _ = numeric_data
    live_deployment.predict(X.tail(30))
    widget = Explanations(deployment=live_deployment.name, n_rows=10)
    assert widget.wait(120)
    assert errors_shown(widget) == []
    assert len(widget.local_explanation) == 10
    assert f"the latest 10 predictions of {live_deployment.name}" in shown_text(widget)
    shift = control(widget, pn.widgets.Tabulator, "importance shift")
    assert shift.visible and len(shift.value) == 6


def test_a_wide_model_shows_its_top_features_the_rest_summed_and_a_legend_naming_the_class(
        explained: Explanations) -> None:
    """30 features in 200 px were unreadable (issue 33 item 6): the top ones, the rest in one bar."""
    from workbench.widgets.explanations import importance_bars

    importance = pd.DataFrame({"feature": [f"f{i}" for i in range(30)],
                               "mean_abs_contribution": [1.0 / (i + 1) for i in range(30)]})
    bars = importance_bars(importance, 15)
    assert bars["label"][::-1][:3] == ["f0", "f1", "f2"] and len(bars["label"]) == 16
    assert bars["label"][0] == "15 other features (summed)"
    assert bars["value"][0] == pytest.approx(sum(1.0 / (i + 1) for i in range(15, 30)))
    shown = shown_text(explained)
    assert "raises the probability of" in shown and "lowers the probability of" in shown
    assert "Base value" in shown and "average probability of class" in shown
