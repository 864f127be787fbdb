"""A version registered with plain MLflow gets a reference profile without being logged again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import workbench as wb
from workbench import _mlflow
from workbench.errors import IntegrityError
from workbench.profile import PROFILE_DIR
from workbench.registry import local_model_folder
from tests.core.test_cli import run_cli


@pytest.fixture(scope="module")
def plain_version():
    """A breast-cancer forest logged and registered by MLflow alone: no profile, no hashes."""
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X, y = X.sample(frac=1.0, random_state=0), y.sample(frac=1.0, random_state=0)
    train, test, labels = X.iloc[:400], X.iloc[400:], y.iloc[:400].rename("malignant")
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(train, labels)
    _mlflow.ensure_ready()
    name = f"plain-{uuid.uuid4().hex[:6]}"
    with mlflow.start_run():
        for _ in range(3):
            mlflow.sklearn.log_model(model, name="model", input_example=train.head(), registered_model_name=name,
                                     serialization_format="cloudpickle")
    return name, train, labels, test


def test_a_plain_mlflow_version_is_monitored_explained_and_carded_once_profiled(plain_version) -> None:
    name, train, labels, test = plain_version
    uri = f"models:/{name}/1"
    with pytest.raises(wb.ModelNotFoundError, match="attach_profile"):
        wb.detect_drift(uri, test)

    profile = wb.attach_profile(uri, train, labels)

    assert profile.target == "malignant" and profile.feature_names == list(train.columns)
    assert wb.load_profile(uri).data_hash == profile.data_hash
    assert wb.get_version(name, 1).data_hash == profile.data_hash
    shifted = test.assign(**{"mean radius": test["mean radius"] * 1.6})
    assert "mean radius" in wb.detect_drift(uri, shifted).drifted_features
    explanation = wb.explain_local(uri, test.head(3))
    assert list(explanation.contributions.columns) == list(train.columns)
    card = wb.model_card(uri).to_markdown()
    assert profile.data_hash in card and "malignant" in card
    audit = wb.audit_log(model=name, action="attach_profile")
    assert len(audit) == 1 and audit["details"].iloc[0]["data_hash"] == profile.data_hash

    with pytest.raises(wb.InvalidInputError, match="already has a reference profile"):
        wb.attach_profile(uri, train)


def test_an_attached_profile_is_hashed_like_a_logged_one(plain_version) -> None:
    name, train, labels, _ = plain_version
    uri = f"models:/{name}/2"
    with pytest.raises(wb.InvalidInputError, match="not the model's inputs"):
        wb.attach_profile(uri, train.drop(columns=["mean radius"]))
    wb.attach_profile(uri, train)
    folder = Path(local_model_folder(uri, "/nonexistent"))
    summary = folder / PROFILE_DIR / "profile.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "n_rows": 1}))
    with pytest.raises(IntegrityError, match="profile.json changed"):
        wb.load_profile(uri)
    with pytest.raises(IntegrityError):
        wb.load_model(uri)


def test_workbench_profile_command(plain_version, session_workspace, tmp_path: Path) -> None:
    name, train, labels, _ = plain_version
    data = tmp_path / "train.csv"
    train.assign(malignant=labels).to_csv(data, index=False)

    out = run_cli("profile", f"models:/{name}/3", "--data", str(data), "--target", "malignant",
                  home=session_workspace.home).stdout
    assert "profile of 400 rows attached" in out and "mean radius" in out
    assert wb.load_profile(f"models:/{name}/3").target == "malignant"
