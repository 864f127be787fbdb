"""The server loads scikit-learn and XGBoost models without MLflow, and answers as MLflow's pyfunc does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.packaging import prepare_context, serving_requirements
from workbench.registry import download_model
from workbench.serving.flavors import SNAPSHOT_INFO, load_direct, read_mlmodel, write_snapshot
from workbench.serving.model import ServedModel

_FRESH_LOAD = """
import json, sys
from workbench.serving.model import ServedModel
model = ServedModel.load(sys.argv[1], snapshot=sys.argv[2] if len(sys.argv) > 2 else None)
print(json.dumps({"direct": model.direct is not None,
                  "snapshot": bool(model.direct and model.direct.from_snapshot),
                  "imported": sorted(m for m in ("mlflow", "skops.io") if m in sys.modules)}))
"""


def _fresh_load(*args: str) -> dict:
    """Load a model in a new interpreter (so imports made by other tests do not count)."""
    out = subprocess.run([sys.executable, "-c", _FRESH_LOAD, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def forest_dir(registered_model, tmp_path_factory) -> Path:
    return download_model(registered_model.uri, tmp_path_factory.mktemp("forest"))


def test_a_skops_forest_loads_without_mlflow_and_answers_as_mlflow(forest_dir, registered_model, numeric_data) -> None:
    assert read_mlmodel(forest_dir)["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert _fresh_load(str(forest_dir)) == {"direct": True, "snapshot": False, "imported": ["skops.io"]}
    X, _ = numeric_data
    served = ServedModel.load(str(forest_dir))
    (prediction,) = served.predict([served.to_batch({c: X[c].head(20).tolist() for c in X.columns})], ())
    expected = wb.load_model(registered_model.uri).predict(X.head(20))
    np.testing.assert_array_equal(prediction.outputs["predict"], expected)


def test_a_snapshot_loads_without_skops_and_only_for_its_own_model(forest_dir, numeric_data, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    assert write_snapshot(forest_dir, snapshot)
    assert _fresh_load(str(forest_dir), str(snapshot)) == {"direct": True, "snapshot": True, "imported": []}
    X, _ = numeric_data
    mlmodel = read_mlmodel(forest_dir)
    from_snapshot = load_direct(forest_dir, mlmodel, snapshot=snapshot)
    from_model = load_direct(forest_dir, mlmodel)
    assert from_snapshot is not None and from_snapshot.from_snapshot
    assert from_model is not None and not from_model.from_snapshot
    np.testing.assert_array_equal(from_snapshot.raw.predict_proba(X), from_model.raw.predict_proba(X))
    # a snapshot made for another model (or other library versions) is ignored, never trusted
    info = json.loads((snapshot / SNAPSHOT_INFO).read_text())
    (snapshot / SNAPSHOT_INFO).write_text(json.dumps({**info, "model_uuid": "another-model"}))
    stale = load_direct(forest_dir, mlmodel, snapshot=snapshot)
    assert stale is not None and not stale.from_snapshot


def test_a_pickle_or_cloudpickle_model_needs_no_snapshot(numeric_data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    with wb.start_run(experiment="flavor-tests"):
        logged = wb.log_model(LogisticRegression().fit(X, y), training_data=X, serialization_format="cloudpickle")
    folder = download_model(logged.model_uri, tmp_path / "model")
    assert not write_snapshot(folder, tmp_path / "snapshot")
    assert _fresh_load(str(folder)) == {"direct": True, "snapshot": False, "imported": []}


def test_xgboost_loads_without_mlflow_and_answers_as_mlflow(numeric_data, tmp_path: Path) -> None:
    import xgboost as xgb

    X, y = numeric_data
    with wb.start_run(experiment="flavor-tests"):
        logged = wb.log_model(xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y), training_data=X)
    folder = download_model(logged.model_uri, tmp_path / "model")
    assert _fresh_load(str(folder)) == {"direct": True, "snapshot": False, "imported": []}
    served = ServedModel.load(str(folder))
    assert served.flavor == "xgboost" and served.output_names[0] == "predict"
    np.testing.assert_array_equal(served.predict_frame(X.head(50)), wb.load_model(logged.model_uri).predict(X.head(50)))


def test_other_models_still_load_through_mlflow(tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ANN001
            return model_input * 2

    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with wb.start_run(experiment="flavor-tests"):
        logged = wb.log_model(Doubler(), training_data=frame)
    folder = download_model(logged.model_uri, tmp_path / "model")
    assert load_direct(folder, read_mlmodel(folder)) is None
    served = ServedModel.load(str(folder))
    assert served.direct is None and served.pyfunc is not None
    assert served.predict_frame(frame)["a"].tolist() == [2.0, 4.0]


def test_images_of_directly_loaded_models_carry_no_mlflow(registered_model, tmp_path: Path) -> None:
    names = {r.split(">")[0].split("=")[0] for r in serving_requirements(["mlflow==3.17.2", "scikit-learn==1.9.1"],
                                                                        with_mlflow=False)}
    assert "mlflow" not in names and "mlflow-skinny" not in names
    assert {"click", "pyyaml", "cloudpickle", "starlette", "uvicorn", "scikit-learn"} <= names
    # an XGBoost model made with the CPU build gets the CPU build only (not the GPU one, 470 MB more)
    xgb_reqs = serving_requirements(["mlflow==3.17.2", "xgboost-cpu==3.2.0", "xgboost==3.2.0"], with_mlflow=False)
    assert "xgboost-cpu==3.2.0" in xgb_reqs and not any(r.startswith("xgboost=") for r in xgb_reqs)
    ctx = prepare_context(registered_model.uri, tmp_path / "ctx")
    assert not any(r.startswith("mlflow") for r in ctx.requirements)
    assert "--snapshot" in ctx.dockerfile.read_text()
