"""Fairness and ModelCard panels (shown when workbench.governance is installed)."""

from __future__ import annotations

import numpy as np
import panel as pn
import pytest

import workbench as wb
from workbench.widgets import governance_available

from driving import control, errors_shown, shown_text

pytestmark = pytest.mark.skipif(not governance_available(), reason="workbench.governance does not import")


@pytest.fixture(scope="module")
def logged_report(two_versions, numeric_data):
    first, _ = two_versions
    X, y = numeric_data
    predicted = wb.load_model(first.uri).predict(X)
    group = np.where(X["x0"] > 0, "over", "under")
    return wb.fairness_report(y, predicted, sensitive_features=group, attribute="band", model_uri=first.uri, log=True)


def test_fairness_shows_the_reports_logged_on_the_version(two_versions, logged_report) -> None:
    from workbench.widgets import Fairness

    first, _ = two_versions
    widget = Fairness(model_uri=first.uri)
    assert widget.wait(60)
    assert widget.attribute == "band"
    groups = control(widget, pn.widgets.Tabulator, "groups").value
    assert sorted(groups["band"]) == ["over", "under"]
    shown = shown_text(widget)
    assert f"{logged_report.demographic_parity_difference:.3f}" in shown
    bars = widget._rates.sources["bars"].data
    assert len(bars["value"]) == 2 * 4  # two groups, four rates each


def test_fairness_says_how_to_log_a_report_when_there_is_none(two_versions) -> None:
    from workbench.widgets import Fairness

    _, second = two_versions
    widget = Fairness(model_uri=second.uri)
    widget.wait(60)
    assert "No fairness report" in shown_text(widget) and "log=True" in shown_text(widget)


def test_reports_made_in_the_notebook_can_be_shown_directly(logged_report) -> None:
    from workbench.widgets import Fairness

    widget = Fairness(reports=[logged_report])
    widget.wait(60)
    assert widget.attribute == "band" and errors_shown(widget) == []


def test_the_model_card_is_shown_and_downloads_as_html(two_versions) -> None:
    from workbench.widgets import ModelCard

    first, _ = two_versions
    widget = ModelCard(model_uri=first.uri)
    assert widget.wait(120)
    assert errors_shown(widget) == []
    assert widget.card.title == f"Model card: {first.name} version {first.version}"
    assert widget.card.title in shown_text(widget)
    download = control(widget, pn.widgets.FileDownload, "Download HTML")
    assert download.filename == f"model-card-{first.name}-{first.version}.html"
    body = download.callback().read().decode()
    assert body.startswith("<!DOCTYPE html>") and widget.card.title in body
