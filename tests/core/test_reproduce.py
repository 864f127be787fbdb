"""Training data snapshots and ``wb.reproduce``: a version trained by a script or a notebook is trained
again from its captured code and data in a fresh process, and its answers compared bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_breast_cancer
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

import workbench as wb
from workbench.errors import InvalidInputError, ReproductionError
from workbench.registry import model_file
from workbench.snapshot import SNAPSHOT_EXPERIMENT, TAG_SNAPSHOT_KEY

from test_cli import run_cli


def _mixed_table() -> tuple[pd.DataFrame, pd.Series]:
    """The breast cancer features (column names with spaces) with a column of every kind a real table
    has, each with gaps: nullable Int64, boolean and string, a category, datetimes in ns, in us and
    time-zone aware, text in object columns with None and NaN gaps."""
    data = load_breast_cancer(as_frame=True)
    X = data.data.copy()
    n = len(X)
    rng = np.random.default_rng(7)
    gaps = rng.random(n) < 0.1
    X.loc[gaps, "mean area"] = np.nan
    X["visits"] = pd.array(np.where(gaps, None, rng.integers(0, 9, n)), dtype="Int64")
    X["smoker"] = pd.array(np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.3), dtype="boolean")
    X["clinic name"] = pd.array(np.where(gaps, None, rng.choice(["north", "south"], n)), dtype="string")
    X["stage"] = pd.Categorical(np.where(rng.random(n) < 0.05, None, rng.choice(["I", "II", "III"], n)),
                                categories=["III", "II", "I", "IV"], ordered=True)
    seen = pd.Timestamp("2024-03-01 08:00:00.123456789") + pd.to_timedelta(rng.integers(0, 10**15, n), unit="ns")
    X["seen ns"] = pd.Series(seen).where(~gaps)
    X["seen us"] = pd.Series(seen).dt.floor("us").astype("datetime64[us]").where(~gaps)
    X["seen utc"] = pd.Series(seen).dt.tz_localize("Europe/Paris").where(~gaps)
    X["note"] = pd.Series(np.where(gaps, None, rng.choice(["a", "b"], n)), dtype=object)
    X["code"] = pd.Series([np.nan if g else f"c{i}" for i, g in enumerate(gaps)], dtype=object)
    X.index = X.index + 1000  # a training split's index: not kept, like data_hash
    return X, data.target.rename("malignant").set_axis(X.index)


def _numeric_model(X: pd.DataFrame, y: pd.Series):
    """A tree on the float columns of ``X`` (it takes the gaps), so it can be logged with all of ``X``."""
    numeric = [c for c in X.columns if X[c].dtype == "float64"]
    pick = make_column_transformer(("passthrough", numeric), remainder="drop")
    return make_pipeline(pick, DecisionTreeClassifier(max_depth=3, random_state=0)).fit(X, y)


@pytest.fixture()
def settings_restored(session_workspace) -> Iterator[None]:
    yield
    wb.configure(session_workspace)


def test_a_mixed_table_round_trips_exactly_through_log_model(session_workspace) -> None:
    X, y = _mixed_table()
    with wb.start_run(experiment="snapshots"), pytest.warns(wb.errors.MlflowCompatibilityWarning):
        logged = wb.log_model(_numeric_model(X, y), training_data=X, training_labels=y, snapshot_data=True)
    assert logged.snapshot is not None and logged.snapshot.stored, logged.snapshot
    assert logged.snapshot.rows == len(X) and logged.snapshot.bytes > 0

    back, labels = wb.training_data(wb.register(logged, f"snap-{uuid.uuid4().hex[:6]}").uri)
    pd.testing.assert_frame_equal(back, X.reset_index(drop=True), check_exact=True)
    pd.testing.assert_series_equal(labels, y.reset_index(drop=True), check_exact=True)
    assert all(v is None for v in back["note"][back["note"].isna()])  # each gap marker as it was
    assert all(isinstance(v, float) for v in back["code"][back["code"].isna()])
    assert list(back["stage"].cat.categories) == ["III", "II", "I", "IV"] and back["stage"].cat.ordered
    assert str(back["seen us"].dtype) == "datetime64[us]" and str(back["seen utc"].dtype).endswith("Europe/Paris]")


def test_versions_on_the_same_rows_share_one_stored_snapshot(session_workspace) -> None:
    data = load_breast_cancer(as_frame=True)
    name = f"once-{uuid.uuid4().hex[:6]}"
    logged = []
    for depth, rows in ((2, data.data), (4, data.data), (2, data.data.head(300))):
        with wb.start_run(experiment="snapshots"):
            model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(rows, data.target.loc[rows.index])
            logged.append(wb.log_model(model, training_data=rows, training_labels=data.target.loc[rows.index],
                                       snapshot_data=True))
    first, second, third = (m.snapshot for m in logged)
    assert first.key == second.key != third.key
    assert (first.reused, second.reused) == (False, True) and second.run_id == first.run_id
    assert second.bytes == first.bytes > 0
    experiment = mlflow.get_experiment_by_name(SNAPSHOT_EXPERIMENT)
    stored = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_SNAPSHOT_KEY}` = '{first.key}'")
    assert len(stored) == 1
    version = wb.register(logged[1], name)
    assert json.loads(model_file(version.uri, "training_data/snapshot.json"))["run_id"] == first.run_id
    assert wb.load_model(version.uri).metadata.get_model_info().tags[TAG_SNAPSHOT_KEY] == first.key


def test_snapshots_are_off_by_default_bounded_and_say_why_when_not_stored(session_workspace, settings_restored) -> None:
    data = load_breast_cancer(as_frame=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(data.data, data.target)
    with wb.start_run(experiment="snapshots"):
        plain = wb.log_model(model, training_data=data.data, training_labels=data.target)
    assert plain.snapshot is None and model_file(plain.model_uri, "training_data/snapshot.json") is None

    wb.configure(snapshot_data=True, max_snapshot_bytes=10_000)  # the setting asks; the bound refuses
    rows = data.data.tail(333)  # rows no other test stores (a stored snapshot is referenced, not stored again)
    with wb.start_run(experiment="snapshots"):
        bounded = wb.log_model(model, training_data=rows, training_labels=data.target.tail(333))
    manifest = json.loads(model_file(bounded.model_uri, "training_data/snapshot.json"))
    assert manifest["stored"] is False and manifest["bytes"] > 10_000 and manifest["rows"] == 333
    assert f"over the bound of 10,000 (WORKBENCH_MAX_SNAPSHOT_BYTES)" in manifest["reason"]
    version = wb.register(bounded, f"bounded-{uuid.uuid4().hex[:6]}")
    with pytest.raises(ReproductionError, match="was not stored: the snapshot is"):
        wb.training_data(version.uri)

    with pytest.raises(InvalidInputError, match="pass training_data=X"):
        wb.log_model(model, input_example=data.data.head(), snapshot_data=True)


TRAIN_SCRIPT = """\
import sys

import mlflow
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

import workbench as wb

name = sys.argv[1]
data = pd.read_csv("rows.csv")
X, y = data.drop(columns=["target"]), data["target"]
with wb.start_run(experiment=name):
    mlflow.log_param("n_estimators", 25)
    model = RandomForestClassifier(n_estimators=25, random_state=0).fit(X, y)
    mlflow.log_metric("training_accuracy", model.score(X, y))
    logged = wb.log_model(model, training_data=X, training_labels=y, snapshot_data=True)
print(wb.register(logged, name).uri)
"""


def _train_script(folder: Path, home: Path, name: str) -> str:
    data = load_breast_cancer(as_frame=True)
    data.frame.to_csv(folder / "rows.csv", index=False)
    (folder / "train.py").write_text(TRAIN_SCRIPT)
    done = subprocess.run([sys.executable, "train.py", name], cwd=folder, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "WORKBENCH_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def scripted(session_workspace, tmp_path_factory) -> tuple[str, str, wb.ReproduceResult]:
    """A version trained by a script reading rows.csv, and its reproduction."""
    name = f"repro-{uuid.uuid4().hex[:6]}"
    uri = _train_script(tmp_path_factory.mktemp("project"), session_workspace.home, name)
    return uri, name, wb.reproduce(uri)


def test_a_script_trained_version_reproduces_exactly(scripted) -> None:
    uri, name, result = scripted
    original = wb.get_version(name, 1)
    sample = wb.load_profile(uri).sample
    assert result.matches and result.data_matches
    assert (result.rows_compared, result.rows_differing) == (len(sample), 0) and result.rows_compared > 0
    assert result.metric_differences == () and not result.diff
    assert result.original_run_id == original.run_id and result.new_run_id != original.run_id
    assert result.summary().startswith(f"reproduced {uri}: all {len(sample)} answers match exactly")

    new_run = wb.get_run(result.new_run_id)
    assert new_run.status == "FINISHED"
    assert new_run.tags["workbench.reproduction_of"] == original.run_id
    assert new_run.tags["workbench.reproduction_matches"] == "true"
    assert new_run.experiment_id == wb.get_run(original.run_id).experiment_id
    # In the runs table a reproduction says which run it reproduces; the original says nothing.
    marks = wb.runs(name).set_index("run_id")["reproduction_of"]
    assert marks[result.new_run_id] == original.run_id and pd.isna(marks[original.run_id])
    assert new_run.params == {"n_estimators": "25"}
    assert new_run.metrics == wb.get_run(original.run_id).metrics
    # The code stopped at log_model: nothing after it (the register call) ran a second time.
    assert [v.version for v in wb.versions(name)] == ["1"]
    # The new model answers exactly as the original does, and carries the same code and snapshot.
    rows = sample.drop(columns=["target"])
    assert np.array_equal(wb.load_model(result.new_model_uri).predict(rows), wb.load_model(uri).predict(rows))
    assert model_file(result.new_model_uri, "training_code/train.py") == TRAIN_SCRIPT
    assert result.new_model_uri in result._repr_html_() and "matches" in result._repr_html_()
    json.dumps(result.to_dict())


def test_each_reproduction_is_audited_and_shown_on_the_card(scripted) -> None:
    uri, name, result = scripted
    audited = wb.audit_log(model=name, action="reproduce")
    assert len(audited) == 1
    row = audited.iloc[0]
    assert row["from_version"] == "1"
    assert row["details"]["matches"] is True and row["details"]["new_run_id"] == result.new_run_id

    card = wb.model_card(uri).section("Provenance")
    facts = dict(card.blocks[0].items)
    assert facts["Code"].startswith("training_code/train.py (script ")
    assert facts["Git commit"] == "not in a git repository"
    assert facts["Environment"].startswith(f"Python {sys.version_info.major}.{sys.version_info.minor}")
    snapshot = json.loads(model_file(uri, "training_data/snapshot.json"))
    assert facts["Data snapshot"].startswith(f"{snapshot['key']}: 569 rows, {snapshot['bytes']:,} bytes")
    table = card.blocks[1].frame
    assert table[["matched", "new run"]].values.tolist() == [[True, result.new_run_id]]


def test_the_cli_reproduces_and_exits_non_zero_when_the_data_source_changed(session_workspace, tmp_path) -> None:
    name = f"moved-{uuid.uuid4().hex[:6]}"
    uri = _train_script(tmp_path, session_workspace.home, name)
    printed = json.loads(run_cli("reproduce", uri, "--json", home=session_workspace.home).stdout)
    assert printed["matches"] is True and printed["rows_differing"] == 0

    # The file the script reads changes after training: the code no longer trains on the snapshot's rows.
    rows = pd.read_csv(tmp_path / "rows.csv")
    rows.iloc[::2].to_csv(tmp_path / "rows.csv", index=False)
    done = run_cli("reproduce", uri, home=session_workspace.home, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith(f"{uri} did not reproduce: the code trained on other rows than the snapshot")
    assert any(line.split()[:3] == ["data", "training", "rows"] and line.endswith("-284 rows")
               for line in done.stdout.splitlines()), done.stdout
    assert wb.audit_log(model=name, action="reproduce")["details"].map(lambda d: d["matches"]).tolist() == [True, False]


def test_the_second_model_a_notebook_logs_in_a_loop_reproduces_from_its_cells(session_workspace, tmp_path) -> None:
    name = f"cells-{uuid.uuid4().hex[:6]}"
    cells = [
        "import mlflow\nfrom sklearn.datasets import load_breast_cancer\n"
        "from sklearn.linear_model import LogisticRegression\nimport workbench as wb",
        "%load_ext autoreload",  # a magic: the cells run in an IPython shell again
        "data = load_breast_cancer(as_frame=True)",
        # Two models in a loop, each registered: version 2 is the second log_model call of the process.
        "for C in (0.1, 10.0):\n"
        f"    with wb.start_run(experiment={name!r}):\n"
        "        mlflow.log_param('C', C)\n"
        "        model = LogisticRegression(C=C, max_iter=5000).fit(data.data, data.target)\n"
        "        mlflow.log_metric('accuracy', model.score(data.data, data.target))\n"
        "        logged = wb.log_model(model, training_data=data.data, training_labels=data.target, snapshot_data=True)\n"
        f"    print(wb.register(logged, {name!r}).uri)",
    ]
    program = ("from IPython.core.interactiveshell import InteractiveShell\nshell = InteractiveShell.instance()\n"
               f"for cell in {cells!r}:\n    shell.run_cell(cell, store_history=True).raise_error()\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WORKBENCH_HOME": str(session_workspace.home)})
    assert done.returncode == 0, done.stderr
    uri = done.stdout.strip().splitlines()[-1]
    assert uri == f"models:/{name}/2"
    result = wb.reproduce(uri)
    assert result.matches, result.summary()
    assert result.rows_compared > 0 and result.metric_differences == ()
    new_run = wb.get_run(result.new_run_id)
    assert new_run.params == {"C": "10.0"} and new_run.metrics == wb.get_run(result.original_run_id).metrics
    # The first model was trained and registered again only in the reproduction's scratch workspace.
    assert [v.version for v in wb.versions(name)] == ["2", "1"]
    assert len(wb.runs(name)) == 3


def test_a_version_without_a_snapshot_or_code_says_what_to_log_next_time(session_workspace) -> None:
    data = load_breast_cancer(as_frame=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(data.data, data.target)
    with wb.start_run(experiment="snapshots"):  # inside pytest: no script or notebook to capture
        logged = wb.log_model(model, training_data=data.data, training_labels=data.target)
    version = wb.register(logged, f"bare-{uuid.uuid4().hex[:6]}")
    with pytest.raises(ReproductionError) as raised:
        wb.reproduce(version.uri)
    message = str(raised.value)
    assert message.startswith(f"{version.uri} cannot be reproduced: it was logged without the code")
    assert "capture_code=True" in message and "snapshot_data=True" in message and "WORKBENCH_SNAPSHOT_DATA=1" in message
    assert wb.audit_log(model=version.name, action="reproduce").empty
    with pytest.raises(ReproductionError, match="without a training data snapshot"):
        wb.training_data(version.uri)
