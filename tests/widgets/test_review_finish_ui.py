"""The review app as a team demos it (issue 33), in Debian's Chromium at 1500x950.

One ``workbench review`` serves the module. Every page and tab opens with a quiet console (no
warning, no error: :class:`support.Watched`), no plot without data (an empty state says what will
appear and how), status lines in words, the internal snapshot experiment out of the way, and
explanations that can be read. Screenshots of every tab go to /tmp/shots-demo/.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import workbench as wb
from support import Watched, start_review, stop_process

SHOTS = Path("/tmp/shots-demo")

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def demo_model(numeric_data) -> wb.ModelVersion:
    """Two runs of one experiment (a param and a metric each, a snapshot logged), the second
    registered @champion: what a team has before a demo."""
    import mlflow
    from sklearn.ensemble import RandomForestClassifier

    X, y = numeric_data
    experiment = f"demo-{uuid.uuid4().hex[:5]}"
    name = f"demo-model-{uuid.uuid4().hex[:5]}"
    for depth in (2, 4):
        with wb.start_run(experiment=experiment, run_name=f"forest-depth-{depth}"):
            model = RandomForestClassifier(n_estimators=10, max_depth=depth, random_state=0).fit(X, y)
            mlflow.log_param("max_depth", depth)
            mlflow.log_metric("accuracy", model.score(X, y))
            logged = wb.log_model(model, training_data=X, training_labels=y, snapshot_data=True)
    version = wb.register(logged, name)
    return wb.set_alias(name, "champion", version.version)


@pytest.fixture(scope="module")
def review_url(tmp_path_factory: pytest.TempPathFactory, session_workspace: wb.Settings, demo_model) -> Iterator[str]:
    proc, url = start_review(tmp_path_factory.mktemp("review-finish") / "review.log")
    try:
        yield url
    finally:
        stop_process(proc)


def _visible(page, text: str, timeout: float = 60_000):
    locator = page.get_by_text(text).filter(visible=True).first
    try:
        locator.wait_for(timeout=timeout)
    except Exception:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "timeout.png"))
        (SHOTS / "timeout.html").write_text(page.content())
        raise
    return locator


def _shoot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(800)  # let Bokeh finish laying out
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_the_experiments_tab_opens_on_a_users_experiment_with_empty_states_and_a_quiet_console(
        page, review_url: str, demo_model: wb.ModelVersion) -> None:
    watched = Watched(page)
    page.goto(f"{review_url}/review?section=Experiments")
    experiment = page.locator(".bk-input-group", has=page.locator("label", has_text="Experiment")).locator("select").first
    experiment.wait_for(timeout=60_000)
    # the snapshots this module logged made workbench-data-snapshots the newest experiment; not shown
    assert experiment.input_value() != "workbench-data-snapshots"
    assert "workbench-data-snapshots" not in experiment.locator("option").all_inner_texts()
    run = wb.get_run(demo_model.run_id)
    experiment.select_option(next(e.name for e in wb.experiments() if e.experiment_id == run.experiment_id))
    _visible(page, "2 runs of demo-")  # a status line in words
    _visible(page, "Metric curves appear here")  # nothing ticked: no empty plot, a sentence
    _visible(page, "Picked runs side by side")
    assert page.get_by_text("loaded 2 runs").count() == 0
    accuracy = wb.get_run(demo_model.run_id).metrics["accuracy"]
    _visible(page, f"{accuracy:.4f}".rstrip("0"))  # a metric as a number is read: four decimals at most
    assert len(repr(accuracy)) <= 6 or page.get_by_text(repr(accuracy), exact=True).count() == 0
    _shoot(page, "home-experiments")
    watched.assert_clean()


@pytest.mark.parametrize("tab", ["Overview", "Runs", "Versions", "Compare versions", "Package", "Deployments",
                                 "Explanations", "Fairness", "Model card"])
def test_every_tab_of_a_model_renders_with_no_console_warning_or_error(
        page, review_url: str, demo_model: wb.ModelVersion, tab: str) -> None:
    watched = Watched(page)
    page.goto(f"{review_url}/review?model={urllib.parse.quote(demo_model.name)}&section={urllib.parse.quote(tab)}")
    _visible(page, f"{demo_model.name} v{demo_model.version}")
    page.locator(".bk-tab.bk-active", has_text=tab).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # background loads finish and draw
    _shoot(page, f"model-{tab.lower().replace(' ', '-')}")
    watched.assert_clean()


def test_explanations_can_be_read_a_legend_names_the_class_and_the_base_value_is_explained(
        page, review_url: str, demo_model: wb.ModelVersion) -> None:
    watched = Watched(page)
    page.goto(f"{review_url}/review?model={urllib.parse.quote(demo_model.name)}&section=Explanations")
    _visible(page, "raises the probability of", timeout=120_000)
    _visible(page, "lowers the probability of")
    _visible(page, "the model's average probability of class")  # the base value, in words
    _shoot(page, "model-explanations-explained")
    watched.assert_clean()


def test_the_home_tabs_render_with_no_console_warning_or_error(page, review_url: str) -> None:
    watched = Watched(page)
    for section in ("Models", "Deployments"):
        page.goto(f"{review_url}/review?section={section}")
        page.locator(".bk-tab.bk-active", has_text=section).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        _shoot(page, f"home-{section.lower()}")
    watched.assert_clean()


def test_a_version_links_to_its_run_whose_page_shows_what_mlflow_shows_and_links_back(
        page, review_url: str, demo_model: wb.ModelVersion) -> None:
    """version -> run -> experiment -> run, by clicking the names shown."""
    watched = Watched(page)
    page.goto(f"{review_url}/review?model={urllib.parse.quote(demo_model.name)}")
    page.get_by_role("link", name="forest-depth-4").first.click()  # the overview's "from run ..."
    page.wait_for_url(f"**/review?run={demo_model.run_id}", timeout=30_000)
    _visible(page, "Models it logged")
    page.get_by_role("link", name=f"{demo_model.name} v{demo_model.version}").first.wait_for(timeout=60_000)
    for text in ("max_depth", "accuracy", "workbench.user", "Artifacts", "accuracy was logged once"):
        _visible(page, text)
    _shoot(page, "run-page")
    run = wb.get_run(demo_model.run_id)
    experiment = next(e.name for e in wb.experiments() if e.experiment_id == run.experiment_id)
    page.get_by_role("link", name=experiment).first.click()
    page.wait_for_url(f"**/review?experiment={experiment}", timeout=30_000)
    page.locator(".tabulator-cell a", has_text="forest-depth-2").first.click()  # a run's name in the table
    page.wait_for_url("**/review?run=*", timeout=30_000)
    _visible(page, "forest-depth-2")
    watched.assert_clean()


def test_the_models_list_has_a_search_box(page, review_url: str, demo_model: wb.ModelVersion) -> None:
    watched = Watched(page)
    page.goto(f"{review_url}/review")
    search = page.get_by_placeholder("name or description")
    search.wait_for(timeout=60_000)
    models = page.locator(".tabulator", has=page.locator(".tabulator-col", has_text="latest")).first
    search.fill(demo_model.name)
    models.locator(".tabulator-row", has_text=demo_model.name).first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    assert models.locator(".tabulator-row").count() == 1  # the session's other models are filtered out
    watched.assert_clean()
