"""The review app served by ``workbench review``, driven in Debian's Chromium with Playwright.

Pages render with no console error and no request leaving the machine; a deploy from the page
brings a deployment up; Compare versions shows what changed between two versions; the drift view updates by itself when predictions arrive; team mode asks
for the password and keeps three signed-in browsers' selections apart. Screenshots go to
test-results/.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import workbench as wb
from support import WORKBENCH, Watched, free_port, start_review, stop_process
from workbench.errors import DeploymentNotFoundError

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-results"
PASSWORD = "review-team-password"

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def review_model(numeric_data) -> wb.ModelVersion:
    """A model registered by this module, @champion on its only version."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = numeric_data
    name = f"review-ui-{uuid.uuid4().hex[:5]}"
    with wb.start_run(experiment="review-ui", run_name="review-ui-forest"):
        logged = wb.log_model(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y),
                              training_data=X, training_labels=y)
    version = wb.register(logged, name)
    return wb.set_alias(name, "champion", version.version)


@pytest.fixture(scope="module")
def review_url(tmp_path_factory: pytest.TempPathFactory, session_workspace: wb.Settings) -> Iterator[str]:
    """``workbench review`` on loopback (no sign-in)."""
    proc, url = start_review(tmp_path_factory.mktemp("review") / "review.log")
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def team_url(tmp_path_factory: pytest.TempPathFactory, session_workspace: wb.Settings) -> Iterator[str]:
    """``workbench review`` in team mode: bound to every address, password required."""
    proc, url = start_review(tmp_path_factory.mktemp("review-team") / "review.log", "--team",
                              env={"WORKBENCH_REVIEW_PASSWORD": PASSWORD})
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture()
def deployed(review_model: wb.ModelVersion) -> Iterator[Callable[[str], wb.Deployment]]:
    """Deploy the module's model locally under a name (stopped after the test)."""
    names: list[str] = []

    def deploy(name: str) -> wb.Deployment:
        names.append(name)
        return wb.deploy(review_model.uri, target="local", name=name)

    yield deploy
    for name in names:
        with contextlib.suppress(DeploymentNotFoundError):
            wb.stop(name)


def _settle(page, ms: int = 1500) -> None:
    """Let Bokeh finish laying out before a screenshot."""
    page.wait_for_timeout(ms)


def _select(page, label: str):
    """The <select> of the Panel widget labelled ``label``."""
    return page.locator(".bk-input-group", has=page.locator("label", has_text=label)).locator("select").first


def test_every_page_renders_with_no_console_error_and_nothing_fetched_from_outside(
    page, review_url: str, review_model: wb.ModelVersion, deployed
) -> None:
    SHOTS.mkdir(exist_ok=True)
    deployment = deployed(f"review-ui-{uuid.uuid4().hex[:4]}")
    watched = Watched(page)
    model = urllib.parse.quote(review_model.name)
    pages = {
        # The session's workspace holds every test's models by then, sorted by name: the table draws
        # only the rows in view, so the page is known by its heading (and the model by the picker).
        "home": ("review", "Registered models"),
        "review": (f"review?model={model}", f"{review_model.name} v{review_model.version}"),
        "experiments": ("review?experiment=review-ui", "review-ui-forest"),
    }
    for shot, (path, expected) in pages.items():
        page.goto(f"{review_url}/{path}")
        # Visible text: a model's name is also the label of hidden options in the pages' selects.
        page.get_by_text(expected).filter(visible=True).first.wait_for(timeout=60_000)
        _settle(page)
        page.screenshot(path=str(SHOTS / f"review-{shot}.png"), full_page=True)
        if shot == "home":
            assert review_model.name in _select(page, "Model").locator("option").all_inner_texts()
    page.goto(f"{review_url}/review")  # a version's review opens from the registry
    _select(page, "Model").select_option(review_model.name)
    page.get_by_role("button", name="Open review").click()
    page.wait_for_url(f"**/review?model={model}&version={review_model.version}", timeout=30_000)
    page.get_by_text(f"{review_model.name} v{review_model.version}").filter(visible=True).first.wait_for(timeout=60_000)
    # Each tab, clicked, shows its own view (built when first shown: none of these texts is on the page before).
    shows = {
        "Runs": ["Picked runs side by side", "Filter (MLflow search syntax)"],
        "Versions": ["Registered models", "Metrics and parameters of its run"],
        "Explanations": ["explained with SHAP (tree)", "Rows: the reference sample"],
        "Model card": [f"Model card: {review_model.name} version {review_model.version}", "Download HTML"],
    }
    for tab, texts in shows.items():
        page.goto(f"{review_url}/review?model={model}")
        page.get_by_text(f"{review_model.name} v{review_model.version}").filter(visible=True).first.wait_for(
            timeout=60_000)
        page.get_by_text("Training data profile").filter(visible=True).first.wait_for(timeout=60_000)
        assert [t for t in texts if page.get_by_text(t).filter(visible=True).count()] == [], tab
        page.locator(".bk-tab", has_text=tab).first.click()
        for text in texts:
            page.get_by_text(text).filter(visible=True).first.wait_for(timeout=120_000)
        _settle(page)
        page.screenshot(path=str(SHOTS / f"review-tab-{tab.lower().replace(' ', '-')}.png"), full_page=True)
    watched.assert_clean()

    # The Drift pages in a tab of their own, before any prediction: their charts stay off the page
    # until they have data, so the console stays quiet (no Bokeh "could not set initial ranges").
    drift = page.context.new_page()
    drift_watched = Watched(drift)
    drift.goto(f"{review_url}/review?deployment={deployment.name}")
    drift.get_by_text("no predictions logged yet").filter(visible=True).first.wait_for(timeout=60_000)
    _settle(drift)
    drift.screenshot(path=str(SHOTS / "review-deployment.png"), full_page=True)
    drift.goto(f"{review_url}/review?model={model}&section=Drift")
    drift.get_by_text("no predictions logged yet").filter(visible=True).first.wait_for(timeout=60_000)
    _settle(drift)
    drift.screenshot(path=str(SHOTS / "review-tab-drift.png"), full_page=True)
    drift_watched.assert_clean()
    drift.close()


def test_a_tab_an_installed_package_registers_shows_in_the_served_review(
    page, tmp_path: Path, review_model: wb.ModelVersion, tab_plugin: str
) -> None:
    """The tab comes through the plugin's entry point alone: nothing in the workbench names it."""
    path = os.pathsep.join([tab_plugin, *filter(None, [os.environ.get("PYTHONPATH")])])
    proc, url = start_review(tmp_path / "review.log", env={"PYTHONPATH": path})
    try:
        watched = Watched(page)
        page.goto(f"{url}/review?model={urllib.parse.quote(review_model.name)}")
        tab = page.locator(".bk-tab", has_text="Plugin tab").first
        tab.wait_for(timeout=60_000)
        assert page.get_by_text("plugin tab of").filter(visible=True).count() == 0  # built when first shown
        tab.click()
        page.get_by_text(f"plugin tab of {review_model.uri}").filter(visible=True).first.wait_for(timeout=60_000)
        watched.assert_clean()
    finally:
        stop_process(proc)


def test_compare_versions_shows_the_param_the_answers_and_the_code_that_changed(
    page, review_url: str, depth_versions
) -> None:
    name, first, second = depth_versions.name, depth_versions.first, depth_versions.second
    watched = Watched(page)
    page.goto(f"{review_url}/review?model={urllib.parse.quote(name)}&version={second}")
    page.get_by_text(f"{name} v{second}").filter(visible=True).first.wait_for(timeout=60_000)
    page.locator(".bk-tab", has_text="Compare versions").first.click()
    # The differences table (kind, name, a, b, detail), not the overview's table of the run's params.
    differences = page.locator(".tabulator", has=page.locator(".tabulator-col", has_text="detail"))
    row = differences.locator(".tabulator-row", has_text="max_depth").first
    row.wait_for(timeout=120_000)
    assert row.inner_text().split() == ["max_depth", "3", "5"]  # under its group's header, "kind: param"
    assert differences.locator(".tabulator-group", has_text="kind: param").count() == 1
    assert _select(page, "Version A").input_value() == f"v{first}"
    assert _select(page, "Version B").input_value() == f"v{second}"
    page.get_by_text(f"v{first} → v{second}").filter(visible=True).first.wait_for(timeout=10_000)
    page.get_by_text("answers differ").filter(visible=True).first.wait_for(timeout=10_000)
    added = page.locator("pre.wb-code-diff div", has_text="max_depth = 5").first
    assert added.inner_text() == f"+{depth_versions.changed_line}"  # shown as text, not run as markup
    _settle(page)
    page.screenshot(path="/tmp/compare.png", full_page=True)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "review-compare-versions.png"), full_page=True)
    watched.assert_clean()


def test_a_deploy_from_the_page_reaches_a_running_deployment(
    page, review_url: str, review_model: wb.ModelVersion, deployed
) -> None:
    name = f"page-{uuid.uuid4().hex[:5]}"
    watched = Watched(page)
    page.goto(f"{review_url}/review?section=Deployments")
    _select(page, "Model").wait_for(timeout=60_000)
    try:
        _select(page, "Model").select_option(f"models:/{review_model.name}@champion")
        _select(page, "Target").select_option("local")
        name_input = page.locator(".bk-input-group", has=page.locator("label", has_text="Deployment name")).locator("input")
        name_input.fill(name)
        name_input.press("Enter")  # Panel's TextInput commits on Enter or blur
        page.get_by_role("button", name="Deploy").click()
        row = page.locator("tr", has_text=name)
        row.filter(has_text="healthy").first.wait_for(timeout=120_000)
        deployment = wb.get_deployment(name)
        assert deployment.healthy and deployment.model_name == review_model.name
        assert deployment.url in row.first.inner_text()
        _settle(page)
        page.screenshot(path=str(SHOTS / "review-deployed-from-page.png"), full_page=True)
    finally:
        with contextlib.suppress(DeploymentNotFoundError):
            wb.stop(name)
    watched.assert_clean()


def test_the_drift_view_updates_by_itself_when_predictions_arrive(
    page, review_url: str, numeric_data, deployed
) -> None:
    X, _ = numeric_data
    deployment = deployed(f"drift-ui-{uuid.uuid4().hex[:4]}")
    watched = Watched(page)
    page.goto(f"{review_url}/review?deployment={deployment.name}")
    page.get_by_text("no predictions logged yet").first.wait_for(timeout=60_000)

    deployment.predict(X.head(150))
    page.get_by_text("window: 150 rows").first.wait_for(timeout=30_000)
    first = page.locator("tr", has_text="x0").first.inner_text()

    shifted = X.iloc[150:400].copy()
    shifted["x0"] = shifted["x0"] + 3.0  # one feature moves far from its reference
    deployment.predict(shifted)
    page.get_by_text("window: 400 rows").first.wait_for(timeout=30_000)
    row = page.locator("tr", has_text="x0").first
    row.filter(has_text="drift").wait_for(timeout=30_000)
    assert row.inner_text() != first
    page.get_by_text("feature 'x0' drifted").first.wait_for(timeout=30_000)  # the alert, as it fired
    _settle(page)
    page.screenshot(path=str(SHOTS / "review-drift-live.png"), full_page=True)
    watched.assert_clean()


def _bokeh_data(page, name: str) -> dict | None:
    """The columns of the page's Bokeh data source named ``name`` (what the chart draws), as lists."""
    return page.evaluate("""(name) => {
        for (const doc of (window.Bokeh ? window.Bokeh.documents : [])) {
            const model = doc.get_model_by_name(name);
            if (model) return Object.fromEntries(Object.entries(model.data).map(([k, v]) => [k, Array.from(v)]));
        }
        return null;
    }""", name)


def test_the_drift_page_opened_after_traffic_stopped_shows_the_history_and_the_promotion(
    page, review_url: str, review_model: wb.ModelVersion, numeric_data, deployed
) -> None:
    """The morning after: v1 answered, v2 was tried as a challenger and promoted, traffic stopped.
    The Drift page opened now draws what happened before it existed, with the promotion marked."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = numeric_data
    with wb.start_run(experiment="review-ui", run_name="review-ui-forest-2"):
        logged = wb.log_model(RandomForestClassifier(n_estimators=12, max_depth=3, random_state=1).fit(X, y),
                              training_data=X, training_labels=y)
    second = wb.register(logged, review_model.name)
    deployment = deployed(f"history-ui-{uuid.uuid4().hex[:4]}")
    answers = deployment.predict(X.head(200), request_id="monday")
    deployment.log_feedback("monday", answers)
    wb.start_challenger(deployment.name, second.uri, share=0.5)
    deployment.predict(X.iloc[200:300].assign(x0=X["x0"].iloc[200:300] + 3.0))  # the inputs moved
    wb.promote(deployment.name)
    deployment.predict(X.iloc[300:400])
    opened = pd.Timestamp.now(tz="UTC").timestamp() * 1000  # traffic has stopped; the page opens now

    watched = Watched(page)
    page.goto(f"{review_url}/review?deployment={deployment.name}")
    page.get_by_text("400 rows in").first.wait_for(timeout=60_000)  # the history line, over the day
    events = points = None
    for _ in range(60):
        events = _bokeh_data(page, "drift-history-events")
        points = _bokeh_data(page, "drift-history-points")
        if events and points and f"promote v{second.version}" in events["label"]:
            break
        page.wait_for_timeout(500)
    assert events is not None and f"promote v{second.version}" in events["label"], events
    assert f"challenger v{second.version}" in events["label"] and f"deploy v{review_model.version}" in events["label"]
    assert points is not None and len(points["x"]) >= 2
    assert max(points["x"]) < opened  # drawn from history: every point is from before the page opened
    alerts = _bokeh_data(page, "drift-history-alerts")  # the alert's marker, where x0 crossed
    assert alerts is not None and any("'x0' drifted" in label for label in alerts["label"]), alerts
    drawn = page.evaluate("""() => {
        const doc = window.Bokeh.documents[0];
        const line = doc.get_model_by_name('drift-history-threshold');
        const axis = doc.get_model_by_name('drift-history-time-axis');
        return {threshold: line.visible ? line.location : null, hours: axis.formatter.hours};
    }""")
    assert drawn == {"threshold": 1.0, "hours": "%a %H:%M"}  # the threshold line; weekday and time ticks
    performance = _bokeh_data(page, "performance-history-lines")
    assert performance is not None and "accuracy" in " ".join(performance["label"])
    page.get_by_text(f"promote v{second.version}").first.wait_for(timeout=10_000)  # in the history line too
    _settle(page)
    page.screenshot(path=str(SHOTS / "review-drift-history.png"), full_page=True)
    watched.assert_clean()


def test_team_mode_refuses_to_start_without_a_password() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_REVIEW_PASSWORD"}
    done = subprocess.run([WORKBENCH, "review", "--no-browser", "--team", "--port", str(free_port())],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "WORKBENCH_REVIEW_PASSWORD" in done.stderr and "--address 127.0.0.1" in done.stderr
    short = subprocess.run([WORKBENCH, "review", "--no-browser", "--address", "0.0.0.0", "--port", str(free_port())],
                           env={**env, "WORKBENCH_REVIEW_PASSWORD": "short"}, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
    assert short.returncode != 0 and "at least 8 characters" in short.stderr


def test_team_mode_signs_in_three_browsers_and_keeps_their_selections_apart(
    browser, team_url: str, numeric_data, deployed
) -> None:
    X, _ = numeric_data
    deployment = deployed(f"team-ui-{uuid.uuid4().hex[:4]}")
    deployment.predict(X.head(200))

    anonymous = httpx.get(f"{team_url}/review?deployment={deployment.name}", follow_redirects=True, timeout=10)
    assert "Sign in with your name and the team" in anonymous.text  # no page without signing in

    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(3)]
    try:
        users = {"ana": "x1", "bo": "x2", "chen": "x3"}
        pages = {}
        for context, (user, feature) in zip(contexts, users.items(), strict=True):
            page = context.new_page()
            watched = Watched(page)
            page.goto(f"{team_url}/review?deployment={deployment.name}")
            page.get_by_placeholder("password").wait_for(timeout=30_000)
            page.get_by_placeholder("your name").fill(user)
            page.get_by_placeholder("password").fill("not-the-password")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Invalid").first.wait_for(timeout=30_000)  # a wrong password is refused
            page.get_by_placeholder("your name").fill(user)
            page.get_by_placeholder("password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("window: 200 rows").first.wait_for(timeout=60_000)
            pages[user] = (page, watched)
        for user, feature in users.items():  # everyone picks a feature, one after the other
            _select(pages[user][0], "Feature").select_option(feature)
        deployment.predict(X.iloc[200:260])  # live updates reach every session...
        for user, feature in users.items():
            page, watched = pages[user]
            page.get_by_text("window: 260 rows").first.wait_for(timeout=30_000)
            # ...and each keeps its own selection: its select and its highlighted table row
            assert _select(page, "Feature").input_value() == feature
            # A refresh drawn before the session's change of feature was handled is drawn again
            # once it is: wait for the highlight to follow the select, then check it is the only one.
            shaded = page.locator("tr[style*='#ddf4ff']")
            shaded.locator("td:first-child").get_by_text(feature, exact=True).wait_for(timeout=15_000)
            highlighted = [row.split()[0] for row in shaded.all_inner_texts()]
            assert highlighted == [feature], f"{user} sees {highlighted!r} highlighted"
            _settle(page)
            page.screenshot(path=str(SHOTS / f"review-team-{user}.png"), full_page=True)
            watched.assert_clean()
    finally:
        for context in contexts:
            context.close()
