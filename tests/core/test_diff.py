"""``wb.diff`` and ``workbench diff`` between two real versions of a model, as a reviewer uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

import workbench as wb
from workbench.errors import InvalidInputError, RunNotFoundError
from workbench.registry import model_file

from test_cli import run_cli

SHIFTED = "mean texture"  # the feature version 2's data shifts (a column name with a space)


@dataclass(frozen=True)
class Trained:
    version: wb.ModelVersion
    model: DecisionTreeClassifier
    metrics: dict[str, float]


def _train(name: str, depth: int, X: pd.DataFrame, y: pd.Series, X_test: pd.DataFrame, y_test: pd.Series,
           **log_kwargs) -> Trained:
    with wb.start_run(experiment=name):
        mlflow.log_param("max_depth", depth)
        model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
        metrics = {"accuracy": float(model.score(X_test[X.columns], y_test)), "training_rows": float(len(X))}
        mlflow.log_metrics(metrics)
        logged = wb.log_model(model, training_data=X, training_labels=y, **log_kwargs)
    return Trained(wb.register(logged, name), model, metrics)


@pytest.fixture(scope="module")
def versions() -> tuple[Trained, Trained, pd.DataFrame, pd.Series, str]:
    """Version 1: depth 3 on the training split. Version 2: depth 5 on a random 70% of it, with
    ``mean texture`` shifted up by 8 (about two standard deviations)."""
    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=0)
    subset = X_train.sample(frac=0.7, random_state=1)
    shifted = subset.assign(**{SHIFTED: subset[SHIFTED] + 8.0})
    name = f"diff-{uuid.uuid4().hex[:8]}"
    first = _train(name, 3, X_train, y_train, X_test, y_test)
    second = _train(name, 5, shifted, y_train.loc[subset.index], X_test, y_test)
    return first, second, X_train, y_train, name


def test_diff_shows_exactly_the_param_metrics_data_and_predictions_that_changed(versions) -> None:
    first, second, _, _, _ = versions
    result = wb.diff(first.version.uri, second.version.uri)
    frame = result.to_frame()
    assert list(frame.columns) == ["kind", "name", "a", "b", "detail"]
    assert set(frame["kind"]) == {"param", "metric", "data", "predictions"}  # same signature and packages

    params = frame[frame["kind"] == "param"]
    assert params[["name", "a", "b"]].values.tolist() == [["max_depth", "3", "5"]]

    metrics = frame[frame["kind"] == "metric"].set_index("name")
    changed = {k for k in first.metrics if first.metrics[k] != second.metrics[k]}
    assert "training_rows" in changed and set(metrics.index) == changed
    for key in changed:
        assert (metrics.loc[key, "a"], metrics.loc[key, "b"]) == (first.metrics[key], second.metrics[key])

    data = frame[frame["kind"] == "data"].set_index("name")
    assert set(data.index) == {"training rows", SHIFTED}  # only the shifted feature drifts
    assert (data.loc["training rows", "a"], data.loc["training rows", "b"]) == (
        int(first.metrics["training_rows"]), int(second.metrics["training_rows"]))
    assert data.loc[SHIFTED, "detail"].startswith("drifted")
    assert data.loc[SHIFTED, "b"] - data.loc[SHIFTED, "a"] == pytest.approx(8.0, abs=1.0)

    # Both models answer the first version's profile sample; count the differing answers ourselves.
    rows = wb.load_profile(first.version.uri).sample
    rows = rows[[c for c in rows.columns if c != "target"]]
    expected = int((first.model.predict(rows) != second.model.predict(rows)).sum())
    assert expected > 0
    assert (result.rows_compared, result.rows_differing) == (len(rows), expected)
    answers = frame[frame["kind"] == "predictions"]
    assert answers["detail"].tolist() == [f"{expected} of {len(rows)} rows answered differently "
                                          f"({expected / len(rows):.1%})"]

    summary = result.summary()
    assert summary.startswith(f"{len(frame)} differences: 1 param, {len(changed)} metric, 2 data")
    assert summary.endswith(f"{expected} of {len(rows)} answers differ ({expected / len(rows):.1%})")
    assert result.notes == ()
    as_dict = result.to_dict()
    json.dumps(as_dict)  # JSON-ready
    assert [d["name"] for d in as_dict["differences"]] == frame["name"].tolist()
    page = result._repr_html_()
    assert "Version diff" in page and "max_depth" in page and SHIFTED in page


def test_a_version_diffed_with_itself_has_no_differences(versions) -> None:
    first, _, _, _, name = versions
    same = wb.diff(first.version.uri, f"models:/{name}/1")
    assert same.to_frame().empty and not same
    assert same.summary() == f"no differences between {first.version.uri} and models:/{name}/1"
    assert same.rows_compared > 0 and same.rows_differing == 0
    assert "no differences" in same._repr_html_()


def test_run_ids_and_aliases_name_the_same_versions(versions) -> None:
    first, second, _, _, name = versions
    wb.set_alias(name, "champion", first.version.version)
    by_uri = wb.diff(first.version.uri, second.version.uri).to_frame()
    by_run = wb.diff(first.version.run_id, second.version.run_id).to_frame()
    by_alias = wb.diff(f"models:/{name}@champion", second.version.uri).to_frame()
    pd.testing.assert_frame_equal(by_run, by_uri)
    pd.testing.assert_frame_equal(by_alias, by_uri)


def test_signature_and_environment_changes_are_listed(versions) -> None:
    first, _, X_train, y_train, name = versions
    fewer = X_train.drop(columns=["worst area"])
    pins = ["scikit-learn==1.0.2", f"numpy=={np.__version__}", f"pandas=={pd.__version__}", "tabulate==0.9.0"]
    third = _train(name, 3, fewer, y_train, X_train, y_train, pip_requirements=pins)
    frame = wb.diff(first.version.uri, third.version.uri).to_frame()

    signature = frame[frame["kind"] == "signature"]
    assert signature[["name", "a", "b", "detail"]].values.tolist() == [
        ["input worst area", "double", None, "input removed"]]
    environment = frame[frame["kind"] == "environment"].set_index("name")
    assert environment.loc["scikit-learn", ["a", "b", "detail"]].tolist() == [
        sklearn.__version__, "1.0.2", "version changed"]
    assert environment.loc["tabulate", ["a", "b", "detail"]].tolist() == [None, "0.9.0", "package added"]
    assert "numpy" not in environment.index and "pandas" not in environment.index


def test_a_model_logged_without_training_data_says_what_was_not_compared(versions) -> None:
    first, _, X_train, y_train, name = versions
    with wb.start_run(experiment=name):
        mlflow.log_param("max_depth", 3)
        model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X_train, y_train)
        bare = wb.register(wb.log_model(model, input_example=X_train.head()), name)
    result = wb.diff(first.version.uri, bare.uri)
    frame = result.to_frame()
    assert set(frame["kind"]) == {"metric", "signature"}  # no data rows: there is nothing to compare
    assert frame[frame["kind"] == "metric"]["detail"].tolist() == ["removed", "removed"]  # logged none
    # log_model infers the output from predictions (a tensor); MLflow, from the example alone, a column.
    assert frame[frame["kind"] == "signature"][["name", "a", "b"]].values.tolist() == [
        ["output #0", "tensor int64 [-1]", "long"]]
    assert any("training_data=X" in note for note in result.notes)
    # The first version's rows still go to both models: the same tree answers alike.
    assert result.rows_compared > 0 and result.rows_differing == 0


def test_a_version_whose_run_was_deleted_for_good_is_still_compared_by_its_model(versions) -> None:
    first, _, X_train, y_train, name = versions
    again = _train(name, 3, X_train, y_train, X_train, y_train)  # the same tree as version 1
    mlflow.delete_run(again.version.run_id)
    subprocess.run([str(Path(sys.executable).parent / "mlflow"), "gc", "--backend-store-uri", mlflow.get_tracking_uri(),
                    "--run-ids", again.version.run_id], check=True, capture_output=True, timeout=120)
    with pytest.raises(RunNotFoundError):
        wb.get_run(again.version.run_id)
    result = wb.diff(first.version.uri, again.version.uri)
    assert result.notes == (f"params and metrics: the run of {again.version.uri} (run {again.version.run_id}) "
                            "was deleted",)
    assert result.to_frame().empty  # nothing else differs: same code, data and answers
    assert result.rows_compared > 0 and result.rows_differing == 0


def test_bad_sides_say_what_to_give(versions) -> None:
    with pytest.raises(InvalidInputError, match="neither a model URI nor a run id"):
        wb.diff("churn", "churn")
    with pytest.raises(RunNotFoundError):
        wb.diff("0" * 32, versions[0].version.uri)


def test_the_cli_prints_the_table_and_json(session_workspace, versions) -> None:
    first, second, _, _, _ = versions
    home = session_workspace.home
    table = run_cli("diff", first.version.uri, second.version.uri, home=home).stdout
    lines = table.splitlines()
    assert lines[0] == wb.diff(first.version.uri, second.version.uri).summary()
    assert lines[1].split() == ["kind", "name", "a", "b", "detail"]
    assert any(line.split()[:4] == ["param", "max_depth", "3", "5"] for line in lines)
    assert any(SHIFTED in line and line.split()[0] == "data" for line in lines)
    data = json.loads(run_cli("diff", first.version.uri, second.version.uri, "--json", home=home).stdout)
    assert data == json.loads(json.dumps(wb.diff(first.version.uri, second.version.uri).to_dict()))
    same = run_cli("diff", first.version.uri, first.version.uri, home=home).stdout
    assert same.startswith("no differences")


# The code that trained a version: captured at log_model, compared by diff.

TRAIN_SCRIPT = """\
import sys

import mlflow
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

import workbench as wb

name, capture = sys.argv[1], {"on": True, "off": False, "default": None}[sys.argv[2]]
data = load_breast_cancer(as_frame=True)
max_depth = 3
with wb.start_run(experiment=name):
    mlflow.log_param("max_depth", max_depth)
    model = DecisionTreeClassifier(max_depth=max_depth, random_state=0).fit(data.data, data.target)
    logged = wb.log_model(model, training_data=data.data, training_labels=data.target, capture_code=capture)
print(wb.register(logged, name).uri)
"""


def _run(args: list[str], cwd: Path, home: Path, **env: str) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "WORKBENCH_HOME": str(home), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def script_versions(session_workspace, tmp_path_factory) -> tuple[str, str, str, Path]:
    """Version 1 from a committed script; version 2 from the same script edited (max_depth 5) and
    not committed."""
    repo = tmp_path_factory.mktemp("repo")
    script = repo / "train.py"
    script.write_text(TRAIN_SCRIPT)
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "train")
    name = f"code-{uuid.uuid4().hex[:8]}"
    home = session_workspace.home
    first = _run([sys.executable, str(script), name, "default"], repo, home)
    script.write_text(TRAIN_SCRIPT.replace("max_depth = 3", "max_depth = 5"))
    second = _run([sys.executable, str(script), name, "default"], repo, home)
    return first, second, name, repo


def test_the_script_and_its_git_state_are_stored_and_diffed(script_versions, session_workspace) -> None:
    first, second, _, repo = script_versions
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    stored = model_file(first, "training_code/train.py")
    assert stored == TRAIN_SCRIPT
    manifest = json.loads(model_file(first, "training_code/capture.json"))
    assert manifest["source"] == "script" and manifest["git_commit"] == commit and manifest["cut"] == []
    assert model_file(first, "training_code/uncommitted.diff") is None  # the committed script, unchanged
    assert "+max_depth = 5" in model_file(second, "training_code/uncommitted.diff")

    result = wb.diff(first, second)
    code = result.to_frame().query("kind == 'code'")
    assert code[["name", "a", "b", "detail"]].values.tolist() == [
        ["train.py", "train.py", "train.py", "+1 -1 lines (code_diff)"],
        ["uncommitted changes", "none", "+1 -1 lines", "git diff HEAD when each was logged "
                                                      "(stored as training_code/uncommitted.diff)"],
    ]
    assert "-max_depth = 3\n+max_depth = 5\n" in result.code_diff
    assert result.code_diff.startswith("--- a/train.py\n+++ b/train.py\n")
    assert result.to_frame().query("kind == 'param'")["name"].tolist() == ["max_depth"]
    assert wb.diff(first, first).code_diff == ""
    printed = run_cli("diff", first, second, home=session_workspace.home).stdout
    assert printed.endswith(result.code_diff)
    assert any(line.split()[:2] == ["code", "train.py"] for line in printed.splitlines())


def test_code_capture_is_turned_off_by_argument_or_setting_and_bounded(script_versions, session_workspace) -> None:
    first, _, name, repo = script_versions
    home = session_workspace.home
    off = _run([sys.executable, str(repo / "train.py"), name, "off"], repo, home)
    assert model_file(off, "training_code/capture.json") is None
    setting_off = _run([sys.executable, str(repo / "train.py"), name, "default"], repo, home,
                       WORKBENCH_CAPTURE_CODE="0")
    assert model_file(setting_off, "training_code/capture.json") is None
    assert "code: only a stored the code that trained it" in wb.diff(first, off).notes
    forced = _run([sys.executable, str(repo / "train.py"), name, "on"], repo, home,
                  WORKBENCH_CAPTURE_CODE="0", WORKBENCH_MAX_CODE_BYTES="100")
    manifest = json.loads(model_file(forced, "training_code/capture.json"))
    assert manifest["cut"] == ["train.py", "uncommitted.diff"]
    assert manifest["bytes"]["train.py"] == 100
    assert model_file(forced, "training_code/train.py") == TRAIN_SCRIPT.encode()[:100].decode()


def test_a_notebooks_executed_cells_are_stored(session_workspace, tmp_path) -> None:
    name = f"cells-{uuid.uuid4().hex[:8]}"
    cells = [
        "import mlflow\nfrom sklearn.datasets import load_breast_cancer\n"
        "from sklearn.tree import DecisionTreeClassifier\nimport workbench as wb",
        "data = load_breast_cancer(as_frame=True)",
        "model = DecisionTreeClassifier(max_depth=2).fit(data.data, data.target)",
        f"logged = wb.log_model(model, training_data=data.data)\nprint(wb.register(logged, {name!r}).uri)",
    ]
    program = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        f"for cell in {cells!r}:\n"
        "    shell.run_cell(cell, store_history=True).raise_error()\n"
    )
    uri = _run([sys.executable, "-c", program], tmp_path, session_workspace.home)
    stored = model_file(uri, "training_code/notebook.py")
    assert stored == "\n\n".join(f"# In[{n}]:\n{cell}\n" for n, cell in enumerate(cells, start=1))
    manifest = json.loads(model_file(uri, "training_code/capture.json"))
    assert manifest["source"] == "notebook" and manifest["git_commit"] is None
    # The cells stay in the registry: a model image's build context never carries them.
    from workbench.packaging import prepare_context

    context = prepare_context(uri, tmp_path / "ctx")
    assert (context.path / "model" / "MLmodel").exists() and not (context.path / "model" / "training_code").exists()
