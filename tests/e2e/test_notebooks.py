"""The guided notebooks run top to bottom in a real kernel, each on a fresh workspace, and again
the way people really run them: "Run All" again in the same kernel, and "Restart Kernel and Run
All" midway through it.

After the first run, the check registered for each notebook below inspects the workspace it left,
the way the user would continue from it; after the last, the deployments' histories show that the
run after the restart found what the interrupted one left and converged on it.
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


def check_07(home: Path) -> None:
    history = [h.action for h in wb.deployment_history("cancer-loop")]
    assert history == ["deploy", "challenger", "promote", "stop"]  # the loop promoted the retrained version
    audit = wb.audit_log(deployment="cancer-loop")
    assert audit["action"].tolist() == ["deploy", "retrain", "start_challenger", "gate", "promote", "stop"]
    gate = audit[audit["action"] == "gate"]["details"].iloc[0]
    assert gate["promote"] and gate["challenger"] >= gate["champion"] + 0.05 and gate["rows"] >= 150
    assert [v.version for v in wb.versions("guided-cancer")] == ["2", "1"]
    # deployed from @champion, so the promotion moved the alias: the registry agrees with the deployment
    assert wb.get_version("guided-cancer", alias="champion").version == "2"


def check_08(home: Path) -> None:
    changes = wb.diff("models:/guided-reproduce/1", "models:/guided-reproduce/2")
    differences = {(d.kind, d.name) for d in changes.differences}
    assert ("param", "max_depth") in differences
    assert {d.name for d in changes.differences if d.kind == "data"} >= {"training rows"}, differences
    assert not {kind for kind, _ in differences} & {"environment", "signature", "metric"}
    assert 0 < changes.rows_differing < changes.rows_compared
    reproductions = wb.audit_log(model="guided-reproduce").query("action == 'reproduce'")
    assert len(reproductions) == 1 and reproductions["from_version"].tolist() == ["1"]
    assert reproductions["details"].iloc[0]["matches"] is True
    assert len(wb.runs("guided-reproduce")) == 3  # spring, autumn, and the reproduction of spring


CHECKS: dict[str, Callable[[Path], None]] = {
    "01-track-and-compare": check_01,
    "02-register-and-review": check_02,
    "03-package-and-deploy": check_03,
    "04-live-drift-and-explanations": check_04,
    "05-champion-and-challenger": check_05,
    "06-governance-and-model-card": check_06,
    "07-closing-the-loop": check_07,
    "08-reproduce-and-compare": check_08,
}
# Notebooks that drive the Docker engine: they need it like the Docker tests do.
NEEDS_DOCKER = {"03-package-and-deploy"}


# "Restart Kernel and Run All" in the middle of each notebook: the cell after which the kernel is
# restarted (deployments, aliases and policies outlive the kernel, so the run that follows finds them).
RESTART_AFTER = {
    "01-track-and-compare": 9,
    "02-register-and-review": 17,  # the local deployment is still running
    "03-package-and-deploy": 11,  # updated once, not yet rolled back
    "04-live-drift-and-explanations": 6,
    "05-champion-and-challenger": 4,  # the challenger takes 20% of traffic
    "06-governance-and-model-card": 8,
    "07-closing-the-loop": 3,  # deployed, the loop not started yet
    "08-reproduce-and-compare": 5,  # both versions registered, nothing compared or reproduced yet
}
# What the deployments of each notebook did: the first run, then the second up to the restart, then
# the whole notebook after the restart, which finds the deployment the interrupted run left and
# updates it to the version it registered.
HISTORIES = {
    "02-register-and-review": ("guided-review-local", ["deploy", "stop"] + ["deploy"] + ["update", "stop"]),
    "03-package-and-deploy": ("credit-local", ["deploy", "update", "rollback", "stop"] + ["deploy", "update"]
                              + ["update", "update", "rollback", "stop"]),
    "04-live-drift-and-explanations": ("credit-monitored", ["deploy", "stop"] + ["deploy"] + ["update", "stop"]),
    "05-champion-and-challenger": ("credit-duel", ["deploy", "challenger", "traffic", "promote", "stop"]
                                   + ["deploy", "challenger"]
                                   + ["update", "challenger", "traffic", "promote", "stop"]),
    "07-closing-the-loop": ("cancer-loop", ["deploy", "challenger", "promote", "stop"] + ["deploy"]
                            + ["update", "challenger", "promote", "stop"]),
}


def _run_cells(client: NotebookClient, nb: nbformat.NotebookNode, stop: int | None, what: str) -> None:
    """Execute the notebook's cells up to index ``stop`` (all when ``None``) in the client's kernel,
    as "Run All" does; fail naming the run when a cell errs or writes a traceback."""
    for index, cell in enumerate(nb.cells[:None if stop is None else stop + 1]):
        if cell.cell_type != "code":
            continue
        try:
            client.execute_cell(cell, index)
        except Exception as exc:
            raise AssertionError(f"{what}: cell {index} failed:\n{exc}") from None
        # A widget's background work reports its failures on stderr, not as a cell error: none may show.
        streams = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        assert "Traceback" not in streams, f"{what}: cell {index} wrote a traceback:\n{streams}"
        # MLflow's registration chatter would show as red boxes: a cell shows its result, not that.
        assert "Successfully registered model" not in streams and "Created version" not in streams, streams


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_guided_notebook_runs_again_and_after_a_restart(path: Path, tmp_path: Path, session_workspace,
                                                        request) -> None:
    """Each guided notebook, in one workspace: Run All; Run All again in the same kernel, with the
    kernel restarted midway (deployments, aliases and policies outlive it); then Run All in the new
    kernel. Each run passes; the first leaves what its check expects. The second run stops at the
    restart: finishing it first would cost CI about 8 more minutes for little (its second half meets
    the same workspace state as the first run's, only with higher version numbers)."""
    if path.stem in NEEDS_DOCKER:
        request.getfixturevalue("docker_engine")  # skips, or fails under WORKBENCH_STRICT_TESTS, without one
    home = tmp_path / "workspace"
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "WORKBENCH_HOME": str(home), "PANEL_INLINE": "true"}
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel(env=env):
        _run_cells(client, nb, None, "first run")
        _check(home, CHECKS.get(path.stem), session_workspace)
        _run_cells(client, nb, RESTART_AFTER[path.stem], "second run in the same kernel, up to the restart")
    with client.setup_kernel(env=env):  # a new kernel process: what Restart Kernel gives
        _run_cells(client, nb, None, "third run, after the restart")

    def after_all(home: Path) -> None:
        assert wb.deployments() == []  # every run ends by stopping what it started
        if path.stem in HISTORIES:
            name, actions = HISTORIES[path.stem]
            assert [h.action for h in wb.deployment_history(name)] == actions

    _check(home, after_all, session_workspace)


def _check(home: Path, check: Callable[[Path], None] | None, session_workspace) -> None:
    """Run ``check`` against the notebook's workspace, then point the workbench back at the session's."""
    if check is None:
        return
    wb.configure(home=home)
    try:
        check(home)
    finally:
        wb.configure(session_workspace)
