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


CHECKS: dict[str, Callable[[Path], None]] = {
    "01-track-and-compare": check_01,
}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_guided_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, session_workspace) -> None:
    home = tmp_path / "workspace"
    nb = execute(path, home)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    check = CHECKS.get(path.stem)
    if check is not None:
        wb.configure(home=home)
        try:
            check(home)
        finally:
            wb.configure(session_workspace)
