"""The guided notebooks run top to bottom in a real kernel, each on a fresh workspace.

After a notebook runs, the check registered for it below inspects the workspace it left, the way
the user would continue from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import workbench as wb

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def execute(path: Path, home: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Run a notebook in a new kernel whose workspace is ``home``; raise on the first failing cell."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "WORKBENCH_HOME": str(home), "PANEL_INLINE": "true"}
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env=env)
    return nb


def check_01(home: Path) -> None:
    champion = wb.resolve("models:/guided-credit@champion")
    assert champion.run_id == wb.best_run("guided-credit", "f1").run_id
    assert len(wb.runs("guided-credit")) == 3
    assert wb.load_profile(champion.uri).n_rows == 1500


def check_02(home: Path) -> None:
    assert wb.resolve("models:/guided-review@champion").version == "2"  # moved by the registry widget
    assert [v.version for v in wb.versions("guided-review")] == ["2", "1"]
    assert [h.action for h in wb.deployment_history("guided-review-local")] == ["deploy", "stop"]
    assert len(wb.runs("guided-review")) == 3


def check_03(home: Path) -> None:
    history = [h.action for h in wb.deployment_history("credit-local")]
    assert history == ["deploy", "update", "rollback", "stop"]
    assert wb.deployments() == []
    actions = wb.audit_log(model="guided-credit-risk")["action"].tolist()
    assert actions.count("package") >= 1 and actions.count("deploy") == 2


def check_04(home: Path) -> None:
    assert [h.action for h in wb.deployment_history("credit-monitored")] == ["deploy", "stop"]


def check_05(home: Path) -> None:
    history = [h.action for h in wb.deployment_history("credit-duel")]
    assert history == ["deploy", "challenger", "traffic", "promote", "stop"]


def check_06(home: Path) -> None:
    waivers = wb.list_waivers("models:/guided-loan/1")
    assert [w.check for w in waivers] == ["proxies"]
    assert wb.load_policy().enforcing  # the team chose the lending template, which enforces
    assert wb.deployments() == []  # the model with a protected input was never deployed


CHECKS: dict[str, Callable[[Path], None]] = {
    "01-track-and-compare": check_01,
    "02-register-and-review": check_02,
    "03-package-and-deploy": check_03,
    "04-live-drift-and-explanations": check_04,
    "05-champion-and-challenger": check_05,
    "06-governance-and-model-card": check_06,
}
# Notebooks that drive the Docker engine: they need it like the Docker tests do.
NEEDS_DOCKER = {"03-package-and-deploy"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_guided_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, session_workspace, request) -> None:
    if path.stem in NEEDS_DOCKER:
        request.getfixturevalue("docker_engine")  # skips, or fails under WORKBENCH_STRICT_TESTS, without one
    home = tmp_path / "workspace"
    nb = execute(path, home)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    # A widget's background work reports its failures on stderr, not as a cell error: none may show.
    tracebacks = [o["text"] for o in outputs if o.get("output_type") == "stream" and "Traceback" in o["text"]]
    assert tracebacks == []
    check = CHECKS.get(path.stem)
    if check is not None:
        wb.configure(home=home)
        try:
            check(home)
        finally:
            wb.configure(session_workspace)
