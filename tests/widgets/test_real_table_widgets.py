"""DriftMonitor and Explanations on a real table: gaps, nullable types, categories, datetimes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from support import real_table, real_table_pipeline

import workbench as wb
from workbench.widgets import DriftMonitor, Explanations

from driving import errors_shown, shown_text


@pytest.fixture(scope="module")
def real_deployment() -> Iterator[tuple[wb.Deployment, wb.ModelVersion]]:
    features, _, cheated = real_table()
    model = real_table_pipeline().fit(features, cheated)
    with wb.start_run(experiment="widget-tests", run_name="real-table"):
        logged = wb.log_model(model, training_data=features, training_labels=cheated)
    version = wb.register(logged, f"widgets-real-{uuid.uuid4().hex[:5]}")
    deployment = wb.deploy(version.uri, target="local", name=version.name)
    yield deployment, version
    wb.stop(deployment.name)


def test_the_drift_monitor_tests_every_column_of_unshifted_traffic(real_deployment) -> None:
    deployment, _ = real_deployment
    features, _, _ = real_table()
    deployment.predict(features.sample(400, random_state=3))
    monitor = DriftMonitor(deployment=deployment.name, live=False)
    monitor.refresh()
    assert monitor.wait(120)
    assert monitor.rows == 400 and monitor.report.drift.drifted_features == []
    shown = shown_text(monitor)
    assert f"0 of {features.shape[1]}** features drifted" in shown
    for column in features.columns:
        assert f"<td>{column}</td>" in shown
    assert "no non-missing values" not in shown and errors_shown(monitor) == []
    # One verdict everywhere: the history drawn (the day's summaries, this window's rows and nothing
    # else) tests every column as the live window does, each statistic within its stated bound.
    period = monitor.history.report
    assert period is not None and period.n_current == 400 and period.drifted_features == []
    for live, summarised in zip(monitor.report.drift.features, period.features, strict=True):
        assert (summarised.feature, summarised.test) == (live.feature, live.test)
        assert summarised.drifted == live.drifted and summarised.current_missing_rate == live.current_missing_rate
        if live.test is not None:
            assert abs(summarised.statistic - live.statistic) <= summarised.error + 1e-9, live.feature


def test_explanations_show_rows_with_gaps_in_text_and_numbers(real_deployment) -> None:
    _, version = real_deployment
    widget = Explanations(model_uri=version.uri, n_rows=12)
    assert widget.wait(180)
    assert errors_shown(widget) == []
    local = widget.local_explanation
    assert len(local) == 12 and local.additive
    assert local.features == list(real_table()[0].columns)
    assert local.data["husband job"].isna().any() or local.data["religious"].isna().any()
