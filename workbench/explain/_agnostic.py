"""The model-agnostic path: SHAP's PermutationExplainer or KernelExplainer over any callable model.

Features are hidden by replacing them with values from a background sample. The rows are encoded as
codes into per-column tables of values (:mod:`workbench.explain._codec`), so SHAP's float maskers can
perturb columns of any type and the model still sees real values in their own dtypes. Each explained
row costs ``max_evals`` evaluations of the model on the background's rows, batched into few calls.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.explain._codec import MAX_ROWS, FrameCodec
from workbench.explain._outputs import ExplainedOutput, model_outputs
from workbench.explain._shap import RawExplanation, per_output, shap_module

__all__ = ["default_max_evals", "explain_agnostic", "warm_up"]

#: Whether SHAP's permutation machinery was compiled in this process (see :func:`warm_up`).
_warm: list[bool] = []


def warm_up(output: ExplainedOutput, background: pd.DataFrame, feature_names: list[str]) -> None:
    """Run the permutation explainer once on one background row, the first time in a process.

    SHAP's masking code is compiled by numba on its first call (several seconds) and not cached on
    disk; doing it while the explainer is built keeps every explanation after that fast.
    """
    if _warm or len(background) == 0:
        return
    rows = background.head(2)
    try:
        explain_agnostic("permutation", output, rows, rows.head(1), feature_names,
                         max_evals=2 * len(feature_names) + 1, batch_size=None, seed=0)
    except Exception:  # only a head start: a model failing here says why when it is explained
        return
    _warm.append(True)


def default_max_evals(method: str, n_features: int) -> int:
    """Model evaluations per row when the caller sets none: ten antithetic permutations for
    ``permutation``, SHAP's own default for ``kernel``."""
    return 10 * (2 * n_features + 1) if method == "permutation" else 2 * n_features + 2048


def explain_agnostic(method: str, output: ExplainedOutput, background: pd.DataFrame, frame: pd.DataFrame,
                     feature_names: list[str], *, max_evals: int | None, batch_size: int | None,
                     seed: int) -> RawExplanation:
    """Explain the rows of ``frame`` with SHAP's ``method`` (``permutation`` or ``kernel``) explainer."""
    shap = shap_module()
    outputs = model_outputs(output.compute, frame)
    n_features = len(feature_names)
    evals = max_evals or default_max_evals(method, n_features)
    if method == "permutation" and evals < 2 * n_features + 1:
        raise InvalidInputError(
            f"max_evals={evals} is too small for {n_features} features: the permutation "
            f"explainer needs at least 2 * n_features + 1 = {2 * n_features + 1}"
        )
    step = MAX_ROWS - len(background)
    parts = [_explain_chunk(shap, method, output, background, frame.iloc[i:i + step], feature_names,
                            evals, max_evals, batch_size, seed, outputs.shape[1])
             for i in range(0, len(frame), step)]
    values = np.concatenate([p[0] for p in parts])
    base = np.concatenate([np.broadcast_to(b, (len(v), outputs.shape[1])) for v, b in parts])
    return RawExplanation(values, base, outputs)


def _explain_chunk(shap: Any, method: str, output: ExplainedOutput, background: pd.DataFrame,
                   frame: pd.DataFrame, feature_names: list[str], evals: int, max_evals: int | None,
                   batch_size: int | None, seed: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    codec = FrameCodec(feature_names, [background, frame])
    background_codes, codes = codec.encoded(0), codec.encoded(1)

    def model(masked: np.ndarray) -> np.ndarray:
        return output.compute(codec.decode(masked))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "kernel":
            explainer = shap.KernelExplainer(model, background_codes, seed=seed)
            raw = explainer.shap_values(codes, nsamples=max_evals or "auto", silent=True)
            return per_output(raw, explainer.expected_value, n_outputs, output.kind)
        masker = shap.maskers.Independent(background_codes, max_samples=len(background_codes))
        permutation = shap.PermutationExplainer(model, masker, seed=seed)
        result = permutation(codes, max_evals=evals, batch_size=batch_size or evals, silent=True)
        return per_output(result.values, result.base_values, n_outputs, output.kind)
