"""The :class:`Explainer`: SHAP explanations for any model the workbench can load.

Choosing the SHAP explainer (``method="auto"``):

- ``tree``: SHAP's ``TreeExplainer`` (exact TreeSHAP) for tree ensembles and gradient boosting:
  scikit-learn random forests, extra trees, decision trees, gradient boosting and histogram gradient
  boosting, and XGBoost / LightGBM models when those libraries are installed; also when such a model
  ends a scikit-learn ``Pipeline`` whose preprocessing keeps track of columns (``ColumnTransformer``,
  ``OneHotEncoder``, scalers, imputers): the trees are explained on the transformed columns and the
  contributions of the columns made from one input (its one-hot columns) are summed into that input's
  contribution (see :mod:`workbench.explain._mapping`).
- ``permutation``: SHAP's ``PermutationExplainer`` for everything else (linear models, SVMs, neural
  networks, pipelines that mix columns, any pyfunc model). Features are hidden by replacing them with
  values from a background sample, taken from the reference profile stored with the model. Each row
  costs ``max_evals`` evaluations of the model on ``background_size`` rows, batched into few calls.
- ``kernel``: SHAP's ``KernelExplainer`` (sampled Kernel SHAP), same inputs, same budget settings.

What is explained: for a classifier the probability of the predicted class of each row (or of the
class named with ``target=``), for a regressor the prediction. Two cases differ, and the result's
``output`` says so: tree models whose SHAP TreeExplainer cannot give probabilities exactly
(histogram gradient boosting, multi-class boosting) are explained in log odds (their trees' own
additive scale); classifiers without ``predict_proba`` in their ``decision_function``.

Every explanation is checked for additivity: for each row the contributions must add up to the
explained output minus the base value, within ``additivity_tolerance`` (relative to the output's
scale). An explanation that does not add up raises :class:`~workbench.errors.ExplanationError`, or,
with ``check_additivity=False``, comes back flagged (``LocalExplanation.additive`` is False).

Example::

    from workbench.explain import Explainer
    explainer = Explainer().fit("models:/churn@champion")      # tree or permutation, chosen for you
    local = explainer.explain(X.head(10))                       # LocalExplanation
    local.to_frame()                                            # prediction, base value, contributions
    explainer.explain_global().importance                       # mean |contribution| per feature
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd

from workbench.errors import ExplanationError, InvalidInputError, MissingDependencyError, SchemaError, WorkbenchError
from workbench.explain._codec import MAX_ROWS, FrameCodec
from workbench.explain._mapping import Unmappable, owners_through
from workbench.explain.results import GlobalExplanation, LocalExplanation
from workbench.profile import PROFILE_DIR, ReferenceProfile

if TYPE_CHECKING:
    from workbench.serving.model import ServedModel

__all__ = ["METHODS", "Explainer", "Method"]

_T = TypeVar("_T")

Method = Literal["auto", "tree", "permutation", "kernel"]
#: The explainers a caller can choose (``auto`` picks ``tree`` where it applies, else ``permutation``).
METHODS: tuple[str, ...] = ("auto", "tree", "permutation", "kernel")

_OPTIONS = (
    "method='tree' explains tree ensembles and gradient boosting (scikit-learn, XGBoost, LightGBM), "
    "also at the end of a scikit-learn Pipeline; method='permutation' or method='kernel' explain any "
    "model with numeric outputs, given a background sample (the model's reference profile, or background=)"
)

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
)


def _shap() -> Any:
    try:
        import shap
    except ImportError as exc:
        raise MissingDependencyError("explanations", "shap") from exc
    return shap


def _is_tree_model(estimator: Any) -> bool:
    cls = type(estimator)
    return any(cls.__module__.startswith(prefix) and cls.__name__ in names for prefix, names in _TREE_MODELS)


def _describe(model: Any) -> str:
    return f"{type(model).__module__.split('.')[0]}.{type(model).__name__}"


# -- the model as the explainer sees it --------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A loaded model: its estimator (when it is a Python estimator), or its pyfunc, and its contract."""

    estimator: Any
    pyfunc: Any
    columns: tuple[str, ...] | None
    served: ServedModel | None
    model_uri: str | None
    reference: pd.DataFrame | None


def _source(model: Any) -> _Source:
    from workbench.serving.model import ServedModel

    if isinstance(model, (str, os.PathLike)):
        return _from_served(ServedModel.load(str(model)))
    if isinstance(model, ServedModel):
        return _from_served(model)
    pyfunc_module = sys.modules.get("mlflow.pyfunc")  # a PyFuncModel means MLflow is imported already
    if pyfunc_module is not None and isinstance(model, pyfunc_module.PyFuncModel):
        flavors = model.metadata.flavors
        flavor = "sklearn" if "sklearn" in flavors else next((f for f in flavors if f != "python_function"), "")
        estimator = _raw_model(model, flavor)
        schema = model.metadata.get_input_schema()
        columns = None
        if schema is not None and not schema.is_tensor_spec() and all(n for n in schema.input_names()):
            columns = tuple(str(n) for n in schema.input_names())
        return _Source(estimator, model, columns, None, None, None)
    if callable(getattr(model, "predict", None)):
        names = getattr(model, "feature_names_in_", None)
        return _Source(model, None, tuple(str(n) for n in names) if names is not None else None, None, None, None)
    raise InvalidInputError(
        f"cannot explain a {type(model).__name__}: give a model URI (models:/name@alias, runs:/..., a "
        "model folder), a loaded MLflow pyfunc model, or a fitted estimator with predict()"
    )


def _raw_model(pyfunc: Any, flavor: str) -> Any:
    if flavor not in ("sklearn", "xgboost", "lightgbm"):
        return None
    try:
        return pyfunc.get_raw_model()
    except Exception:  # a flavor without a raw model: explained through its pyfunc
        return None


class _ServedCall:
    """A served model called as the server calls it: on frames in the training dtypes, without
    MLflow's signature enforcement (which refuses nullable integers, categories and time zones)."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served

    def predict(self, frame: pd.DataFrame, params: Any = None) -> Any:
        return self.served.predict_frame(frame)


def _from_served(served: ServedModel) -> _Source:
    estimator = served.sklearn_model
    if estimator is None and served.direct is not None:
        estimator = served.direct.raw
    if estimator is None and served.flavor in ("xgboost", "lightgbm"):
        estimator = _raw_model(served.pyfunc, served.flavor)
    columns = tuple(c.name for c in served.columns) if served.columns is not None else None
    reference = None
    if served.model_dir is not None and (Path(served.model_dir) / PROFILE_DIR).is_dir():
        profile = ReferenceProfile.load(Path(served.model_dir) / PROFILE_DIR)
        reference = profile.sample[[c for c in profile.sample.columns if c != profile.target]]
    return _Source(estimator, _ServedCall(served), columns, served, served.uri, reference)


# -- what is explained -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    """How to compute the explained outputs (one column per class or output) from input rows."""

    #: probability, decision_function, prediction or output
    kind: str
    #: One label per output column (classes, output names); ``None`` for a single unnamed output.
    labels: tuple[Any, ...] | None
    #: Explain the largest output of each row when no target is named (classifiers).
    argmax: bool
    compute: Callable[[pd.DataFrame], np.ndarray]


def _numeric_2d(raw: Any, n_rows: int) -> tuple[np.ndarray, tuple[Any, ...] | None]:
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
            "explains numeric outputs only: log a scikit-learn classifier (its class probabilities are "
            "explained) or make the model return probabilities or scores"
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


def _estimator_input(estimator: Any, frame: pd.DataFrame) -> Any:
    # scikit-learn estimators fitted on arrays warn when given named columns; everything else gets
    # the table (column names are how most models find their inputs).
    if hasattr(estimator, "n_features_in_") and not hasattr(estimator, "feature_names_in_"):
        return frame.to_numpy()
    return frame


def _estimator_output(estimator: Any) -> _Output:
    classes = getattr(estimator, "classes_", None)
    if classes is not None and callable(getattr(estimator, "predict_proba", None)):
        return _Output("probability", _labels(classes), True,
                       lambda f: np.asarray(estimator.predict_proba(_estimator_input(estimator, f)), np.float64))
    if classes is not None and callable(getattr(estimator, "decision_function", None)):
        def decision(f: pd.DataFrame) -> np.ndarray:
            d = np.asarray(estimator.decision_function(_estimator_input(estimator, f)), np.float64)
            return np.column_stack([-d, d]) if d.ndim == 1 else d
        return _Output("decision_function", _labels(classes), True, decision)

    def predict(f: pd.DataFrame) -> np.ndarray:
        return _numeric_2d(estimator.predict(_estimator_input(estimator, f)), len(f))[0]
    return _Output("prediction", None, False, predict)


def _pyfunc_output(pyfunc: Any, probe: pd.DataFrame) -> _Output:
    def compute(f: pd.DataFrame) -> np.ndarray:
        return _numeric_2d(pyfunc.predict(f), len(f))[0]

    try:
        raw = pyfunc.predict(probe)
    except Exception as exc:
        raise ExplanationError(
            f"the model could not predict on its background sample ({type(exc).__name__}: {exc}); "
            "give background= rows the model accepts"
        ) from exc
    values, names = _numeric_2d(raw, len(probe))
    if names is None:
        return _Output("prediction", None, False, compute)
    looks_like_probabilities = bool(
        (values >= 0).all() and (values <= 1).all() and np.allclose(values.sum(axis=1), 1.0, atol=1e-6)
    )
    return _Output("probability" if looks_like_probabilities else "output", names,
                   looks_like_probabilities, compute)


# -- the tree path -----------------------------------------------------------------------------


@dataclass
class _TreePlan:
    """A tree model (maybe after preprocessing steps) and the SHAP TreeExplainer over it."""

    steps: list[Any]
    final: Any
    explainer: Any
    #: probability, log_odds or prediction
    kind: str
    labels: tuple[Any, ...] | None
    encoded_names: list[str] | None


@dataclass(frozen=True)
class _Raw:
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


def _split_pipeline(estimator: Any) -> tuple[list[Any], Any]:
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
        return _estimator_input(final, data)
    names = getattr(final, "feature_names_in_", None)
    return pd.DataFrame(data, columns=names) if names is not None else data


def _margins(final: Any, data: Any) -> np.ndarray:
    module = type(final).__module__
    if callable(getattr(final, "decision_function", None)):
        d = final.decision_function(data)
    elif module.startswith("xgboost"):
        d = final.predict(data, output_margin=True)
    elif module.startswith("lightgbm"):
        d = final.predict(data, raw_score=True)
    else:
        raise ExplanationError(f"cannot read the log odds of a {_describe(final)}: use method='permutation'")
    d = np.asarray(d, dtype=np.float64)
    return np.column_stack([-d, d]) if d.ndim == 1 else d


def _tree_outputs(plan: _TreePlan, data: Any) -> np.ndarray:
    rows = _final_input(plan.final, data)
    if plan.kind == "probability":
        return np.asarray(plan.final.predict_proba(rows), dtype=np.float64)
    if plan.kind == "log_odds":
        return _margins(plan.final, rows)
    return _numeric_2d(plan.final.predict(rows), len(data))[0]


def _per_output(values: Any, base: Any, n_outputs: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
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


def _build_tree(estimator: Any, background: pd.DataFrame | None) -> _TreePlan:
    """The TreeExplainer for ``estimator``; raises ExplanationError saying why it cannot be one."""
    shap = _shap()
    steps, final = _split_pipeline(estimator)
    if not _is_tree_model(final):
        raise ExplanationError(
            f"method='tree' needs a tree ensemble or gradient boosting model, and this model is a "
            f"{_describe(final)}. Options: {_OPTIONS}"
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
                    f"tree contributions cannot be reported per input. Options: {_OPTIONS}"
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
    labels = _labels(final.classes_) if classifier else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(final, feature_perturbation="tree_path_dependent")
    except Exception as exc:
        raise ExplanationError(
            f"SHAP's TreeExplainer cannot read this {_describe(final)} ({type(exc).__name__}: {exc}). "
            f"Options: {_OPTIONS}"
        ) from exc
    if not steps and background is not None and len(background):
        # SHAP reads some trees it cannot then walk with the table's values (scikit-learn's native
        # categories, say): one row tried now lets "auto" choose another explainer instead.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                explainer.shap_values(_estimator_input(final, background.head(1)), check_additivity=False)
        except Exception as exc:
            raise ExplanationError(
                f"SHAP's TreeExplainer cannot explain this {_describe(final)} on its input "
                f"({type(exc).__name__}: {exc}). Options: {_OPTIONS}"
            ) from exc
    tree_output = getattr(explainer.model, "tree_output", None)
    if not classifier:
        return _TreePlan(steps, final, explainer, "prediction", None, encoded_names)
    if tree_output == "probability":  # forests and trees average class frequencies: exact probabilities
        return _TreePlan(steps, final, explainer, "probability", labels, encoded_names)
    plan = _TreePlan(steps, final, explainer, "log_odds", labels, encoded_names)
    if background_t is not None and len(labels or ()) == 2:
        probability = _probability_plan(plan, background_t)
        if probability is not None:
            return probability
    return plan


def _probability_plan(plan: _TreePlan, background_t: Any) -> _TreePlan | None:
    """Boosting explained in probability space (interventional TreeSHAP), if SHAP does it exactly.

    SHAP supports this for some boosted models and not others, and for some (scikit-learn's histogram
    gradient boosting) its answer does not add up to the model's probabilities; a few background rows
    are explained once to find out.
    """
    shap = _shap()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(plan.final, data=background_t, model_output="probability",
                                           feature_perturbation="interventional")
            probe = background_t[:20] if not isinstance(background_t, pd.DataFrame) else background_t.iloc[:20]
            values = explainer.shap_values(probe, check_additivity=False)
        candidate = _TreePlan(plan.steps, plan.final, explainer, "probability", plan.labels, plan.encoded_names)
        expected = _tree_outputs(candidate, probe)
        got, base = _per_output(values, explainer.expected_value, expected.shape[1], "probability")
        error = np.abs(got.sum(axis=1) + base - expected).max()
    except Exception:  # not supported for this model: log odds it is
        return None
    return candidate if np.isfinite(error) and error <= 1e-6 else None


def _names_out(steps: Sequence[Any]) -> list[str] | None:
    try:
        return [str(n) for n in steps[-1].get_feature_names_out()]
    except Exception:  # names are a convenience; positions serve otherwise
        return None


# -- the explainer -----------------------------------------------------------------------------


class Explainer:
    """SHAP explanations of one model, local (per row) and global (per feature).

    Parameters (stored as given; :meth:`fit` does the work):

    - ``method``: ``"auto"`` (default: ``"tree"`` where it applies, else ``"permutation"``),
      ``"tree"``, ``"permutation"`` or ``"kernel"``.
    - ``background_size``: rows of the background sample (from the model's reference profile, or
      ``background=`` given to :meth:`fit`) that stand in for hidden features: the model-agnostic
      explainers' cost grows linearly with it; it also anchors boosted trees' probabilities.
    - ``max_evals``: model evaluations per explained row for ``permutation`` (default ten antithetic
      permutations, ``10 * (2 * n_features + 1)``) and ``kernel`` (default SHAP's own,
      ``2 * n_features + 2048``); each evaluation predicts ``background_size`` rows.
    - ``batch_size``: evaluations per call of the model (default: all of a row's in one call).
    - ``additivity_tolerance``: how far contributions may miss ``prediction - base_value``,
      relative to the largest output (at least 1).
    - ``check_additivity``: raise when they miss (default); else flag the result.
    - ``seed``: for the background sample and the permutations.

    Learned in :meth:`fit`: ``method_`` (the explainer used), ``output_`` (what is explained),
    ``classes_`` (class labels, ``None`` for regressors), ``feature_names_``, ``background_`` and
    ``reference_`` (the reference sample, for :meth:`explain_global`), ``model_uri_``.
    """

    def __init__(
        self,
        *,
        method: Method = "auto",
        background_size: int = 100,
        max_evals: int | None = None,
        batch_size: int | None = None,
        additivity_tolerance: float = 1e-5,
        check_additivity: bool = True,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.background_size = background_size
        self.max_evals = max_evals
        self.batch_size = batch_size
        self.additivity_tolerance = additivity_tolerance
        self.check_additivity = check_additivity
        self.seed = seed

    def __repr__(self) -> str:
        return f"Explainer(method={self.method!r}, background_size={self.background_size}, max_evals={self.max_evals})"

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, model: Any, background: pd.DataFrame | None = None) -> Explainer:
        """Load ``model`` (a model URI or folder, a served or pyfunc model, or a fitted estimator)
        and build its SHAP explainer; ``background`` overrides the reference profile's sample."""
        if self.method not in METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if not 1 <= self.background_size <= MAX_ROWS // 2:
            raise InvalidInputError(f"background_size must be between 1 and {MAX_ROWS // 2}")
        source = _source(model)
        reference = background if background is not None else source.reference
        names = source.columns or (tuple(str(c) for c in reference.columns) if reference is not None else None)
        if names is None and source.estimator is not None and hasattr(source.estimator, "n_features_in_"):
            names = tuple(f"x{i}" for i in range(int(source.estimator.n_features_in_)))
        if names is None:
            raise ExplanationError(
                "cannot tell this model's input columns (no signature, no reference profile): pass "
                "background= with a few rows of its input, or log it with workbench.log_model(..., training_data=X)"
            )
        self.feature_names_ = list(names)
        self._source = source
        if reference is not None:
            reference = self._prepare(_as_frame(reference, self.feature_names_), what="the background sample")
        self.reference_ = reference
        self.background_ = None if reference is None else (
            reference.sample(n=min(self.background_size, len(reference)), random_state=self.seed)
            .reset_index(drop=True)
        )
        self.model_uri_ = source.model_uri
        self._tree: _TreePlan | None = None
        self._output: _Output | None = None
        self.method_ = self._choose(source)
        self.output_: str
        self._labels: tuple[Any, ...] | None
        self._argmax: bool
        if self._tree is not None:
            self.output_ = self._tree.kind
            self._labels, self._argmax = self._tree.labels, self._tree.labels is not None
        else:
            assert self._output is not None
            self.output_ = self._output.kind
            self._labels, self._argmax = self._output.labels, self._output.argmax
        self.classes_ = self._labels if self._argmax else None
        return self

    def _choose(self, source: _Source) -> str:
        estimator = source.estimator
        if self.method in ("auto", "tree") and estimator is not None:
            _, final = _split_pipeline(estimator)
            if self.method == "tree" or _is_tree_model(final):
                try:
                    self._tree = _build_tree(estimator, self.background_)
                    return "tree"
                except ExplanationError:
                    if self.method == "tree" or self.background_ is None:
                        raise
        elif self.method == "tree":
            raise ExplanationError(
                f"method='tree' needs a tree model loaded as such (e.g. the sklearn flavor); this model is "
                f"only callable through its pyfunc. Options: {_OPTIONS}"
            )
        method = "permutation" if self.method in ("auto", "tree") else self.method
        if self.background_ is None:
            raise ExplanationError(
                f"method='{method}' needs a background sample, and this model has no reference profile: "
                "log it with workbench.log_model(model, training_data=X), or pass background= (a DataFrame "
                f"of typical input rows). Options: {_OPTIONS}"
            )
        if estimator is not None:
            self._output = _estimator_output(estimator)
        else:
            self._output = _pyfunc_output(source.pyfunc, self.background_.head(5))
        return method

    @property
    def chunk_rows(self) -> int:
        """Rows worth explaining in one go when other work waits for the same thread (the server
        explains a request in chunks of this size, so predictions queued meanwhile go in between)."""
        self._check_fitted()
        if self.method_ == "tree":
            return 1000
        background = len(self.background_) if self.background_ is not None else self.background_size
        n_features = len(self.feature_names_)
        evaluations = self.max_evals or (10 * (2 * n_features + 1) if self.method_ == "permutation"
                                         else 2 * n_features + 2048)
        return max(1, 200_000 // (evaluations * background))

    def _check_fitted(self) -> None:
        if not hasattr(self, "method_"):
            raise ExplanationError("this Explainer is not fitted yet: call .fit(model) first")

    # -- input ----------------------------------------------------------------------------------

    def _prepare(self, frame: pd.DataFrame, *, what: str = "the data") -> pd.DataFrame:
        """The model's input columns, in order, converted as the server converts them."""
        missing = [c for c in self.feature_names_ if c not in frame.columns]
        if missing:
            raise SchemaError(f"{what} lacks input column(s) {missing}; the model expects {self.feature_names_}")
        frame = frame[self.feature_names_].reset_index(drop=True)
        served = self._source.served
        if served is not None and served.columns is not None and len(frame):
            batch = served.to_batch({c: frame[c] for c in frame.columns})  # dtypes kept: restored as they are
            frame = served.frame([batch])[self.feature_names_]
        return frame

    # -- explaining -----------------------------------------------------------------------------

    def explain(self, data: Any, *, target: Any = None) -> LocalExplanation:
        """Contributions of each input feature to each row's output (see :class:`LocalExplanation`).

        ``data``: a DataFrame with the model's input columns (extra columns, such as the outputs in
        a prediction-log window, are ignored), or an array in the model's column order. ``target``:
        the class to explain for every row (default: each row's predicted class).
        """
        self._check_fitted()
        self._check_target(target)
        frame = self._prepare(_as_frame(data, self.feature_names_))
        if frame.empty:
            raise InvalidInputError("there are no rows to explain")
        try:
            raw = self._explain_tree(frame) if self._tree is not None else self._explain_agnostic(frame)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise ExplanationError(
                f"SHAP's {self.method_} explainer failed on this model: {type(exc).__name__}: {exc}. "
                f"Options: {_OPTIONS}"
            ) from exc
        return self._result(frame, raw, target)

    def explain_global(self, data: Any = None, *, target: Any = None, max_rows: int | None = None) -> GlobalExplanation:
        """Mean |contribution| per feature over ``data`` (default: the reference sample), at most
        ``max_rows`` rows (default 1,000 for trees, 200 for the model-agnostic explainers)."""
        self._check_fitted()
        if data is None:
            if self.reference_ is None:
                raise ExplanationError(
                    "no data given and no reference sample to explain: pass data=, or log the model with "
                    "workbench.log_model(model, training_data=X)"
                )
            frame = self.reference_
        else:
            frame = _as_frame(data, self.feature_names_)
        limit = max_rows if max_rows is not None else (1000 if self.method_ == "tree" else 200)
        if len(frame) > limit:
            frame = frame.sample(n=limit, random_state=self.seed)
        return self.explain(frame, target=target).global_importance()

    def _model_outputs(self, compute: Callable[[Any], _T], data: Any) -> _T:
        # The rows' own predictions: a failure here is the input's fault, answered as the server does.
        try:
            return compute(data)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise SchemaError(f"the model could not predict on this input: {type(exc).__name__}: {exc}") from exc

    def _explain_tree(self, frame: pd.DataFrame) -> _Raw:
        plan = self._tree
        assert plan is not None
        if plan.steps:
            try:
                owners, transformed = self._model_outputs(lambda f: owners_through(plan.steps, f), frame)
            except Unmappable as exc:
                raise ExplanationError(
                    f"the pipeline's preprocessing cannot be traced back to its input columns ({exc}). "
                    f"Options: {_OPTIONS}"
                ) from exc
            data = _dense(transformed)
        else:
            owners, data = list(self.feature_names_), _estimator_input(plan.final, frame)
        outputs = self._model_outputs(lambda d: _tree_outputs(plan, d), data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = plan.explainer.shap_values(data, check_additivity=False)
        values, base = _per_output(raw, plan.explainer.expected_value, outputs.shape[1], plan.kind)
        if not plan.steps:
            return _Raw(values, base, outputs)
        # Sum the transformed columns each input owns (e.g. its one-hot columns) into that input.
        position = {name: j for j, name in enumerate(self.feature_names_)}
        owner_matrix = np.zeros((len(owners), len(self.feature_names_)))
        owner_matrix[np.arange(len(owners)), [position[o] for o in owners]] = 1.0
        names = plan.encoded_names
        if not names or len(names) != len(owners):
            names = [f"x{i}" for i in range(len(owners))]
        return _Raw(np.einsum("ntk,tm->nmk", values, owner_matrix), base, outputs, values, names)

    def _explain_agnostic(self, frame: pd.DataFrame) -> _Raw:
        shap = _shap()
        output, background = self._output, self.background_
        assert output is not None and background is not None
        outputs = self._model_outputs(output.compute, frame)
        n_features = len(self.feature_names_)
        max_evals = self.max_evals or 10 * (2 * n_features + 1)
        if self.method_ == "permutation" and max_evals < 2 * n_features + 1:
            raise InvalidInputError(
                f"max_evals={max_evals} is too small for {n_features} features: the permutation "
                f"explainer needs at least 2 * n_features + 1 = {2 * n_features + 1}"
            )
        step = MAX_ROWS - len(background)
        parts = [self._shap_agnostic(shap, frame.iloc[i:i + step], max_evals, outputs.shape[1])
                 for i in range(0, len(frame), step)]
        values = np.concatenate([p[0] for p in parts])
        base = np.concatenate([np.broadcast_to(b, (len(v), outputs.shape[1])) for v, b in parts])
        return _Raw(values, base, outputs)

    def _shap_agnostic(self, shap: Any, frame: pd.DataFrame, max_evals: int,
                       n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
        output, background = self._output, self.background_
        assert output is not None and background is not None
        codec = FrameCodec(self.feature_names_, [background, frame])
        background_codes, codes = codec.encoded(0), codec.encoded(1)

        def model(masked: np.ndarray) -> np.ndarray:
            return output.compute(codec.decode(masked))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.method_ == "kernel":
                explainer = shap.KernelExplainer(model, background_codes, seed=self.seed)
                raw = explainer.shap_values(codes, nsamples=self.max_evals or "auto", silent=True)
                return _per_output(raw, explainer.expected_value, n_outputs, output.kind)
            masker = shap.maskers.Independent(background_codes, max_samples=len(background_codes))
            permutation = shap.PermutationExplainer(model, masker, seed=self.seed)
            result = permutation(codes, max_evals=max_evals, batch_size=self.batch_size or max_evals, silent=True)
            return _per_output(result.values, result.base_values, n_outputs, output.kind)

    # -- the result -----------------------------------------------------------------------------

    def _check_target(self, target: Any) -> None:
        """Refuse a missing or unknown ``target`` before any SHAP work, when the outputs are known."""
        labels = self._labels
        if labels is None or len(labels) < 2:
            return
        probe = np.zeros((1, len(labels)))
        self._targets(probe, target)

    def _targets(self, outputs: np.ndarray, target: Any) -> np.ndarray:
        """Which output to explain for each row."""
        n_outputs = outputs.shape[1]
        labels = self._labels if self._labels is not None else tuple(range(n_outputs)) if n_outputs > 1 else None
        if target is None:
            if n_outputs == 1:
                return np.zeros(len(outputs), dtype=np.intp)
            if self._argmax:
                return np.argmax(outputs, axis=1)
            raise InvalidInputError(
                f"this model has {n_outputs} outputs ({list(labels or ())}): name the one to explain with target="
            )
        if labels is None:
            raise InvalidInputError("this model has a single output: leave target unset")
        for i, label in enumerate(labels):
            if _same_label(label, target):
                return np.full(len(outputs), i, dtype=np.intp)
        raise InvalidInputError(f"target {target!r} is not one of the model's classes/outputs {list(labels)}")

    def _result(self, frame: pd.DataFrame, raw: _Raw, target: Any) -> LocalExplanation:
        chosen = self._targets(raw.outputs, target)
        rows = np.arange(len(frame))
        contributions = raw.values[rows, :, chosen]
        base = np.broadcast_to(raw.base, (len(frame), raw.outputs.shape[1]))
        base_values = np.asarray(base[rows, chosen], dtype=np.float64)
        predictions = raw.outputs[rows, chosen]
        encoded = None
        if raw.encoded is not None:
            encoded = pd.DataFrame(raw.encoded[rows, :, chosen], columns=raw.encoded_names)
        residual = contributions.sum(axis=1) - (predictions - base_values)
        finite = np.isfinite(contributions).all(axis=1) & np.isfinite(residual)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise ExplanationError(
                f"row {bad} gets no finite explanation (its output or contributions are not finite numbers): "
                "check it for missing or extreme values"
            )
        scale = max(1.0, float(np.abs(predictions).max()), float(np.abs(base_values).max()))
        tolerance = self.additivity_tolerance * scale
        error = float(np.abs(residual).max())
        if error > tolerance and self.check_additivity:
            worst = int(np.argmax(np.abs(residual)))
            raise ExplanationError(
                f"the contributions do not add up to the model's output: row {worst} is off by {error:.3g} "
                f"(tolerance {tolerance:.3g}) with method='{self.method_}'. SHAP's {self.method_} explainer "
                f"does not reproduce this model exactly; use method='permutation' (additive by construction), "
                "or pass check_additivity=False to get the result flagged as not additive"
            )
        labels = self._labels if self._labels is not None else (
            tuple(range(raw.outputs.shape[1])) if raw.outputs.shape[1] > 1 else None)
        return LocalExplanation(
            contributions=pd.DataFrame(contributions, columns=self.feature_names_),
            base_values=base_values,
            predictions=np.asarray(predictions, dtype=np.float64),
            data=frame,
            targets=tuple(labels[i] for i in chosen) if labels is not None else None,
            output=self.output_,
            method=self.method_,
            model_uri=self.model_uri_,
            additivity_error=error,
            additivity_tolerance=tolerance,
            encoded_contributions=encoded,
        )


def _same_label(label: Any, target: Any) -> bool:
    # Targets arriving over HTTP or the command line are strings: "1" names the class 1.
    if isinstance(target, str):
        return str(_scalar(label)) == target
    try:
        return bool(_scalar(label) == target)
    except Exception:  # labels that do not compare with the target's type
        return False


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _labels(classes: Any) -> tuple[Any, ...]:
    """Class labels as plain Python values (they end up in messages, JSON and comparisons)."""
    return tuple(_scalar(c) for c in classes)


def _as_frame(data: Any, columns: Sequence[str]) -> pd.DataFrame:
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
