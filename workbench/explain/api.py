"""Explanations in one call: of a registered model, of a live server, of recent live traffic.

Each function takes a model URI (``models:/churn@champion``, ``models:/churn/3``, ``runs:/...``, a model
folder) or an already fitted :class:`~workbench.explain.Explainer` (reuse one to avoid loading the
model again)::

    import workbench as wb
    wb.explain_local("models:/churn@champion", X.head(5))     # per-row contributions
    wb.explain_global("models:/churn@champion")                # importance on the reference sample
    wb.explain_endpoint("http://127.0.0.1:8080", "churn", X)   # from the model a server is serving
    wb.explain_shift("models:/churn@champion", log_folder)     # why are this week's answers different?

Live traffic comes from the prediction log: a log folder, a server's URL (its
``/workbench/predictions`` route), a :class:`~workbench.serving.PredictionPage`, or rows already read
(a DataFrame). ``rows=`` picks some of them: a boolean mask or row positions, e.g. the rows a drift or
outlier check flagged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from workbench.errors import (
    DeploymentError,
    ExplanationError,
    InvalidInputError,
    NotFoundError,
)
from workbench.explain.explainer import Explainer, Method
from workbench.explain.results import GlobalExplanation, ImportanceShift, LocalExplanation, select_rows

__all__ = [
    "explain_local",
    "explain_endpoint",
    "explain_global",
    "explain_live",
    "explain_shift",
    "live_rows",
]

def _explainer(model: Any, method: Method, background: pd.DataFrame | None, background_size: int,
               max_evals: int | None, check_additivity: bool) -> Explainer:
    if isinstance(model, Explainer):
        if not hasattr(model, "method_"):
            raise ExplanationError("this Explainer is not fitted yet: call .fit(model) first")
        return model
    return Explainer(method=method, background_size=background_size, max_evals=max_evals,
                     check_additivity=check_additivity).fit(model, background)


def explain_local(
    model: Any,
    data: Any,
    *,
    target: Any = None,
    method: Method = "auto",
    background: pd.DataFrame | None = None,
    background_size: int = 100,
    max_evals: int | None = None,
    check_additivity: bool = True,
) -> LocalExplanation:
    """Per-row SHAP contributions of ``model`` on ``data`` (a DataFrame of its input columns).

    ``target`` names the class to explain (default: each row's predicted class); ``method``,
    ``background``, ``background_size`` and ``max_evals`` are the :class:`Explainer`'s settings.
    """
    return _explainer(model, method, background, background_size, max_evals, check_additivity).explain(
        data, target=target
    )


def explain_global(
    model: Any,
    data: Any = None,
    *,
    target: Any = None,
    max_rows: int | None = None,
    method: Method = "auto",
    background: pd.DataFrame | None = None,
    background_size: int = 100,
    max_evals: int | None = None,
) -> GlobalExplanation:
    """Mean |contribution| per feature of ``model`` over ``data`` (default: its reference sample)."""
    return _explainer(model, method, background, background_size, max_evals, True).explain_global(
        data, target=target, max_rows=max_rows
    )


def live_rows(source: Any, *, since: int = 0, limit: int | None = 1000) -> pd.DataFrame:
    """Rows of the prediction log after cursor ``since``, at most ``limit`` requests' worth.

    ``source``: a log folder or a server URL (read the way the live monitor reads them, see
    :func:`workbench.predlog.as_source`), a :class:`~workbench.predlog.PredictionPage`, or a
    DataFrame (returned as it is).
    """
    from workbench.predlog import PredictionPage, as_source, read_predictions

    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, PredictionPage):
        return source.rows()
    if isinstance(source, (str, os.PathLike)):
        if limit is None and not str(source).startswith(("http://", "https://")):
            return read_predictions(Path(source), since=since, limit=None).rows()
        return as_source(str(source)).fetch(since, limit or 10_000).rows()
    raise InvalidInputError(
        f"cannot read live rows from a {type(source).__name__}: give a prediction log folder, a server URL, "
        "a PredictionPage or a DataFrame"
    )


def explain_live(
    model: Any,
    source: Any,
    *,
    since: int = 0,
    limit: int | None = 1000,
    rows: Any = None,
    target: Any = None,
    method: Method = "auto",
    background_size: int = 100,
    max_evals: int | None = None,
) -> LocalExplanation:
    """Explain rows of live traffic: a window of the prediction log (see :func:`live_rows`), or only
    the ``rows`` picked from it (a boolean mask or positions, e.g. those flagged by drift checks)."""
    window = live_rows(source, since=since, limit=limit)
    chosen = window.iloc[select_rows(len(window), rows)]
    if chosen.empty:
        raise InvalidInputError("no live rows to explain: the window (or the rows picked from it) is empty")
    explainer = _explainer(model, method, None, background_size, max_evals, True)
    return explainer.explain(chosen, target=target)


def explain_shift(
    model: Any,
    source: Any,
    *,
    since: int = 0,
    limit: int | None = 1000,
    rows: Any = None,
    reference: pd.DataFrame | None = None,
    target: Any = None,
    max_rows: int | None = None,
    method: Method = "auto",
    background_size: int = 100,
    max_evals: int | None = None,
) -> ImportanceShift:
    """Why is the model answering differently? Global importance on the reference data (default: the
    model's reference sample) against live rows (a prediction-log window, optionally only ``rows``).

    Both sides are explained by the same explainer, for the same ``target``, at most ``max_rows`` rows
    each; the report lines the features up and splits the change of the mean output between them.
    """
    explainer = _explainer(model, method, None, background_size, max_evals, True)
    window = live_rows(source, since=since, limit=limit)
    chosen = window.iloc[select_rows(len(window), rows)]
    if chosen.empty:
        raise InvalidInputError("no live rows to compare: the window (or the rows picked from it) is empty")
    reference_global = explainer.explain_global(reference, target=target, max_rows=max_rows)
    live_global = explainer.explain_global(chosen, target=target, max_rows=max_rows)
    return ImportanceShift.compare(reference_global, live_global)


def explain_endpoint(
    url: str,
    model_name: str,
    data: pd.DataFrame,
    *,
    version: str | None = None,
    target: Any = None,
    timeout: float = 300.0,
) -> LocalExplanation:
    """Explanations from a running inference server (``POST /v2/models/{name}/explain``): the exact
    model it serves explains ``data``, with the server's own input checks."""
    import httpx

    from workbench.serving.codecs import encode_tensor

    if not isinstance(data, pd.DataFrame) or data.empty:
        raise InvalidInputError("explain_endpoint needs a non-empty DataFrame of the model's input columns")
    body: dict[str, Any] = {"inputs": [encode_tensor(str(c), _column_values(data[c])) for c in data.columns]}
    if target is not None:
        body["parameters"] = {"target": target}
    path = f"/v2/models/{model_name}" + (f"/versions/{version}" if version else "") + "/explain"
    try:
        response = httpx.post(
            f"{url.rstrip('/')}{path}",
            content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
            headers={"content-type": "application/json"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise DeploymentError(f"no inference server answers at {url}: {exc}") from exc
    if response.status_code != 200:
        raise _server_error(response, url)
    return LocalExplanation.from_dict(response.json())


def _column_values(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.astype(str).to_numpy(dtype=object)
    return series.to_numpy()


def _server_error(response: Any, url: str) -> Exception:
    try:
        message = response.json().get("error") or response.text
    except ValueError:
        message = response.text
    detail = f"{url} answered {response.status_code}: {message}"
    if response.status_code == 404:
        return NotFoundError(detail)
    if response.status_code == 422:  # input the model rejects, or a model that cannot be explained
        return ExplanationError(detail)
    if 400 <= response.status_code < 500:
        return InvalidInputError(detail)
    return ExplanationError(detail)
