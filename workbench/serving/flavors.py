"""Load a scikit-learn or XGBoost model straight from its MLmodel file, without importing MLflow.

Importing MLflow costs the server about as much start-up time as everything else together (its
package pulls in tracking, GenAI and tracing code a model server never calls), and a skops file
makes skops list every scikit-learn estimator, importing all of scikit-learn and most of SciPy.
When the MLmodel says exactly how to load the model, the server does what MLflow's flavor loader
would do, with the same files and the same answers:

- ``sklearn``: ``pickle``, ``cloudpickle`` or ``skops`` (with the trusted types the MLmodel lists),
  predicted with the flavor's ``predict_fn``, as ``mlflow.sklearn`` does;
- ``xgboost``: ``<model_class>().load_model(file)``, predicted as ``mlflow.xgboost``'s wrapper does
  (a ``Booster`` through a ``DMatrix``, with feature names checked).

Anything else (other flavors, code paths, tensor signatures, parameters in the signature) returns
``None`` and the server loads the model through ``mlflow.pyfunc`` as before.

A *snapshot* makes a skops model start fast too: :func:`write_snapshot` (called by a model image's
build) loads the model once, the skops way, and pickles the loaded estimator into a folder together
with the versions it was made with. ``workbench serve --snapshot DEST`` loads that pickle instead
when the model, Python, scikit-learn and NumPy still match. The snapshot is made by the build from
the model it serves; a server never reads one unless told to.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DirectModel", "load_direct", "loads_without_mlflow", "needs_snapshot", "read_mlmodel", "snapshot_versions",
           "write_snapshot"]

SNAPSHOT_MODEL = "model.pkl"
SNAPSHOT_INFO = "snapshot.json"


@dataclass(frozen=True)
class DirectModel:
    """A model loaded without MLflow: its flavor, the library's own object and how it predicts."""

    #: ``sklearn`` or ``xgboost``.
    flavor: str
    #: The estimator or booster itself.
    raw: Any
    #: What MLflow's pyfunc wrapper would call: ``predict_fn(frame)`` gives the model's answer.
    predict_fn: str
    #: Name of a single named output in the signature, else ``predict``.
    output_name: str
    #: Whether the model came from a snapshot (see the module docstring).
    from_snapshot: bool = False

    def predict(self, frame: Any) -> Any:
        """The model's answer for a frame, exactly as MLflow's flavor wrapper gives it."""
        if self.flavor == "xgboost":
            import xgboost as xgb

            if isinstance(self.raw, xgb.Booster):
                return self.raw.predict(xgb.DMatrix(frame), validate_features=True)
            if isinstance(self.raw, xgb.XGBModel):
                return self.raw.predict(frame, validate_features=True)
        return getattr(self.raw, self.predict_fn)(frame)


def read_mlmodel(model_dir: str | Path) -> dict[str, Any]:
    """The MLmodel file of a model folder, as a dict."""
    loaded = yaml.load((Path(model_dir) / "MLmodel").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return loaded if isinstance(loaded, dict) else {}


def _signature_part(mlmodel: Mapping[str, Any], key: str) -> list[dict[str, Any]] | None:
    raw = (mlmodel.get("signature") or {}).get(key)
    if not raw:
        return None
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    return parsed if isinstance(parsed, list) else None


def output_name(mlmodel: Mapping[str, Any]) -> str:
    """The name of the model's one named output column, or ``predict`` (as MLflow's output schema
    names a single column; tensors and several outputs are named by the result itself)."""
    outputs = _signature_part(mlmodel, "outputs") or []
    if len(outputs) == 1 and outputs[0].get("type") != "tensor":
        name = outputs[0].get("name")
        if name not in (None, 0, "0"):
            return str(name)
    return "predict"


def _directly_loadable(mlmodel: Mapping[str, Any]) -> str | None:
    """The flavor to load without MLflow, or ``None`` when only ``mlflow.pyfunc`` knows how."""
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    loader = pyfunc.get("loader_module")
    flavor = {"mlflow.sklearn": "sklearn", "mlflow.xgboost": "xgboost"}.get(str(loader))
    if flavor is None or flavor not in flavors or pyfunc.get("code") or flavors[flavor].get("code"):
        return None
    inputs = _signature_part(mlmodel, "inputs")
    if not inputs or any(c.get("type") == "tensor" or c.get("name") in (None, "") for c in inputs):
        return None  # tensors and unnamed columns go through MLflow's own parsing
    if (mlmodel.get("signature") or {}).get("params"):
        return None  # parameters are checked and passed on by MLflow's pyfunc
    if os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in ("false", "0"):
        return None  # MLflow refuses to load it and says why: leave that to MLflow
    return flavor


def loads_without_mlflow(mlmodel: Mapping[str, Any]) -> bool:
    """Whether the server loads and serves this model (its parsed MLmodel) without MLflow."""
    return _directly_loadable(mlmodel) is not None


def snapshot_versions() -> dict[str, str]:
    """What a snapshot must be loaded with: Python (pickles do not change between its patch
    releases), scikit-learn and NumPy, as installed here."""
    import numpy
    import sklearn

    return {"python": ".".join(map(str, sys.version_info[:2])), "scikit-learn": str(sklearn.__version__),
            "numpy": str(numpy.__version__)}


def _snapshot_info(model_dir: Path, mlmodel: Mapping[str, Any]) -> dict[str, str]:
    source = model_dir / str(((mlmodel.get("flavors") or {}).get("python_function") or {}).get("model_path", ""))
    return {
        "model_uuid": str(mlmodel.get("model_uuid") or ""),
        "source_size": str(source.stat().st_size if source.is_file() else -1),
        **snapshot_versions(),
    }


def _load_snapshot(model_dir: Path, mlmodel: Mapping[str, Any], snapshot: Path) -> Any | None:
    info_file = snapshot / SNAPSHOT_INFO
    if not info_file.is_file():
        return None
    if json.loads(info_file.read_text()) != _snapshot_info(model_dir, mlmodel):
        print(f"workbench: the snapshot in {snapshot} was made for another model or library versions; "
              "loading the model itself", file=sys.stderr, flush=True)
        return None
    with open(snapshot / SNAPSHOT_MODEL, "rb") as f:
        return pickle.load(f)


def _load_sklearn(model_dir: Path, mlmodel: Mapping[str, Any]) -> Any:
    conf = mlmodel["flavors"]["sklearn"]
    path = model_dir / str(mlmodel["flavors"]["python_function"]["model_path"])
    serialization = conf.get("serialization_format", "pickle")
    if serialization == "skops":
        from workbench._skops import skops_io

        return skops_io().load(path, trusted=conf.get("skops_trusted_types"))
    with open(path, "rb") as f:
        if serialization == "pickle":
            return pickle.load(f)
        import cloudpickle

        return cloudpickle.load(f)


def _load_xgboost(model_dir: Path, mlmodel: Mapping[str, Any]) -> Any:
    import importlib

    conf = mlmodel["flavors"]["xgboost"]
    module_name, _, class_name = str(conf.get("model_class", "xgboost.core.Booster")).rpartition(".")
    if not module_name.startswith("xgboost"):
        raise ValueError(f"unexpected XGBoost model class {conf.get('model_class')!r}")
    model = getattr(importlib.import_module(module_name), class_name)()
    model.load_model(str(model_dir / str(conf["data"])))
    return model


def load_direct(model_dir: str | Path, mlmodel: Mapping[str, Any], *, snapshot: str | Path | None = None) -> DirectModel | None:
    """The model of ``model_dir`` loaded without MLflow, or ``None`` when MLflow must load it.

    ``snapshot`` names a folder written by :func:`write_snapshot` for this model (model images
    have one); it is used only when it matches the model and the installed versions.
    """
    flavor = _directly_loadable(mlmodel)
    if flavor is None:
        return None
    model_dir = Path(model_dir)
    predict_fn = str(mlmodel["flavors"]["python_function"].get("predict_fn") or "predict")
    raw = _load_snapshot(model_dir, mlmodel, Path(snapshot)) if snapshot is not None and flavor == "sklearn" else None
    from_snapshot = raw is not None
    if raw is None:
        raw = _load_sklearn(model_dir, mlmodel) if flavor == "sklearn" else _load_xgboost(model_dir, mlmodel)
    if not hasattr(raw, predict_fn):
        return None
    return DirectModel(flavor, raw, predict_fn, output_name(mlmodel), from_snapshot)


def needs_snapshot(mlmodel: Mapping[str, Any]) -> bool:
    """Whether a model (its parsed MLmodel) starts faster from a snapshot: a skops-saved
    scikit-learn model the server loads without MLflow (pickle and cloudpickle files load fast as
    they are, and other flavors load without skops)."""
    conf = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    return _directly_loadable(mlmodel) == "sklearn" and conf.get("serialization_format") == "skops"


def write_snapshot(model_dir: str | Path, dest: str | Path) -> bool:
    """Load a skops-saved scikit-learn model once and pickle it into ``dest`` for fast starts.

    Returns whether a snapshot was written (see :func:`needs_snapshot`). It loads where Python
    (major.minor), scikit-learn and NumPy are those it was written with (:func:`snapshot_versions`).
    """
    model_dir, dest = Path(model_dir), Path(dest)
    mlmodel = read_mlmodel(model_dir)
    if not needs_snapshot(mlmodel):
        return False
    raw = _load_sklearn(model_dir, mlmodel)
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / SNAPSHOT_MODEL, "wb") as f:
        pickle.dump(raw, f, protocol=pickle.HIGHEST_PROTOCOL)
    (dest / SNAPSHOT_INFO).write_text(json.dumps(_snapshot_info(model_dir, mlmodel)))
    return True
