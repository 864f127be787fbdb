"""The extension in a real JupyterLab (started by ``workbench lab``), driven with Playwright.

The sidebar shows what the workspace holds, its deploy command brings a deployment up and the
sidebar then shows it healthy, and the drift monitor opens as a main-area tab rendered by Panel.
Screenshots go to test-results/.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest

import workbench as wb
from support import Watched, free_port
from workbench.errors import DeploymentNotFoundError

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-results"
TOKEN = "workbench-lab-ui-token"
MODEL = "lab-ui-model"
DEPLOYMENT = "lab-ui"

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def lab_model(numeric_data) -> wb.ModelVersion:
    """A model registered by this test module (not a shared fixture), with a champion alias."""
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    with wb.start_run(experiment="lab-ui", run_name="lab-ui-logreg"):
        logged = wb.log_model(LogisticRegression(max_iter=200).fit(X, y), training_data=X, training_labels=y)
    version = wb.register(logged, MODEL)
    return wb.set_alias(MODEL, "champion", version.version)


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory, session_workspace: wb.Settings) -> Iterator[str]:
    """``workbench lab`` on a folder with an empty notebook, sharing the session's workspace."""
    with _lab_on(tmp_path_factory.mktemp("lab-root"), {}) as url:
        yield url


@pytest.fixture()
def lab(page, lab_url: str):
    """The page with Lab open on the scratch notebook and the Workbench sidebar shown."""
    _open_sidebar(page, lab_url)
    return page


@contextlib.contextmanager
def _lab_on(root: Path, env: dict[str, str]) -> Iterator[str]:
    """``workbench lab`` on ``root`` with extra environment ``env``; yields its URL."""
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nbformat.write(notebook, root / "scratch.ipynb")
    port = free_port()
    full_env = {**os.environ, "JUPYTER_TOKEN": TOKEN, "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"), **env}
    log_path = root / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "workbench"), "lab", str(root / "scratch.ipynb"), "--no-browser",
             "--port", str(port)],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + log_path.read_text())
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _open_sidebar(page, url: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{url}/lab/tree/scratch.ipynb?reset&token={TOKEN}")
    page.locator(".jp-NotebookPanel").first.wait_for(timeout=60_000)
    page.locator('.jp-SideBar [data-id="workbench-sidebar"]').click()
    page.locator(".wb-Sidebar").wait_for(state="visible")


def test_on_a_new_workspace_the_sidebar_shows_loading_then_its_content(page, tmp_path: Path) -> None:
    home = tmp_path / "brand-new-workspace"
    with _lab_on(tmp_path, {"WORKBENCH_HOME": str(home)}) as url:
        _open_sidebar(page, url)
        loading = page.locator(".wb-Models .wb-Loading")
        seen_loading = loading.is_visible()
        if seen_loading:
            assert loading.inner_text().startswith("Loading… (a new workspace takes a few seconds")
            page.screenshot(path=str(SHOTS / "lab-sidebar-loading.png"))
        page.locator(".wb-Models .wb-Empty", has_text="No registered models yet").wait_for(timeout=60_000)
        page.locator(".wb-Deployments .wb-Empty", has_text="No deployments").wait_for()
        assert page.locator(".wb-Loading").count() == 0 and page.locator(".wb-Sidebar-error").inner_text() == ""
        page.screenshot(path=str(SHOTS / "lab-sidebar-new-workspace.png"))
    assert (home / "mlflow.db").exists()  # the store the sidebar waited for
    assert seen_loading, "the sidebar showed its content before any loading state could be seen"


def test_a_store_that_cannot_be_reached_shows_the_message_with_the_fix(page, tmp_path: Path) -> None:
    env = {"WORKBENCH_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    with _lab_on(tmp_path, env) as url:
        _open_sidebar(page, url)
        error = page.locator(".wb-Sidebar-error")
        page.locator(".wb-Models .wb-Failed").wait_for(timeout=60_000)
        message = error.inner_text()
        assert "is unavailable" in message
        assert "check that the MLflow tracking server is running and WORKBENCH_TRACKING_URI is right" in message
        assert page.locator(".wb-Deployments .wb-Failed").inner_text() == "Could not load: see the message above"
        page.screenshot(path=str(SHOTS / "lab-sidebar-error.png"))


def test_the_sidebar_lists_a_model_registered_in_the_test_and_inserts_code_that_loads_it(lab, lab_model) -> None:
    model = lab.locator(f'.wb-Model[data-model="{MODEL}"]')
    model.wait_for(timeout=30_000)
    assert "@champion" in model.inner_text()
    model.click()
    version = lab.locator(f'.wb-Version[data-model="{MODEL}"][data-version="{lab_model.version}"]')
    version.wait_for(timeout=30_000)
    lab.locator('.wb-Experiment[data-experiment="lab-ui"]').click()
    lab.locator(".wb-Run", has_text="lab-ui-logreg").wait_for(timeout=30_000)
    lab.screenshot(path=str(SHOTS / "lab-sidebar.png"))

    version.click(button="right")
    lab.locator(".lm-Menu-itemLabel", has_text=f"Insert Code Loading {MODEL} v{lab_model.version}").click()
    cell = lab.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content", has_text="wb.load_model")
    cell.wait_for(timeout=15_000)
    assert f'model = wb.load_model("models:/{MODEL}@champion")' in cell.inner_text()
    lab.screenshot(path=str(SHOTS / "lab-snippet.png"))

    version.dblclick()  # opens the version's review
    lab.locator(".lm-TabBar-tab", has_text=f"Review {MODEL} v{lab_model.version}").wait_for(timeout=10_000)
    frame = lab.frame_locator(".wb-Page-review iframe")
    frame.get_by_text(MODEL).first.wait_for(timeout=90_000)
    lab.wait_for_timeout(1000)  # let Bokeh finish laying out before the screenshot
    lab.screenshot(path=str(SHOTS / "lab-review-tab.png"))


def test_deploy_brings_a_deployment_up_shown_healthy_and_its_drift_tab_renders(page, lab_url: str, lab_model,
                                                                               numeric_data) -> None:
    # The extension's settings schema is shipped: Lab knows it, and a user's setting reaches the dialog.
    settings_url = f"{lab_url}/lab/api/settings/@workbench/jupyterlab:plugin"
    auth = {"Authorization": f"token {TOKEN}"}
    schema = httpx.get(settings_url, headers=auth, timeout=10).json()["schema"]
    assert schema["properties"]["defaultTarget"]["default"] == "local"
    httpx.put(settings_url, headers=auth, json={"raw": '{"defaultTarget": "swarm"}'}, timeout=10).raise_for_status()
    try:
        _open_sidebar(page, lab_url)  # Lab reads the setting when it starts
        lab = page
        lab.locator(f'.wb-Model[data-model="{MODEL}"]').click()
        version = lab.locator(f'.wb-Version[data-model="{MODEL}"][data-version="{lab_model.version}"]')
        version.click(button="right")
        lab.locator(".lm-Menu-itemLabel", has_text=f"Deploy {MODEL} v{lab_model.version}").click()
        dialog = lab.locator(".jp-Dialog")
        target = dialog.locator(".wb-DeployForm-target")
        target.wait_for()
        # the dialog offers the targets the server lists, each with its summary, the preferred one first
        offered = target.locator("option").evaluate_all("options => options.map(o => [o.value, o.textContent])")
        assert offered == [[t.name, f"{t.name}: {t.summary}"] for t in wb.deploy_targets()]
        assert target.input_value() == "swarm"
        target.select_option("local")
        dialog.locator(".wb-DeployForm-name").fill(DEPLOYMENT)
        lab.screenshot(path=str(SHOTS / "lab-deploy-dialog.png"))
        dialog.get_by_role("button", name="Deploy").click()

        row = lab.locator(f'.wb-Deployment[data-deployment="{DEPLOYMENT}"][data-health="healthy"]')
        row.wait_for(timeout=120_000)
        assert f"{MODEL} v{lab_model.version}" in row.inner_text()
        deployment = wb.get_deployment(DEPLOYMENT)
        assert deployment.healthy and deployment.target == "local"
        # at a glance: the version passes the policy, and no prediction was made yet
        assert row.get_attribute("data-policy") == "passes"
        assert row.locator(".wb-Policy").inner_text() == "policy ✓"
        lab.locator(f'.wb-Deployment[data-deployment="{DEPLOYMENT}"][data-alerts="no data"]').wait_for(timeout=30_000)
        # and the version says where it is deployed
        lab.locator(f'.wb-Version[data-model="{MODEL}"][data-version="{lab_model.version}"] .wb-Where',
                    has_text=f"deployed: {DEPLOYMENT} (local, serving)").wait_for(timeout=30_000)
        lab.screenshot(path=str(SHOTS / "lab-deployed.png"))

        X, _ = numeric_data
        deployment.predict(X.head(300))  # something for the drift monitor to show
        deployment.predict(X.iloc[300:600].assign(x2=lambda d: d["x2"] + 4))  # and inputs that moved
        drifted = lab.locator(f'.wb-Deployment[data-deployment="{DEPLOYMENT}"][data-alerts^="drift"]')
        drifted.wait_for(timeout=60_000)
        assert drifted.locator(".wb-Alerts").inner_text().startswith("drift")
        assert drifted.locator(".wb-Alerts").get_attribute("title").startswith("1 feature(s) drifted: x2")
        lab.screenshot(path=str(SHOTS / "lab-deployment-glance.png"))
        row.click(button="right")
        lab.locator(".lm-Menu-itemLabel", has_text=f"Open Drift Monitor of {DEPLOYMENT}").click()
        tab = lab.locator(".lm-TabBar-tab", has_text=f"Drift {DEPLOYMENT}")
        tab.wait_for(timeout=10_000)
        frame = lab.frame_locator(".wb-Page-drift iframe")
        frame.get_by_text(DEPLOYMENT).first.wait_for(timeout=90_000)
        frame.locator("tr", has_text="x0").first.wait_for(timeout=60_000)  # a feature's drift row
        lab.wait_for_timeout(1000)  # let Bokeh finish laying out before the screenshot
        lab.screenshot(path=str(SHOTS / "lab-drift-tab.png"))
    finally:
        httpx.put(settings_url, headers=auth, json={"raw": "{}"}, timeout=10)
        with contextlib.suppress(DeploymentNotFoundError):
            wb.stop(DEPLOYMENT)


def test_widgets_in_a_lab_notebook_fetch_nothing_from_outside_and_log_no_errors(page, tmp_path: Path, lab_model,
                                                                                numeric_data) -> None:
    """DriftMonitor and Explanations run in a notebook cell in Lab: every stylesheet and script comes
    from the Jupyter server or is inlined (offline they must still render), and the console is clean."""
    X, _ = numeric_data
    name = "lab-offline"
    dep = wb.deploy(lab_model.uri, name=name)
    try:
        dep.predict(X.head(200))
        cells = [
            "import workbench.widgets as wbw\nwbw.extension()",
            f"monitor = wbw.DriftMonitor(deployment={name!r}, window=100)\nmonitor.wait()\nmonitor",
            f"explanations = wbw.Explanations(model_uri={lab_model.uri!r}, n_rows=20)\nexplanations.wait()\n"
            "explanations",
        ]
        notebook = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(c) for c in cells],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        nbformat.write(notebook, tmp_path / "widgets.ipynb")
        with _lab_on(tmp_path, {}) as url:
            watched = Watched(page)
            page.goto(f"{url}/lab/tree/widgets.ipynb?reset&token={TOKEN}")
            panel = page.locator(".jp-NotebookPanel:visible")
            panel.wait_for(timeout=60_000)
            page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=60_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            outputs = panel.locator(".jp-OutputArea-output")
            outputs.filter(has_text="x0").first.wait_for(timeout=120_000)  # a feature row of the drift table
            panel.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output").filter(
                has_text="x1").first.wait_for(timeout=120_000)  # the explanations name the features too
            page.wait_for_timeout(4000)  # live updates redraw parts of the monitor: they must stay local too
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "lab-notebook-widgets.png"), full_page=True)
            assert panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            watched.assert_clean()  # no errors, no warnings, no outside requests
    finally:
        wb.stop(name)
