"""``workbench check | waive | audit | card | policy`` as a user runs them: real processes, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.governance import CHECK_NAMES, POLICY_TEMPLATE, policy_path

BIN = Path(sys.executable).parent / "workbench"


def run_cli(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def proxied(session_workspace) -> wb.ModelVersion:
    """A model whose input ``signal`` is a noisy copy of ``sex``, kept in its reference data."""
    rng = np.random.default_rng(8)
    sex = rng.choice(["female", "male"], 500)
    X = pd.DataFrame({"income": rng.normal(50, 10, 500), "signal": (sex == "male") + rng.normal(0, 0.3, 500)})
    y = pd.Series((X["income"] > 50).astype(int), name="label")
    with wb.start_run(experiment="governance-tests"):
        model = LogisticRegression().fit(X, y)
        logged = wb.log_model(model, training_data=X.assign(sex=sex), training_labels=y,
                              signature=infer_signature(X, model.predict(X)), input_example=X.head(2))
    return wb.register(logged, f"cli-gov-{uuid.uuid4().hex[:6]}")


@pytest.fixture()
def strict_policy(session_workspace) -> Iterator[Path]:
    path = policy_path()
    path.write_text("checks:\n  proxies: {severity: error}\n")
    yield path
    path.unlink(missing_ok=True)


def test_check_exits_0_when_nothing_blocks_and_prints_every_check(proxied, session_workspace) -> None:
    result = run_cli("check", proxied.uri, home=session_workspace.home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["check", "status", "severity", "message", "waiver"]
    assert [line.split()[:2] for line in lines[1:6]] == [
        ["protected_inputs", "passed"], ["proxies", "warning"], ["required_metrics", "passed"],
        ["signature", "passed"], ["lineage", "passed"]]
    assert lines[-1] == f"{proxied.name} version 1 passes (4 passed, 1 warning)"


def test_the_waiver_path_from_the_command_line(proxied, session_workspace, strict_policy: Path) -> None:
    home = session_workspace.home
    blocked = run_cli("check", proxied.uri, "--json", "--stage", "deploy", home=home)
    assert blocked.returncode == 1
    data = json.loads(blocked.stdout)
    assert data["passed"] is False and data["stage"] == "deploy" and data["model_uri"] == proxied.uri
    assert [c["name"] for c in data["checks"]] == list(CHECK_NAMES)
    proxies = data["checks"][1]
    assert (proxies["status"], proxies["details"]["proxies"][0]["feature"]) == ("failed", "signal")

    waived = run_cli("waive", proxied.uri, "proxies", "--by", "Dana Reyes", "--reason", "signal reviewed, MRM-9",
                     home=home)
    assert waived.returncode == 0, waived.stderr
    assert f"proxies on {proxied.name} version 1 waived by Dana Reyes on " in waived.stdout

    passing = run_cli("check", proxied.uri, "--json", home=home)
    assert passing.returncode == 0
    proxies = json.loads(passing.stdout)["checks"][1]
    assert proxies["status"] == "waived" and proxies["waiver"]["by"] == "Dana Reyes"

    audit = run_cli("audit", "--model", proxied.name, "--json", home=home)
    assert audit.returncode == 0
    rows = json.loads(audit.stdout)
    assert [r["action"] for r in rows] == ["register", "waive"]  # registering is audited too
    row = rows[1]
    assert (row["action"], row["to_version"], row["details"]["check"]) == ("waive", "1", "proxies")
    table = run_cli("audit", "--model", proxied.name, "--since", "1h", home=home).stdout
    assert "waive" in table and proxied.name in table and "Dana Reyes" in table


def test_waive_refuses_unknown_checks(proxied, session_workspace) -> None:
    unknown = run_cli("waive", proxied.uri, "fairness", "--by", "x", "--reason", "y", home=session_workspace.home)
    assert unknown.returncode == 2 and "'fairness' is not one of" in unknown.stderr


def test_card_writes_html(proxied, session_workspace, tmp_path: Path) -> None:
    out = tmp_path / "card.html"
    written = run_cli("card", proxied.uri, "--output", str(out), home=session_workspace.home)
    assert written.returncode == 0 and written.stdout.strip() == f"wrote {out}"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and f"Model card: {proxied.name} version 1" in page
    assert "<h2>Policy checks</h2>" in page


def test_policy_shows_the_defaults_and_init_writes_the_template(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    shown = run_cli("policy", "--json", home=home)
    assert shown.returncode == 0 and json.loads(shown.stdout)["checks"]["proxies"]["threshold"] == 0.5
    assert json.loads(shown.stdout)["mode"] == "advise"
    assert run_cli("policy", home=home).stdout.startswith("# policy: the advisory defaults: every check is shown, "
                                                          "nothing blocks")
    assert run_cli("policy", "--init", home=home).stdout.strip() == (
        f"wrote {home / 'policy.yaml'}: it enforces from now on (edit `mode: advise` to only advise)")
    assert (home / "policy.yaml").read_text() == POLICY_TEMPLATE
    assert json.loads(run_cli("policy", "--json", home=home).stdout)["mode"] == "enforce"
    (home / "policy.yaml").write_text("mode: advise\n")
    again = run_cli("policy", "--init", home=home)
    assert again.returncode == 1 and again.stderr.startswith("error: ") and "already exists" in again.stderr


def test_publish_makes_a_policy_the_teams_and_unpublish_withdraws_it(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    nothing = run_cli("policy", "--publish", home=home)
    assert nothing.returncode == 1 and nothing.stderr.strip() == (
        f"error: no policy file at {home / 'policy.yaml'}: write one with `workbench policy --init`, then publish it")
    team = tmp_path / "team.yaml"
    team.write_text("checks:\n  proxies: {severity: error}\n")
    published = run_cli("policy", "--publish", str(team), home=home)
    assert published.returncode == 0 and published.stdout.startswith("published as the team's policy: tag "
                                                                      "workbench.policy on ")
    shown = json.loads(run_cli("policy", "--json", home=home).stdout)
    assert shown["source"].startswith("tag workbench.policy on ") and shown["mode"] == "enforce"
    assert shown["checks"]["proxies"]["severity"] == "error"
    assert run_cli("policy", "--unpublish", home=home).returncode == 0
    assert json.loads(run_cli("policy", "--json", home=home).stdout)["mode"] == "advise"


def test_the_cli_check_names_match_the_core() -> None:
    from workbench.cli.governance import _CHECKS

    assert _CHECKS == CHECK_NAMES


# -- the first hour: defaults advise ------------------------------------------------------------------


@pytest.fixture(scope="module")
def diabetes_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain MLflow model folder (what `mlflow models build-docker -m ./model` takes): a diabetes
    regressor whose inputs include `age` and `sex`, the signal in medicine; no run, no workbench lineage."""
    import mlflow.sklearn
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    folder = tmp_path_factory.mktemp("plain") / "model"
    mlflow.sklearn.save_model(LinearRegression().fit(X, y), str(folder), input_example=X.head(2))
    return folder


def test_check_exits_1_on_failures_even_when_the_policy_only_advises(diabetes_folder: Path, tmp_path: Path) -> None:
    result = run_cli("check", str(diabetes_folder), home=tmp_path / "ws")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[1:6]][0] == ["protected_inputs", "failed"]
    assert "'age' (age), 'sex' (sex)" in result.stdout
    assert lines[-2].endswith("has failing checks; the policy only advises, nothing is blocked (2 passed, 1 warning, "
                              "2 failed)")
    assert lines[-1] == ("The policy only advises: package and deploy go ahead. `workbench policy --init` writes an "
                         "enforcing policy.")


def test_a_plain_mlflow_model_folder_packages_on_the_defaults_and_the_advice_is_printed(
        diabetes_folder: Path, tmp_path: Path, docker_engine) -> None:
    import docker

    home = tmp_path / "ws"
    tag = f"workbench-test/plain-diabetes:{uuid.uuid4().hex[:8]}"
    # a first build of these requirements installs them: minutes on a busy machine
    built = run_cli("package", str(diabetes_folder), "--tag", tag, "--json", home=home, timeout=900)
    try:
        assert built.returncode == 0, built.stderr[-3000:]
        assert json.loads(built.stdout)["tag"] == tag
        advice = built.stderr
        assert advice.startswith(f"advice: policy advice for {diabetes_folder} (2 failing check(s)):")
        assert "  - protected_inputs: protected attribute(s) used as model inputs: 'age' (age), 'sex' (sex)" in advice
        assert "  - lineage: lineage incomplete: no run_id" in advice
        assert "Nothing is blocked" in advice and "`workbench policy --init`" in advice

        # the team's choice: an enforcing policy blocks the same folder before anything is built
        assert run_cli("policy", "--init", home=home).returncode == 0
        blocked = run_cli("package", str(diabetes_folder), "--tag", tag + "-2", home=home)
        assert blocked.returncode == 1
        assert blocked.stderr.startswith(f"error: policy blocks package of {diabetes_folder} (2 failing check(s))")
    finally:
        docker.from_env().images.remove(tag, force=True)
