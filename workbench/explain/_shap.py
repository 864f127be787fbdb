"""SHAP itself: importing it, the choices a caller has, and its answers brought to one shape.

SHAP answers in several shapes, depending on the explainer and its version: one array per output or
one 3-d array, base values per output or per row and output, a binary classifier through its positive
class only. :func:`per_output` turns each into :class:`RawExplanation`'s shapes, which the explainer
then reduces to one output per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import MissingDependencyError

__all__ = ["OPTIONS", "RawExplanation", "per_output", "shap_module"]

#: The explainers a caller can choose and what each needs: the end of every "cannot explain" message.
OPTIONS = (
    "method='tree' explains tree ensembles, isolation forests and gradient boosting (scikit-learn, "
    "XGBoost, LightGBM, CatBoost), "
    "also at the end of a scikit-learn Pipeline; method='permutation' or method='kernel' explain any "
    "model with numeric outputs, given a background sample (the model's reference profile, or background=)"
)


def shap_module() -> Any:
    """The ``shap`` module, or a :class:`~workbench.errors.MissingDependencyError` saying what to install."""
    try:
        import shap
    except ImportError as exc:
        raise MissingDependencyError("explanations", "shap") from exc
    return shap


@dataclass(frozen=True)
class RawExplanation:
    """SHAP's answer for some rows, for every output, before one output is chosen per row."""

    #: (rows, features, outputs)
    values: np.ndarray
    #: (outputs,) or (rows, outputs)
    base: np.ndarray
    #: (rows, outputs): the model's own outputs, which the contributions must add up to
    outputs: np.ndarray
    #: (rows, transformed columns, outputs) before summing per input, for pipelines
    encoded: np.ndarray | None = None
    encoded_names: list[str] | None = None


def per_output(values: Any, base: Any, n_outputs: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """SHAP's values as (rows, features, outputs) and base values as (outputs,) or (rows, outputs)."""
    if isinstance(values, list):  # older SHAP: one array per output
        values = np.stack(values, axis=-1)
    values = np.asarray(values, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
        base = base.reshape(base.shape[:-1] + (1,)) if base.ndim and base.shape[-1] == 1 else base[..., None]
    if values.shape[2] == 1 and n_outputs == 2:
        # A binary classifier explained through its positive class: the other class mirrors it.
        positive = base[..., 0]
        negative = 1.0 - positive if kind == "probability" else -positive
        values = np.concatenate([-values, values], axis=2)
        base = np.stack([negative, positive], axis=-1)
    return values, base
