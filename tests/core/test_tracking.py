"""Experiments and runs on the embedded MLflow store, as a notebook user drives them."""

from __future__ import annotations

import math
import uuid
import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.errors import (
    ExperimentNotFoundError,
    InvalidInputError,
    RunNotFoundError,
    StoreUnavailableError,
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_start_run_creates_the_experiment_with_artifacts_in_the_workspace(session_workspace) -> None:
    name = _name("exp")
    with wb.start_run(experiment=name, run_name="first") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("loss", 1.5)
    exp = wb.get_experiment(name)
    assert exp.artifact_location.startswith(session_workspace.artifact_root.as_uri())
    summary = wb.get_run(run.info.run_id)
    assert summary.name == "first"
    assert summary.status == "FINISHED"
    assert summary.params == {"alpha": "0.5"}
    assert summary.metrics == {"loss": 1.5}
    assert summary.user == session_workspace.user


def test_runs_compare_and_best_run(session_workspace) -> None:
    name = _name("cmp")
    ids = []
    for depth, acc in [(2, 0.71), (4, 0.83), (8, 0.79)]:
        with wb.start_run(experiment=name, run_name=f"d{depth}") as run:
            mlflow.log_param("depth", depth)
            mlflow.log_metric("accuracy", acc)
            mlflow.log_metric("loss", 1 - acc)
            ids.append(run.info.run_id)
    frame = wb.runs(name)
    assert len(frame) == 3
    assert {"run_id", "name", "metrics.accuracy", "metrics.loss", "params.depth"} <= set(frame.columns)
    assert list(frame["name"]) == ["d8", "d4", "d2"]  # newest first

    side_by_side = wb.compare_runs(ids)
    assert list(side_by_side.index) == ["metrics.accuracy", "metrics.loss", "params.depth"]
    assert side_by_side.shape == (3, 3)
    assert side_by_side.loc["metrics.accuracy"].tolist() == [0.71, 0.83, 0.79]

    assert wb.best_run(name, "accuracy").name == "d4"
    assert wb.best_run(name, "loss", mode="min").name == "d4"
    assert wb.best_run(name, "accuracy", mode="min").name == "d2"

    filtered = wb.runs(name, filter_string="metrics.accuracy > 0.75", order_by=["metrics.accuracy DESC"])
    assert list(filtered["name"]) == ["d4", "d8"]


def test_iter_runs_pages_through_every_run_once_with_a_smaller_first_page(session_workspace) -> None:
    from workbench.tracking import iter_runs

    name = f"paged-{uuid.uuid4().hex[:6]}"
    for i in range(7):
        with wb.start_run(experiment=name, run_name=f"r{i}"):
            mlflow.log_metric("m", i)
    pages = list(iter_runs(name, page_size=3, first_page=2))
    assert [len(p) for p in pages] == [2, 3, 2]
    ids = [run_id for p in pages for run_id in p["run_id"]]
    assert sorted(ids) == sorted(wb.runs(name)["run_id"]) and len(set(ids)) == 7


def test_metric_history_is_ordered_by_step(session_workspace) -> None:
    with wb.start_run(experiment=_name("hist")) as run:
        for step in (2, 0, 1):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    history = wb.metric_history(run.info.run_id, "loss")
    assert history["step"].tolist() == [0, 1, 2]
    assert math.isclose(history["value"].iloc[2], 1 / 3)


def test_autolog_passes_through_to_mlflow(session_workspace, numeric_data) -> None:
    X, y = numeric_data
    wb.autolog(log_models=False, silent=True)
    try:
        with wb.start_run(experiment=_name("auto")) as run:
            LogisticRegression(max_iter=200).fit(X, y)
    finally:
        mlflow.autolog(disable=True)
    summary = wb.get_run(run.info.run_id)
    assert "training_accuracy_score" in summary.metrics
    assert summary.params["max_iter"] == "200"


def test_log_model_stores_signature_example_and_profile(session_workspace, credit_data) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = credit_data
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["region", "tier"]), remainder="passthrough"),
        RandomForestClassifier(n_estimators=10, random_state=0),
    ).fit(X, y)
    with wb.start_run(experiment=_name("logm")) as run:
        logged = wb.log_model(model, training_data=X, training_labels=y)
    assert logged.run_id == run.info.run_id
    assert logged.flavor == "sklearn"
    inputs = logged.signature["inputs"]
    assert '"name": "region"' in inputs and '"type": "string"' in inputs
    profile = wb.load_profile(logged.model_uri)
    assert profile.n_rows == len(X)
    assert profile.feature_names == list(X.columns)
    assert profile.target == "label"
    assert profile.data_hash == logged.data_hash
    loaded = wb.load_model(logged.model_uri)
    assert (loaded.predict(X.head(20)) == model.predict(X.head(20))).all()


def test_log_model_without_an_active_run_starts_one(session_workspace, numeric_data) -> None:
    X, y = numeric_data
    logged = wb.log_model(LogisticRegression().fit(X, y), training_data=X)
    assert wb.get_run(logged.run_id).status == "FINISHED"


def test_unknown_things_get_errors_that_say_what_to_do(session_workspace) -> None:
    with pytest.raises(ExperimentNotFoundError, match=r"start a run in it with workbench.start_run"):
        wb.runs("no-such-experiment")
    with pytest.raises(RunNotFoundError, match="not found"):
        wb.get_run("0" * 32)
    with pytest.raises(InvalidInputError, match="mode must be 'max' or 'min'"):
        wb.best_run("Default", "x", mode="largest")
    with pytest.raises(InvalidInputError, match="cannot tell how to log"):
        wb.log_model(object())
    with pytest.raises(InvalidInputError, match="pandas DataFrame"):
        wb.log_model(LogisticRegression(), training_data=[[1, 2]])


def test_experiments_of_a_tracking_server_that_is_down_say_so(
    session_workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    wb.configure(tracking_uri="http://127.0.0.1:9")
    try:
        with pytest.raises(StoreUnavailableError, match=r"unavailable \(connection refused: nothing listens "
                                                        r"there\); check that the MLflow tracking server is running"):
            wb.experiments()
    finally:
        wb.configure(session_workspace)


def test_notebook_defined_functions_are_saved_by_value_unless_skops_is_asked_for(session_workspace,
                                                                                 numeric_data) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = numeric_data

    def doubled(frame):  # as a notebook cell defines it
        return frame * 2

    doubled.__module__ = "__main__"
    model = make_pipeline(FunctionTransformer(doubled), LogisticRegression(max_iter=300)).fit(X, y)
    with wb.start_run(experiment="tracking-tests"):
        with pytest.raises(InvalidInputError, match=r"__main__\..*doubled.*skops cannot load.*leave "
                                                     r"serialization_format unset"):
            wb.log_model(model, training_data=X, serialization_format="skops")
        logged = wb.log_model(model, training_data=X)
    flavor = mlflow.models.get_model_info(logged.model_uri).flavors["sklearn"]
    assert flavor["serialization_format"] == "cloudpickle"
