"""Registered models, versions, aliases and lineage."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.errors import InvalidInputError, ModelNotFoundError
from workbench.profile import data_hash


def _log(X, y, experiment: str = "registry-tests") -> wb.LoggedModel:
    with wb.start_run(experiment=experiment):
        return wb.log_model(LogisticRegression(max_iter=300).fit(X, y), training_data=X, training_labels=y)


def test_register_records_lineage(numeric_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Work inside a git repository, as a project would: the commit is recorded with the version.
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print('train')\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)

    X, y = numeric_data
    logged = _log(X, y)
    name = f"lineage-{uuid.uuid4().hex[:6]}"
    version = wb.register(logged, name, description="first cut")
    assert version.version == "1"
    assert version.run_id == logged.run_id
    assert version.git_commit == commit
    assert version.data_hash == data_hash(X) == logged.data_hash
    assert version.description == "first cut"

    lineage = wb.lineage(f"models:/{name}/1")
    assert lineage.run_id == logged.run_id
    assert lineage.git_commit == commit
    assert lineage.data_hash == logged.data_hash
    assert lineage.registered_by == wb.get_settings().user


def test_register_accepts_a_run_relative_uri(numeric_data) -> None:
    X, y = numeric_data
    logged = _log(X, y)
    name = f"runs-uri-{uuid.uuid4().hex[:6]}"
    version = wb.register(f"runs:/{logged.run_id}/model", name)
    assert version.source == logged.model_uri
    assert version.data_hash == logged.data_hash


def test_aliases_point_at_versions_and_load_by_alias(numeric_data) -> None:
    X, y = numeric_data
    name = f"alias-{uuid.uuid4().hex[:6]}"
    v1 = wb.register(_log(X, y), name)
    v2 = wb.register(_log(X, y), name)
    wb.set_alias(name, "champion", v1.version)
    wb.set_alias(name, "challenger", v2.version)
    assert wb.resolve(f"models:/{name}@champion").version == "1"
    assert wb.get_version(name, alias="challenger").version == "2"
    assert [(v.version, v.aliases) for v in wb.versions(name)] == [("2", ("challenger",)), ("1", ("champion",))]
    registered = {m.name: m for m in wb.models()}[name]
    assert registered.latest_version == "2"
    assert dict(registered.aliases) == {"champion": "1", "challenger": "2"}

    wb.set_alias(name, "champion", v2.version)  # promote
    assert wb.resolve(f"models:/{name}@champion").version == "2"
    model = wb.load_model(f"models:/{name}@champion")
    assert len(model.predict(X.head(3))) == 3

    wb.delete_alias(name, "challenger")
    with pytest.raises(ModelNotFoundError, match="has no alias @challenger"):
        wb.resolve(f"models:/{name}@challenger")


def test_version_tags(numeric_data) -> None:
    X, y = numeric_data
    name = f"tags-{uuid.uuid4().hex[:6]}"
    wb.register(_log(X, y), name, tags={"team": "risk"})
    wb.set_version_tag(name, 1, "validated", "yes")
    tags = wb.get_version(name, 1).tags
    assert tags["team"] == "risk" and tags["validated"] == "yes"


def test_bad_names_and_uris_get_clear_errors(registered_model) -> None:
    with pytest.raises(ModelNotFoundError, match="no registered model named 'nope'"):
        wb.versions("nope")
    with pytest.raises(ModelNotFoundError, match="has no version 99"):
        wb.load_model(f"models:/{registered_model.name}/99")
    with pytest.raises(ModelNotFoundError, match="has no alias @ghost"):
        wb.load_model(f"models:/{registered_model.name}@ghost")
    with pytest.raises(InvalidInputError, match="not a valid alias"):
        wb.set_alias(registered_model.name, "1bad", registered_model.version)
    with pytest.raises(InvalidInputError, match="reserved by MLflow"):
        wb.set_alias(registered_model.name, "latest", registered_model.version)
    with pytest.raises(InvalidInputError, match="not a registered model URI"):
        wb.resolve("runs:/abc/model")
    with pytest.raises(ModelNotFoundError, match="give a model folder, or a URI such as"):
        wb.load_model("/no/such/folder")
    with pytest.raises(InvalidInputError, match="not a usable model name"):
        wb.register("models:/m-0", "a/b")


def test_a_model_logged_without_training_data_has_no_profile(numeric_data) -> None:
    X, y = numeric_data
    with wb.start_run(experiment="registry-tests"):
        logged = wb.log_model(LogisticRegression().fit(X, y))
    with pytest.raises(ModelNotFoundError, match="has no reference profile"):
        wb.load_profile(logged.model_uri)


def test_registering_writes_nothing_to_stderr_but_real_problems(numeric_data, capfd) -> None:
    """MLflow's "Successfully registered model / Created version" lines showed as red boxes in cells."""
    import sys

    from workbench import _mlflow

    X, y = numeric_data
    name = f"quiet-{uuid.uuid4().hex[:6]}"
    logged = _log(X, y)
    capfd.readouterr()
    wb.register(logged, name)
    wb.register(_log(X, y), name)  # the second version: MLflow says the model "already exists" too
    err = capfd.readouterr().err
    assert "registered model" not in err.lower() and "Created version" not in err, err

    with _mlflow.quiet_registry():
        print(f"Created version '3' of model '{name}'.", file=sys.stderr)
        print("WARNING mlflow: the artifact store is nearly full", file=sys.stderr)
    assert capfd.readouterr().err == "WARNING mlflow: the artifact store is nearly full\n"


def test_versions_and_lineage_show_as_cards(numeric_data) -> None:
    X, y = numeric_data
    name = f"card-{uuid.uuid4().hex[:6]}"
    import mlflow

    with wb.start_run(experiment="registry-tests"):
        mlflow.log_metric("accuracy", 0.875)
        logged = wb.log_model(LogisticRegression(max_iter=300).fit(X, y), training_data=X, training_labels=y)
    version = wb.register(logged, name, description="<script>alert(1)</script> first cut")
    wb.set_alias(name, "champion", version.version)
    card = wb.resolve(f"models:/{name}@champion")._repr_html_()
    assert f"{name} v1" in card and "@champion" in card and "ready" in card
    assert "<script>" not in card and "&lt;script&gt;alert(1)&lt;/script&gt; first cut" in card

    lineage = wb.lineage(f"models:/{name}@champion")._repr_html_()
    assert f"{name} v1" in lineage and version.run_id in lineage and "accuracy 0.875" in lineage
