"""Models defined the way a notebook defines them: run as ``__main__`` by the conformance suite.

A data scientist's notebook defines a preprocessing function, a custom estimator and an
``mlflow.pyfunc.PythonModel`` in its own cells, so their module is ``__main__``. This script does
the same in a fresh process, logs and registers each with the workbench on the real table, and
writes what ``model.predict`` answers on the table's rows, for the suite to compare with what the
deployed server answers in another process.

    python tests/e2e/notebook_models.py OUT_DIR PREFIX

writes ``OUT_DIR/models.json`` ({kind: model URI}) and ``OUT_DIR/<kind>.parquet`` (predictions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import real_table  # noqa: E402

import workbench as wb  # noqa: E402


def seconds(column: pd.Series) -> pd.Series:
    """Seconds since the epoch, whatever the datetime unit or time zone."""
    if getattr(column.dtype, "tz", None) is not None:
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return column.astype("datetime64[us]").astype("int64").where(column.notna()) / 1e6


def to_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as numbers a tree takes: datetimes as seconds, text as a stable hash share."""
    out = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            out[name] = seconds(column)
        elif isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(column.dtype) \
                or pd.api.types.is_bool_dtype(column.dtype):
            text = column.astype("string")
            hashed = pd.util.hash_pandas_object(text.fillna(""), index=False).to_numpy() % 1000 / 1000
            out[name] = pd.Series(hashed, index=column.index).where(text.notna())
        else:
            out[name] = pd.to_numeric(column).astype("float64")
    return pd.DataFrame(out)


class ShrunkForest(ClassifierMixin, BaseEstimator):
    """A custom estimator: gradient-boosted trees whose probabilities are shrunk towards 1/2."""

    def __init__(self, shrink: float = 0.1) -> None:
        self.shrink = shrink

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ShrunkForest:
        self.trees_ = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(X, y)
        self.classes_ = self.trees_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return (1 - self.shrink) * self.trees_.predict_proba(X) + self.shrink / 2

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TwoOutputs(mlflow.pyfunc.PythonModel):
    """A custom pyfunc model with two outputs, ``label`` and ``score``, from typed columns."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        score = (
            model_input["rate marriage"] / 5
            + model_input["religious"].astype("Float64").fillna(0).astype("float64") / 10
            + model_input["churchgoer"].astype("boolean").fillna(False).astype("float64") / 4
            + seconds(model_input["visit local"]).fillna(0) % 86_400 / 86_400
            + model_input["marriage share"]
        )
        return pd.DataFrame({"label": (score > 1.2).astype(np.int64), "score": score.astype("float64")})


def main(out: Path, prefix: str) -> None:
    features, _, cheated = real_table()
    out.mkdir(parents=True, exist_ok=True)
    uris = {}
    forest = make_pipeline(FunctionTransformer(to_numbers), ShrunkForest()).fit(features, cheated)
    two = TwoOutputs()
    for kind, model, predictions in (
        ("notebook-class", forest, lambda: pd.DataFrame({"predict": forest.predict(features)})),
        ("pyfunc-two-outputs", two, lambda: two.predict(None, features)),
    ):
        with wb.start_run(experiment=f"{prefix}-conformance", run_name=kind):
            logged = wb.log_model(model, training_data=features, training_labels=cheated)
        version = wb.register(logged, f"{prefix}-{kind}")
        uris[kind] = version.uri
        predictions().to_parquet(out / f"{kind}.parquet")
    (out / "models.json").write_text(json.dumps(uris))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
