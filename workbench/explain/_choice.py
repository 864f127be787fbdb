"""Choosing the SHAP explainer for a model (``method="auto"`` and its alternatives).

``auto`` takes SHAP's TreeExplainer where it applies (a tree model, also ending a Pipeline, that SHAP
can read and walk on the model's input) and the permutation explainer otherwise; ``tree`` insists on
the TreeExplainer; ``permutation`` and ``kernel`` need a background sample. Each refusal says why and
lists the options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.errors import ExplanationError
from workbench.explain._outputs import ExplainedOutput, estimator_output, pyfunc_output
from workbench.explain._shap import OPTIONS
from workbench.explain._source import ModelSource
from workbench.explain._tree import TreePlan, build_tree, is_tree_model, split_pipeline

__all__ = ["Choice", "choose"]


@dataclass(frozen=True)
class Choice:
    """The explainer chosen for a model: the tree plan, or the outputs the model-agnostic one explains."""

    #: tree, permutation or kernel
    method: str
    tree: TreePlan | None
    output: ExplainedOutput | None

    @property
    def kind(self) -> str:
        """What is explained: probability, log_odds, decision_function, prediction or output."""
        return self.tree.kind if self.tree is not None else self._agnostic.kind

    @property
    def labels(self) -> tuple[Any, ...] | None:
        """One label per output (classes, output names); ``None`` for a single unnamed output."""
        return self.tree.labels if self.tree is not None else self._agnostic.labels

    @property
    def argmax(self) -> bool:
        """Explain each row's largest output when no target is named (classifiers)."""
        return self.tree.labels is not None if self.tree is not None else self._agnostic.argmax

    @property
    def _agnostic(self) -> ExplainedOutput:
        assert self.output is not None
        return self.output


def choose(method: str, source: ModelSource, background: pd.DataFrame | None) -> Choice:
    """The explainer ``method`` (``auto``, ``tree``, ``permutation``, ``kernel``) means for ``source``."""
    estimator = source.estimator
    if method in ("auto", "tree") and estimator is not None:
        _, final = split_pipeline(estimator)
        if method == "tree" or is_tree_model(final):
            try:
                return Choice("tree", build_tree(estimator, background), None)
            except ExplanationError:
                if method == "tree" or background is None:
                    raise
    elif method == "tree":
        raise ExplanationError(
            f"method='tree' needs a tree model loaded as such (e.g. the sklearn flavor); this model is "
            f"only callable through its pyfunc. Options: {OPTIONS}"
        )
    chosen = "permutation" if method in ("auto", "tree") else method
    if background is None:
        raise ExplanationError(
            f"method='{chosen}' needs a background sample, and this model has no reference profile: "
            "log it with workbench.log_model(model, training_data=X), or pass background= (a DataFrame "
            f"of typical input rows). Options: {OPTIONS}"
        )
    if estimator is not None:
        return Choice(chosen, None, estimator_output(estimator))
    return Choice(chosen, None, pyfunc_output(source.pyfunc, background.head(5)))
