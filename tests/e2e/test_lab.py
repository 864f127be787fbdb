"""README command 1 as a user sees it: `workbench lab` opens JupyterLab on the guided notebook."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN = "workbench-test-token"


def _start_lab(argv: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a Lab with ``argv`` (plus a port) in a workspace of its own; yield its URL, stop it after."""
    port = free_port()
    home = tmp_path_factory.mktemp("lab-workspace")
    env = {
        **os.environ,
        "WORKBENCH_HOME": str(home),
        "JUPYTER_TOKEN": TOKEN,
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path_factory.mktemp("user-settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("lab-workspaces")),
    }
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen([*argv, "--no-browser", "--port", str(port)], env=env, cwd=home, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (home / "lab.log").read_text()
            time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s:\n" + (home / "lab.log").read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`workbench lab` on the first guided notebook."""
    yield from _start_lab([str(BIN / "workbench"), "lab", str(REPO / "notebooks" / "01-track-and-compare.ipynb")],
                          tmp_path_factory)


@pytest.fixture(scope="module")
def plain_lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain `jupyter lab` in the same environment (the Workbench extension is installed in it too)."""
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    yield from _start_lab([str(BIN / "jupyter"), "lab", *root], tmp_path_factory)


def _fetch_news(lab_url: str) -> str:
    """Whether the Lab at ``lab_url`` fetches "Jupyter news": its notification setting as the Lab serves it."""
    answer = httpx.get(f"{lab_url}/lab/api/settings/@jupyterlab/apputils-extension:notification",
                       params={"token": TOKEN}, timeout=30)
    answer.raise_for_status()
    return answer.json()["schema"]["properties"]["fetchNews"]["default"]


def test_workbench_lab_does_not_fetch_jupyter_news(lab_server: str) -> None:
    assert _fetch_news(lab_server) == "false"


def test_a_plain_jupyter_lab_in_the_same_environment_keeps_its_own_settings(plain_lab_server: str) -> None:
    # Installing the workbench and its extension changes no Lab-wide setting: Lab's own default stands.
    assert _fetch_news(plain_lab_server) == "none"


def test_lab_serves_the_guided_notebooks_with_the_workspace_in_the_kernel_env(lab_server: str) -> None:
    listing = httpx.get(f"{lab_server}/api/contents", params={"token": TOKEN}).json()
    names = {item["name"] for item in listing["content"]}
    assert "01-track-and-compare.ipynb" in names


@pytest.mark.ui
def test_lab_opens_the_first_guided_notebook(lab_server: str, page, tmp_path: Path) -> None:
    # The address `workbench lab` opens in the browser (printed in its log).
    page.goto(f"{lab_server}/lab/tree/01-track-and-compare.ipynb?reset&token={TOKEN}")
    tab = page.locator(".lm-TabBar-tab", has_text="01-track-and-compare.ipynb")
    tab.first.wait_for(timeout=60_000)
    heading = page.locator(".jp-NotebookPanel:visible .jp-RenderedMarkdown h1", has_text="Track and compare")
    heading.first.wait_for(timeout=30_000)
    page.get_by_text("| Idle").first.wait_for(timeout=60_000)  # the kernel started with the notebook
    page.screenshot(path=str(REPO / "test-results" / "lab-first-notebook.png"))
