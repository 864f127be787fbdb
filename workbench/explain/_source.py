"""The model as the explainer sees it, and the rows it is given.

A model arrives as a URI or folder, a served model, a loaded MLflow pyfunc or a fitted estimator;
:func:`load_source` turns each into a :class:`ModelSource`: the Python estimator when there is one
(what SHAP's TreeExplainer reads), something with ``predict`` (what the model-agnostic explainers
call), its input columns and its reference sample (from the reference profile logged with it). The
background sample, which stands in for hidden features, is drawn from that reference sample or from
rows the caller gives; every table is put in the model's columns and converted as the server converts
requests (:func:`model_input`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, SchemaError
from workbench.explain._outputs import ServedCall
from workbench.profile import PROFILE_DIR, ReferenceProfile

if TYPE_CHECKING:
    from workbench.serving.model import ServedModel

__all__ = ["ESTIMATOR_FLAVORS", "ModelSource", "as_frame", "background_sample", "load_source", "model_input", "raw_model"]


@dataclass(frozen=True)
class ModelSource:
    """A loaded model: its estimator (when it is a Python estimator), or its pyfunc, and its contract."""

    estimator: Any
    pyfunc: Any
    columns: tuple[str, ...] | None
    served: ServedModel | None
    model_uri: str | None
    reference: pd.DataFrame | None


def load_source(model: Any) -> ModelSource:
    """Load ``model`` (a model URI or folder, a served or pyfunc model, or a fitted estimator)."""
    from workbench.serving.model import ServedModel

    if isinstance(model, (str, os.PathLike)):
        return _from_served(ServedModel.load(str(model)))
    if isinstance(model, ServedModel):
        return _from_served(model)
    pyfunc_module = sys.modules.get("mlflow.pyfunc")  # a PyFuncModel means MLflow is imported already
    if pyfunc_module is not None and isinstance(model, pyfunc_module.PyFuncModel):
        flavors = model.metadata.flavors
        flavor = "sklearn" if "sklearn" in flavors else next((f for f in flavors if f != "python_function"), "")
        estimator = raw_model(model, flavor)
        schema = model.metadata.get_input_schema()
        columns = None
        if schema is not None and not schema.is_tensor_spec() and all(n for n in schema.input_names()):
            columns = tuple(str(n) for n in schema.input_names())
        return ModelSource(estimator, model, columns, None, None, None)
    if callable(getattr(model, "predict", None)):
        names = getattr(model, "feature_names_in_", None)
        return ModelSource(model, None, tuple(str(n) for n in names) if names is not None else None, None, None, None)
    raise InvalidInputError(
        f"cannot explain a {type(model).__name__}: give a model URI (models:/name@alias, runs:/..., a "
        "model folder), a loaded MLflow pyfunc model, or a fitted estimator with predict()"
    )


#: Flavors whose raw model is an estimator with ``predict`` (and ``predict_proba`` for classifiers):
#: explained through it, so a classifier answering labels is explained in its class probabilities.
ESTIMATOR_FLAVORS = ("sklearn", "xgboost", "lightgbm", "catboost")


def raw_model(pyfunc: Any, flavor: str) -> Any:
    """The Python estimator inside a pyfunc of one of the :data:`ESTIMATOR_FLAVORS`, else ``None``."""
    if flavor not in ESTIMATOR_FLAVORS:
        return None
    try:
        return pyfunc.get_raw_model()
    except Exception:  # a flavor without a raw model: explained through its pyfunc
        return None


def _from_served(served: ServedModel) -> ModelSource:
    estimator = served.sklearn_model
    if estimator is None and served.direct is not None:
        estimator = served.direct.raw
    if estimator is None and served.flavor in ESTIMATOR_FLAVORS:
        estimator = raw_model(served.pyfunc, served.flavor)
    columns = tuple(c.name for c in served.columns) if served.columns is not None else None
    reference = None
    if served.model_dir is not None and (Path(served.model_dir) / PROFILE_DIR).is_dir():
        profile = ReferenceProfile.load(Path(served.model_dir) / PROFILE_DIR)
        reference = profile.sample[[c for c in profile.sample.columns if c != profile.target]]
    return ModelSource(estimator, ServedCall(served), columns, served, served.uri, reference)


def model_input(source: ModelSource, columns: list[str], frame: pd.DataFrame, *,
                what: str = "the data") -> pd.DataFrame:
    """The model's input ``columns`` of ``frame``, in order, converted as the server converts them."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what} lacks input column(s) {missing}; the model expects {columns}")
    frame = frame[columns].reset_index(drop=True)
    served = source.served
    if served is not None and served.columns is not None and len(frame):
        batch = served.to_batch({c: frame[c] for c in frame.columns})  # dtypes kept: restored as they are
        frame = served.frame([batch])[columns]
    return frame


def background_sample(reference: pd.DataFrame | None, size: int, seed: int) -> pd.DataFrame | None:
    """At most ``size`` rows of ``reference``, drawn with ``seed``: the rows that stand in for hidden
    features (``None`` without a reference sample)."""
    if reference is None:
        return None
    return reference.sample(n=min(size, len(reference)), random_state=seed).reset_index(drop=True)


def as_frame(data: Any, columns: Sequence[str]) -> pd.DataFrame:
    """``data`` as a DataFrame: a frame as it is, a Series as one row, an array in ``columns``' order."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame().T
    array = np.asarray(data)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != len(columns):
        raise InvalidInputError(
            f"data of shape {list(array.shape)} does not match the model's {len(columns)} input columns "
            f"{list(columns)}: pass a DataFrame with those columns"
        )
    return pd.DataFrame(array, columns=list(columns))
