"""Calling the model: which of its outputs are explained, and computing them from input rows.

For a classifier the explained outputs are its class probabilities (or, without ``predict_proba``,
its ``decision_function``), for a regressor its prediction. A model known only through its pyfunc is
called once on a few background rows (the probe) to learn how many outputs it has and whether they
look like probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from workbench.errors import ExplanationError, SchemaError, WorkbenchError

if TYPE_CHECKING:
    from workbench.serving.model import ServedModel

__all__ = [
    "ExplainedOutput",
    "ServedCall",
    "class_labels",
    "estimator_input",
    "estimator_output",
    "model_outputs",
    "numeric_2d",
    "pyfunc_output",
    "same_label",
]

_T = TypeVar("_T")


class ServedCall:
    """A served model called as the server calls it: on frames in the training dtypes, without
    MLflow's signature enforcement (which refuses nullable integers, categories and time zones)."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served

    def predict(self, frame: pd.DataFrame, params: Any = None) -> Any:
        """The served model's answer for ``frame`` (``params`` is accepted like a pyfunc's, and unused)."""
        return self.served.predict_frame(frame)


@dataclass(frozen=True)
class ExplainedOutput:
    """How to compute the explained outputs (one column per class or output) from input rows."""

    #: probability, decision_function, prediction or output
    kind: str
    #: One label per output column (classes, output names); ``None`` for a single unnamed output.
    labels: tuple[Any, ...] | None
    #: Explain the largest output of each row when no target is named (classifiers).
    argmax: bool
    compute: Callable[[pd.DataFrame], np.ndarray]


def numeric_2d(raw: Any, n_rows: int) -> tuple[np.ndarray, tuple[Any, ...] | None]:
    """A model's result as an (n_rows, k) float array and the names of its k columns."""
    names: tuple[Any, ...] | None = None
    if isinstance(raw, pd.DataFrame):
        names = tuple(raw.columns) if raw.shape[1] > 1 else None
        raw = raw.to_numpy()
    elif isinstance(raw, pd.Series):
        raw = raw.to_numpy()
    array = np.asarray(raw)
    if array.dtype.kind not in "biuf":
        example = array.reshape(-1)[0] if array.size else None
        raise ExplanationError(
            f"the model answers with {array.dtype} values (e.g. {example!r}), not numbers, and SHAP "
            "explains numeric outputs only; classifiers of the sklearn, xgboost, lightgbm and catboost "
            "flavors are explained in their class probabilities: log the classifier itself with "
            "workbench.log_model, or make a pyfunc model return one probability column per class"
        )
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise ExplanationError(
            f"the model answers with shape {list(array.shape)} for {n_rows} rows; SHAP explains one number "
            "(or one per class) per row"
        )
    if names is None and array.shape[1] > 1:
        names = tuple(range(array.shape[1]))
    return array.astype(np.float64, copy=False), names


def estimator_input(estimator: Any, frame: pd.DataFrame) -> Any:
    """``frame`` as ``estimator`` was fitted on it: an array for scikit-learn estimators fitted on
    arrays (they warn when given named columns), the table for everything else (column names are how
    most models find their inputs)."""
    if hasattr(estimator, "n_features_in_") and not hasattr(estimator, "feature_names_in_"):
        return frame.to_numpy()
    return frame


def estimator_output(estimator: Any) -> ExplainedOutput:
    """The explained outputs of a Python estimator: probabilities, decision function or prediction."""
    classes = getattr(estimator, "classes_", None)
    if classes is not None and callable(getattr(estimator, "predict_proba", None)):
        return ExplainedOutput("probability", class_labels(classes), True,
                               lambda f: np.asarray(estimator.predict_proba(estimator_input(estimator, f)),
                                                    np.float64))
    if classes is not None and callable(getattr(estimator, "decision_function", None)):
        def decision(f: pd.DataFrame) -> np.ndarray:
            d = np.asarray(estimator.decision_function(estimator_input(estimator, f)), np.float64)
            return np.column_stack([-d, d]) if d.ndim == 1 else d
        return ExplainedOutput("decision_function", class_labels(classes), True, decision)

    def predict(f: pd.DataFrame) -> np.ndarray:
        return numeric_2d(estimator.predict(estimator_input(estimator, f)), len(f))[0]
    return ExplainedOutput("prediction", None, False, predict)


def pyfunc_output(pyfunc: Any, probe: pd.DataFrame) -> ExplainedOutput:
    """The explained outputs of a model known only through ``predict``, learned by calling it on
    ``probe`` (a few background rows)."""
    def compute(f: pd.DataFrame) -> np.ndarray:
        return numeric_2d(pyfunc.predict(f), len(f))[0]

    try:
        raw = pyfunc.predict(probe)
    except Exception as exc:
        raise ExplanationError(
            f"the model could not predict on its background sample ({type(exc).__name__}: {exc}); "
            "give background= rows the model accepts"
        ) from exc
    values, names = numeric_2d(raw, len(probe))
    if names is None:
        return ExplainedOutput("prediction", None, False, compute)
    looks_like_probabilities = bool(
        (values >= 0).all() and (values <= 1).all() and np.allclose(values.sum(axis=1), 1.0, atol=1e-6)
    )
    return ExplainedOutput("probability" if looks_like_probabilities else "output", names,
                           looks_like_probabilities, compute)


def model_outputs(compute: Callable[[Any], _T], data: Any) -> _T:
    """The explained rows' own outputs: a failure here is the input's fault, answered as the server
    does (:class:`~workbench.errors.SchemaError`)."""
    try:
        return compute(data)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise SchemaError(f"the model could not predict on this input: {type(exc).__name__}: {exc}") from exc


def same_label(label: Any, target: Any) -> bool:
    """Whether ``target`` names the class or output ``label``."""
    # Targets arriving over HTTP or the command line are strings: "1" names the class 1.
    if isinstance(target, str):
        return str(_scalar(label)) == target
    try:
        return bool(_scalar(label) == target)
    except Exception:  # labels that do not compare with the target's type
        return False


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def class_labels(classes: Any) -> tuple[Any, ...]:
    """Class labels as plain Python values (they end up in messages, JSON and comparisons)."""
    return tuple(_scalar(c) for c in classes)
