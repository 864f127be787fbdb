"""ExperimentBrowser: runs load in pages, filter, pick runs to compare, curves and scatter."""

from __future__ import annotations

import io
import uuid

import mlflow
import panel as pn
import pytest

import workbench as wb
from workbench.widgets import ExperimentBrowser, progress

from driving import control, errors_shown, shown_text

N_RUNS = 25


@pytest.fixture(scope="module")
def experiment() -> str:
    """An experiment of 25 runs: a loss over 4 steps, an accuracy, a numeric and a text parameter."""
    name = f"browser-{uuid.uuid4().hex[:6]}"
    for i in range(N_RUNS):
        with wb.start_run(experiment=name, run_name=f"trial-{i:02d}"):
            mlflow.log_params({"depth": i % 5 + 1, "kind": "tree" if i % 2 else "linear"})
            for step in range(4):
                mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            mlflow.log_metric("accuracy", 0.5 + i / 100)
    return name


def test_runs_load_page_by_page_into_a_server_paged_table(experiment: str) -> None:
    browser = ExperimentBrowser(experiment=experiment, page_size=10)
    assert browser.wait(60)
    assert browser.loaded == N_RUNS
    table = control(browser, pn.widgets.Tabulator, "runs")
    assert len(table.value) == N_RUNS
    assert table.pagination == "remote"  # only the rows on screen go to the browser
    assert {"metrics.accuracy", "metrics.loss", "params.depth", "params.kind"} <= set(table.value.columns)
    assert f"{N_RUNS} runs" in shown_text(browser)
    # Defaults: the first metric and parameter, drawn against each other over every run.
    assert (browser.metric, browser.x_param) == ("accuracy", "depth")
    assert len(browser._scatter.sources["points"].data["x"]) == N_RUNS


def test_the_filter_goes_to_mlflow(experiment: str) -> None:
    browser = ExperimentBrowser(experiment=experiment)
    browser.wait(60)
    control(browser, pn.widgets.TextInput, "Filter (MLflow search syntax)").value = "params.kind = 'tree'"
    assert browser.wait(60)
    assert browser.loaded == N_RUNS // 2
    assert set(browser.runs["params.kind"]) == {"tree"}


def test_ticked_runs_are_compared_side_by_side_with_their_curves(experiment: str) -> None:
    browser = ExperimentBrowser(experiment=experiment)
    browser.wait(60)
    table = control(browser, pn.widgets.Tabulator, "runs")
    table.selection = [0, 1, 2]
    assert browser.wait(60)
    picked = browser.runs["run_id"].iloc[[0, 1, 2]].tolist()
    assert browser.selected_runs == picked
    comparison = control(browser, pn.widgets.Tabulator, "comparison").value
    assert len(comparison.columns) == 3 and "metrics.accuracy" in comparison.index
    browser.metric = "loss"
    browser.wait(60)
    curves = browser._curves.sources["lines"].data
    assert len(curves["xs"]) == 3 and all(list(xs) == [0, 1, 2, 3] for xs in curves["xs"])
    # Picking from code ticks the rows.
    browser.selected_runs = [picked[0]]
    browser.wait(60)
    assert table.selection == [0]


def test_a_text_parameter_gets_one_column_of_points_per_value(experiment: str) -> None:
    browser = ExperimentBrowser(experiment=experiment)
    browser.wait(60)
    browser.x_param = "kind"
    axis = browser._scatter.figure.xaxis[0]
    assert axis.major_label_overrides == {0: "linear", 1: "tree"}
    xs = browser._scatter.sources["points"].data["x"]
    assert all(-0.5 < x < 1.5 for x in xs)


@pytest.mark.parametrize("value", [3, "gini"], ids=["numeric", "text"])
def test_runs_without_the_parameter_are_left_out_of_the_scatter(value, capsys) -> None:
    name = f"browser-mixed-{uuid.uuid4().hex[:6]}"
    for i, params in enumerate(({"depth": value}, {"depth": value}, {"C": 1.0})):  # the last run has no depth
        with wb.start_run(experiment=name, run_name=f"mixed-{i}"):
            mlflow.log_params(params)
            mlflow.log_metric("accuracy", 0.7 + i / 10)
    browser = ExperimentBrowser(experiment=name, metric="accuracy")
    assert browser.wait(60)
    browser.x_param = "depth"
    assert "Traceback" not in capsys.readouterr().err
    assert len(browser._scatter.sources["points"].data["x"]) == 2
    assert browser._scatter.figure.title.text == "accuracy vs depth (2 runs)"


def test_an_unknown_experiment_shows_the_error_with_advice() -> None:
    browser = ExperimentBrowser(experiment="no-such-experiment-xyz")
    browser.wait(60)
    assert any("no experiment named 'no-such-experiment-xyz'" in e for e in errors_shown(browser))
    assert not browser.loaded


def test_loading_from_plain_python_shows_a_text_progress_bar(experiment: str) -> None:
    out = io.StringIO()
    runs = progress.load_runs(experiment, page_size=10, file=out)
    assert len(runs) == N_RUNS
    assert f"{N_RUNS}run" in out.getvalue().replace(" ", "") or f"{N_RUNS} run" in out.getvalue()


def test_it_renders_as_an_ipywidget_for_other_notebook_front_ends(experiment: str) -> None:
    from jupyter_bokeh import BokehModel

    widget = pn.ipywidget(ExperimentBrowser(experiment=experiment))
    assert isinstance(widget, BokehModel)
