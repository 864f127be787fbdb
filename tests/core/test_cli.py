"""The ``workbench`` command as a user runs it: real processes, real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "workbench"


def run_cli(*args: str, home: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["WORKBENCH_HOME"] = str(home)
    result = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_help_lists_the_subcommands() -> None:
    out = run_cli("--help").stdout
    for command in ("info", "runs", "models", "lab"):
        assert f"  {command} " in out


def test_info_names_the_workspace_and_store(session_workspace) -> None:
    data = json.loads(run_cli("info", "--json", home=session_workspace.home).stdout)
    assert data["workspace"] == str(session_workspace.home)
    assert data["mode"] == "embedded"
    assert data["tracking_uri"] == f"sqlite:///{session_workspace.home}/mlflow.db"
    table = run_cli("info", home=session_workspace.home).stdout
    assert "embedded" in table and str(session_workspace.home) in table


def test_runs_and_models_as_tables_and_json(session_workspace, registered_model) -> None:
    home = session_workspace.home
    experiments = json.loads(run_cli("runs", "--json", home=home).stdout)
    assert "fixtures" in {e["name"] for e in experiments}

    runs = json.loads(run_cli("runs", "fixtures", "--json", home=home).stdout)
    assert any(r["run_id"] == registered_model.run_id for r in runs)
    assert "metrics.accuracy" in runs[0]
    table = run_cli("runs", "fixtures", home=home).stdout
    assert "fixture-rf" in table and "metrics.accuracy" in table

    models = json.loads(run_cli("models", "--json", home=home).stdout)
    fixture = next(m for m in models if m["name"] == "fixture-rf")
    assert fixture["aliases"] == ["champion=1"]
    versions = json.loads(run_cli("models", "fixture-rf", "--json", home=home).stdout)
    assert versions[0]["version"] == "1" and versions[0]["aliases"] == ["champion"]
    assert versions[0]["run_id"] == registered_model.run_id
    assert "champion" in run_cli("models", "fixture-rf", home=home).stdout


def test_errors_are_one_line_with_advice_and_exit_1(session_workspace) -> None:
    result = run_cli("models", "no-such-model", home=session_workspace.home, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no registered model named 'no-such-model'")
    assert "Traceback" not in result.stderr
    result = run_cli("runs", "no-such-experiment", home=session_workspace.home, check=False)
    assert result.returncode == 1 and "workbench.start_run(experiment='no-such-experiment')" in result.stderr
    # serve finds the model's files in a forked process: its error still reaches the terminal as is
    result = run_cli("serve", "models:/no-such-model/1", "--port", "0", home=session_workspace.home, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no registered model named 'no-such-model'")
    assert "Traceback" not in result.stderr


def test_an_empty_workspace_says_how_to_start(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    assert "Default" in run_cli("runs", home=home).stdout  # MLflow's default experiment
    assert "register one with workbench.register(model_uri, name)" in run_cli("models", home=home).stdout
