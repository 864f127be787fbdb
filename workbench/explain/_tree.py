"""The tree path: SHAP's TreeExplainer (exact TreeSHAP) over a tree model, maybe ending a Pipeline.

Tree ensembles and gradient boosting (scikit-learn, XGBoost, LightGBM, CatBoost) and isolation
forests are explained by SHAP's
``TreeExplainer``, also when such a model ends a scikit-learn ``Pipeline`` whose preprocessing keeps
track of columns: the trees are explained on the transformed columns and the contributions of the
columns made from one input (its one-hot columns) are summed into that input's contribution (see
:mod:`workbench.explain._mapping`). Forests and single trees are explained in probabilities; boosted
classifiers in probabilities when SHAP's interventional TreeSHAP reproduces them exactly, else in log
odds (their trees' own additive scale). An isolation forest is explained in its mean path length (the
average depth at which its trees isolate a row: the shorter, the more anomalous; its anomaly score is
``-2 ** (-path_length / c)``), which TreeSHAP splits exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ExplanationError
from workbench.explain._mapping import Unmappable, owners_through
from workbench.explain._outputs import class_labels, estimator_input, model_outputs, numeric_2d
from workbench.explain._shap import OPTIONS, RawExplanation, per_output, shap_module

__all__ = ["TreePlan", "build_tree", "describe", "explain_tree", "is_tree_model", "split_pipeline", "tree_outputs"]

# (module prefix, class names) of the models SHAP's TreeExplainer reads.
_TREE_MODELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("sklearn.ensemble", frozenset({
        "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
        "GradientBoostingClassifier", "GradientBoostingRegressor",
        "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
    })),
    ("sklearn.tree", frozenset({
        "DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor",
    })),
    ("xgboost", frozenset({"XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"})),
    ("lightgbm", frozenset({"LGBMClassifier", "LGBMRegressor"})),
    ("catboost", frozenset({"CatBoostClassifier", "CatBoostRegressor"})),
    ("sklearn.ensemble", frozenset({"IsolationForest"})),
)


def is_tree_model(estimator: Any) -> bool:
    """Whether SHAP's TreeExplainer reads ``estimator`` (a tree ensemble or gradient boosting model)."""
    cls = type(estimator)
    return any(cls.__module__.startswith(prefix) and cls.__name__ in names for prefix, names in _TREE_MODELS)


def describe(model: Any) -> str:
    """A model's library and class, for messages (``sklearn.LinearRegression``)."""
    return f"{type(model).__module__.split('.')[0]}.{type(model).__name__}"


@dataclass
class TreePlan:
    """A tree model (maybe after preprocessing steps) and the SHAP TreeExplainer over it."""

    steps: list[Any]
    final: Any
    explainer: Any
    #: probability, log_odds, prediction or path_length (isolation forests)
    kind: str
    labels: tuple[Any, ...] | None
    encoded_names: list[str] | None


def split_pipeline(estimator: Any) -> tuple[list[Any], Any]:
    """A scikit-learn Pipeline's preprocessing steps and its final estimator (no steps otherwise)."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        steps = [s for _, s in estimator.steps[:-1] if s is not None and s != "passthrough"]
        return steps, estimator.steps[-1][1]
    return [], estimator


def _dense(data: Any) -> Any:
    if hasattr(data, "toarray"):  # scipy sparse, e.g. from a OneHotEncoder
        return data.toarray()
    return data


def _final_input(final: Any, data: Any) -> Any:
    """Transformed rows as the final estimator was fitted on them (named columns or an array)."""
    if isinstance(data, pd.DataFrame):
        return estimator_input(final, data)
    names = getattr(final, "feature_names_in_", None)
    return pd.DataFrame(data, columns=names) if names is not None else data


def _shap_input(data: Any) -> Any:
    """Rows as TreeSHAP reads them: nullable integers and booleans (``Int64``, ``boolean``) as float64
    with NaN for their gaps (SHAP casts tables to float and cannot cast ``pd.NA``); other columns as
    they are (CatBoost reads its category columns by name)."""
    if not isinstance(data, pd.DataFrame):
        return data
    nullable = [c for c, t in data.dtypes.items()
                if isinstance(t, pd.api.extensions.ExtensionDtype) and t.kind in "biuf"]
    if not nullable:
        return data
    return data.assign(**{str(c): data[c].astype("float64") for c in nullable})


def _margins(final: Any, data: Any) -> np.ndarray:
    module = type(final).__module__
    if callable(getattr(final, "decision_function", None)):
        d = final.decision_function(data)
    elif module.startswith("xgboost"):
        d = final.predict(data, output_margin=True)
    elif module.startswith("lightgbm"):
        d = final.predict(data, raw_score=True)
    elif module.startswith("catboost"):
        d = final.predict(data, prediction_type="RawFormulaVal")
    else:
        raise ExplanationError(f"cannot read the log odds of a {describe(final)}: use method='permutation'")
    d = np.asarray(d, dtype=np.float64)
    return np.column_stack([-d, d]) if d.ndim == 1 else d


def tree_outputs(plan: TreePlan, data: Any) -> np.ndarray:
    """The outputs ``plan`` explains (probabilities, log odds or predictions) for transformed rows."""
    rows = _final_input(plan.final, data)
    if plan.kind == "probability":
        return np.asarray(plan.final.predict_proba(rows), dtype=np.float64)
    if plan.kind == "log_odds":
        return _margins(plan.final, rows)
    if plan.kind == "path_length":
        return _path_lengths(plan.final, rows)
    return numeric_2d(plan.final.predict(rows), len(data))[0]


def _is_isolation_forest(model: Any) -> bool:
    return type(model).__module__.startswith("sklearn.ensemble") and type(model).__name__ == "IsolationForest"


def _path_lengths(forest: Any, data: Any) -> np.ndarray:
    """An isolation forest's mean path length per row (what TreeSHAP explains), from its score:
    ``score_samples = -2 ** (-length / c(max_samples_))``."""
    from sklearn.ensemble._iforest import _average_path_length

    scores = np.asarray(forest.score_samples(data), dtype=np.float64)
    return (-np.log2(-scores) * float(_average_path_length([forest.max_samples_])[0]))[:, None]


def build_tree(estimator: Any, background: pd.DataFrame | None) -> TreePlan:
    """The TreeExplainer for ``estimator``; raises ExplanationError saying why it cannot be one."""
    shap = shap_module()
    steps, final = split_pipeline(estimator)
    if not is_tree_model(final):
        raise ExplanationError(
            f"method='tree' needs a tree ensemble or gradient boosting model, and this model is a "
            f"{describe(final)}. Options: {OPTIONS}"
        )
    background_t = None
    encoded_names = None
    if steps:
        if background is not None:
            try:
                _, transformed = owners_through(steps, background)
            except Unmappable as exc:
                raise ExplanationError(
                    f"the pipeline's preprocessing cannot be traced back to its input columns ({exc}), so "
                    f"tree contributions cannot be reported per input. Options: {OPTIONS}"
                ) from exc
            except Exception as exc:
                raise ExplanationError(
                    f"the pipeline's preprocessing fails on the background sample ({type(exc).__name__}: "
                    f"{exc}): pass background= rows the model accepts"
                ) from exc
            background_t = _dense(transformed)
        encoded_names = _names_out(steps)
    elif background is not None:
        background_t = background
    classifier = getattr(final, "classes_", None) is not None
    labels = class_labels(final.classes_) if classifier else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(final, feature_perturbation="tree_path_dependent")
    except Exception as exc:
        raise ExplanationError(
            f"SHAP's TreeExplainer cannot read this {describe(final)} ({type(exc).__name__}: {exc}). "
            f"Options: {OPTIONS}"
        ) from exc
    if not steps and background is not None and len(background):
        # SHAP reads some trees it cannot then walk with the table's values (scikit-learn's native
        # categories, say): one row tried now lets "auto" choose another explainer instead.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                explainer.shap_values(_shap_input(estimator_input(final, background.head(1))), check_additivity=False)
        except Exception as exc:
            raise ExplanationError(
                f"SHAP's TreeExplainer cannot explain this {describe(final)} on its input "
                f"({type(exc).__name__}: {exc}). Options: {OPTIONS}"
            ) from exc
    tree_output = getattr(explainer.model, "tree_output", None)
    if _is_isolation_forest(final):
        return TreePlan(steps, final, explainer, "path_length", None, encoded_names)
    if not classifier:
        return TreePlan(steps, final, explainer, "prediction", None, encoded_names)
    if tree_output == "probability":  # forests and trees average class frequencies: exact probabilities
        return TreePlan(steps, final, explainer, "probability", labels, encoded_names)
    plan = TreePlan(steps, final, explainer, "log_odds", labels, encoded_names)
    if background_t is not None and len(labels or ()) == 2:
        probability = _probability_plan(plan, background_t)
        if probability is not None:
            return probability
    return plan


def _probability_plan(plan: TreePlan, background_t: Any) -> TreePlan | None:
    """Boosting explained in probability space (interventional TreeSHAP), if SHAP does it exactly.

    SHAP supports this for some boosted models and not others, and for some (scikit-learn's histogram
    gradient boosting) its answer does not add up to the model's probabilities; a few background rows
    are explained once to find out.
    """
    shap = shap_module()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(plan.final, data=background_t, model_output="probability",
                                           feature_perturbation="interventional")
            probe = background_t[:20] if not isinstance(background_t, pd.DataFrame) else background_t.iloc[:20]
            values = explainer.shap_values(probe, check_additivity=False)
        candidate = TreePlan(plan.steps, plan.final, explainer, "probability", plan.labels, plan.encoded_names)
        expected = tree_outputs(candidate, probe)
        got, base = per_output(values, explainer.expected_value, expected.shape[1], "probability")
        error = np.abs(got.sum(axis=1) + base - expected).max()
    except Exception:  # not supported for this model: log odds it is
        return None
    return candidate if np.isfinite(error) and error <= 1e-6 else None


def _names_out(steps: Sequence[Any]) -> list[str] | None:
    try:
        return [str(n) for n in steps[-1].get_feature_names_out()]
    except Exception:  # names are a convenience; positions serve otherwise
        return None


def explain_tree(plan: TreePlan, frame: pd.DataFrame, feature_names: list[str]) -> RawExplanation:
    """Explain the rows of ``frame`` (in the model's input columns ``feature_names``) with ``plan``."""
    if plan.steps:
        try:
            owners, transformed = model_outputs(lambda f: owners_through(plan.steps, f), frame)
        except Unmappable as exc:
            raise ExplanationError(
                f"the pipeline's preprocessing cannot be traced back to its input columns ({exc}). "
                f"Options: {OPTIONS}"
            ) from exc
        data = _dense(transformed)
    else:
        owners, data = list(feature_names), estimator_input(plan.final, frame)
    outputs = model_outputs(lambda d: tree_outputs(plan, d), data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = plan.explainer.shap_values(_shap_input(data), check_additivity=False)
    values, base = per_output(raw, plan.explainer.expected_value, outputs.shape[1], plan.kind)
    if not plan.steps:
        return RawExplanation(values, base, outputs)
    # Sum the transformed columns each input owns (e.g. its one-hot columns) into that input.
    position = {name: j for j, name in enumerate(feature_names)}
    owner_matrix = np.zeros((len(owners), len(feature_names)))
    owner_matrix[np.arange(len(owners)), [position[o] for o in owners]] = 1.0
    names = plan.encoded_names
    if not names or len(names) != len(owners):
        names = [f"x{i}" for i in range(len(owners))]
    return RawExplanation(np.einsum("ntk,tm->nmk", values, owner_matrix), base, outputs, values, names)
