"""The :class:`Explainer`: SHAP explanations for any model the workbench can load.

Choosing the SHAP explainer (``method="auto"``):

- ``tree``: SHAP's ``TreeExplainer`` (exact TreeSHAP) for tree ensembles and gradient boosting:
  scikit-learn random forests, extra trees, decision trees, gradient boosting, histogram gradient
  boosting and isolation forests (explained in their mean path length), and XGBoost / LightGBM /
  CatBoost models when those libraries are installed; also when such a model
  ends a scikit-learn ``Pipeline`` whose preprocessing keeps track of columns (``ColumnTransformer``,
  ``OneHotEncoder``, scalers, imputers): the trees are explained on the transformed columns and the
  contributions of the columns made from one input (its one-hot columns) are summed into that input's
  contribution (see :mod:`workbench.explain._tree` and :mod:`workbench.explain._mapping`).
- ``permutation``: SHAP's ``PermutationExplainer`` for everything else (linear models, SVMs, neural
  networks, pipelines that mix columns, any pyfunc model). Features are hidden by replacing them with
  values from a background sample, taken from the reference profile stored with the model. Each row
  costs ``max_evals`` evaluations of the model on ``background_size`` rows, batched into few calls.
- ``kernel``: SHAP's ``KernelExplainer`` (sampled Kernel SHAP), same inputs, same budget settings.

The choice is made in :mod:`workbench.explain._choice`; the model is loaded, with its reference sample,
in :mod:`workbench.explain._source` and called in :mod:`workbench.explain._outputs`; the model-agnostic
explainers run in :mod:`workbench.explain._agnostic`. This module holds the public class and turns
SHAP's answer into a checked :class:`~workbench.explain.LocalExplanation`.

What is explained: for a classifier the probability of the predicted class of each row (or of the
class named with ``target=``), also for classifiers that answer with labels (their estimator's
``predict_proba`` is explained, the result's ``targets`` name the class of each row and
``base_values`` are that class's), for a regressor the prediction. SHAP's permutation code is
compiled once per process while the first explainer is built, so explaining a few rows after that
takes a fraction of a second. Two cases differ, and the result's
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

from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.errors import ExplanationError, InvalidInputError, WorkbenchError
from workbench.explain._agnostic import default_max_evals, explain_agnostic, warm_up
from workbench.explain._choice import choose
from workbench.explain._codec import MAX_ROWS
from workbench.explain._outputs import same_label
from workbench.explain._shap import OPTIONS, RawExplanation
from workbench.explain._source import as_frame, background_sample, load_source, model_input
from workbench.explain._tree import explain_tree
from workbench.explain.results import GlobalExplanation, LocalExplanation

__all__ = ["METHODS", "Explainer", "Method"]

Method = Literal["auto", "tree", "permutation", "kernel"]
#: The explainers a caller can choose (``auto`` picks ``tree`` where it applies, else ``permutation``).
METHODS: tuple[str, ...] = ("auto", "tree", "permutation", "kernel")


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
    - ``warm_up``: compile SHAP's permutation code in :meth:`fit` (numba; the first time in a
      process only: about 6 s and 110 MB), so that explaining a few rows afterwards takes a
      fraction of a second. The server's explain route leaves it off: its first real explanation
      compiles it, and a server that is never asked for one keeps the memory.

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
        warm_up: bool = True,
    ) -> None:
        self.method = method
        self.background_size = background_size
        self.max_evals = max_evals
        self.batch_size = batch_size
        self.additivity_tolerance = additivity_tolerance
        self.check_additivity = check_additivity
        self.seed = seed
        self.warm_up = warm_up

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
        source = load_source(model)
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
            reference = self._prepare(as_frame(reference, self.feature_names_), what="the background sample")
        self.reference_ = reference
        self.background_ = background_sample(reference, self.background_size, self.seed)
        self.model_uri_ = source.model_uri
        self._choice = choose(self.method, source, self.background_)
        self.method_ = self._choice.method
        self.output_ = self._choice.kind
        self._labels = self._choice.labels
        self.classes_ = self._labels if self._choice.argmax else None
        if (self.warm_up and self.method_ == "permutation" and self._choice.output is not None
                and self.background_ is not None):
            warm_up(self._choice.output, self.background_, self.feature_names_)
        return self

    @property
    def chunk_rows(self) -> int:
        """Rows worth explaining in one go when other work waits for the same thread (the server
        explains a request in chunks of this size, so predictions queued meanwhile go in between)."""
        self._check_fitted()
        if self.method_ == "tree":
            return 1000
        background = len(self.background_) if self.background_ is not None else self.background_size
        evaluations = self.max_evals or default_max_evals(self.method_, len(self.feature_names_))
        return max(1, 200_000 // (evaluations * background))

    def _check_fitted(self) -> None:
        if not hasattr(self, "method_"):
            raise ExplanationError("this Explainer is not fitted yet: call .fit(model) first")

    def _prepare(self, frame: pd.DataFrame, *, what: str = "the data") -> pd.DataFrame:
        """The model's input columns, in order, converted as the server converts them."""
        return model_input(self._source, self.feature_names_, frame, what=what)

    # -- explaining -----------------------------------------------------------------------------

    def explain(self, data: Any, *, target: Any = None) -> LocalExplanation:
        """Contributions of each input feature to each row's output (see :class:`LocalExplanation`).

        ``data``: a DataFrame with the model's input columns (extra columns, such as the outputs in
        a prediction-log window, are ignored), or an array in the model's column order. ``target``:
        the class to explain for every row (default: each row's predicted class).
        """
        self._check_fitted()
        self._check_target(target)
        frame = self._prepare(as_frame(data, self.feature_names_))
        if frame.empty:
            raise InvalidInputError("there are no rows to explain")
        try:
            raw = self._explain(frame)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise ExplanationError(
                f"SHAP's {self.method_} explainer failed on this model: {type(exc).__name__}: {exc}. "
                f"Options: {OPTIONS}"
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
            frame = as_frame(data, self.feature_names_)
        limit = max_rows if max_rows is not None else (1000 if self.method_ == "tree" else 200)
        if len(frame) > limit:
            frame = frame.sample(n=limit, random_state=self.seed)
        return self.explain(frame, target=target).global_importance()

    def _explain(self, frame: pd.DataFrame) -> RawExplanation:
        choice = self._choice
        if choice.tree is not None:
            return explain_tree(choice.tree, frame, self.feature_names_)
        assert choice.output is not None and self.background_ is not None
        return explain_agnostic(self.method_, choice.output, self.background_, frame, self.feature_names_,
                                max_evals=self.max_evals, batch_size=self.batch_size, seed=self.seed)

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
            if self._choice.argmax:
                return np.argmax(outputs, axis=1)
            raise InvalidInputError(
                f"this model has {n_outputs} outputs ({list(labels or ())}): name the one to explain with target="
            )
        if labels is None:
            raise InvalidInputError("this model has a single output: leave target unset")
        for i, label in enumerate(labels):
            if same_label(label, target):
                return np.full(len(outputs), i, dtype=np.intp)
        raise InvalidInputError(f"target {target!r} is not one of the model's classes/outputs {list(labels)}")

    def _result(self, frame: pd.DataFrame, raw: RawExplanation, target: Any) -> LocalExplanation:
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
