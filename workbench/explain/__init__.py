"""Explanations: why a registered model or a live deployment answers as it does (SHAP underneath).

- :class:`Explainer` (fit/explain, scikit-learn manner): SHAP's TreeExplainer for tree ensembles and
  gradient boosting, also at the end of a scikit-learn Pipeline (contributions of one-hot columns
  summed back into their input column), a model-agnostic explainer (permutation or kernel) with a
  background sample from the model's reference profile for everything else.
- Functions: :func:`explain_local` (per row), :func:`explain_global` (per feature), :func:`explain_endpoint`
  (from a running server's ``/v2/models/{name}/explain`` route), :func:`explain_live` and
  :func:`explain_shift` (live traffic from the prediction log: which features moved the answers).
  There is no function called ``explain``: ``workbench.explain`` is this package, and importing it
  would replace such a function on ``workbench``.
- Results: :class:`LocalExplanation`, :class:`GlobalExplanation`, :class:`FeatureDependence`,
  :class:`ImportanceShift`, each with ``to_frame()``, ``to_dict()`` and a notebook view.

Example::

    import workbench as wb
    local = wb.explain_local("models:/churn@champion", X.head(3))
    local.to_frame()            # target, prediction, base_value, one contribution per input column
    local.row(0)                # feature, value, contribution: largest effect first
    wb.explain_global("models:/churn@champion").importance
"""

from __future__ import annotations

from workbench.explain.api import (
    explain_local,
    explain_endpoint,
    explain_global,
    explain_live,
    explain_shift,
    live_rows,
)
from workbench.explain.explainer import METHODS, Explainer, Method
from workbench.explain.results import (
    FeatureDependence,
    GlobalExplanation,
    ImportanceShift,
    LocalExplanation,
    select_rows,
)

__all__ = [
    "METHODS",
    "Explainer",
    "FeatureDependence",
    "GlobalExplanation",
    "ImportanceShift",
    "LocalExplanation",
    "Method",
    "explain_local",
    "explain_endpoint",
    "explain_global",
    "explain_live",
    "explain_shift",
    "live_rows",
    "select_rows",
]
