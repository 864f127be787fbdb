"""What explanations return: frozen dataclasses with DataFrame, JSON and notebook (HTML) forms.

- :class:`LocalExplanation`: per explained row, each input feature's contribution, the base value and
  the explained output (``prediction``); contributions add up to ``prediction - base_value``.
- :class:`GlobalExplanation`: mean absolute contribution per feature over many rows, with the local
  explanation it came from (for :meth:`~GlobalExplanation.dependence`).
- :class:`FeatureDependence`: one feature's values against its contributions.
- :class:`ImportanceShift`: global importance on the reference data against a live window: which
  features drive the change in the model's answers.

Plots are drawn elsewhere (the widgets); these objects only carry the numbers.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.profile import feature_kind
from workbench.serialize import jsonable

__all__ = [
    "FeatureDependence",
    "GlobalExplanation",
    "ImportanceShift",
    "LocalExplanation",
    "select_rows",
]

#: What an explanation can explain, per model kind (``LocalExplanation.output``).
OUTPUTS = ("probability", "log_odds", "decision_function", "prediction", "output")


def select_rows(n_rows: int, rows: Any) -> np.ndarray:
    """Positions chosen by ``rows``: a boolean mask of length ``n_rows`` or row positions.

    This is how rows flagged elsewhere (drift, outlier checks) pick what to explain.
    """
    if rows is None:
        return np.arange(n_rows)
    if isinstance(rows, pd.Series):
        rows = rows.to_numpy()
    array = np.asarray(rows)
    if array.dtype == bool:
        if array.shape != (n_rows,):
            raise InvalidInputError(
                f"the row mask has {array.size} entries for {n_rows} rows: give one true/false per row"
            )
        return np.flatnonzero(array)
    if array.size == 0:
        return np.zeros(0, dtype=np.intp)
    if array.dtype.kind not in "iu":
        raise InvalidInputError("rows must be a boolean mask or a list of row positions (integers)")
    positions = array.astype(np.intp).reshape(-1)
    if positions.min() < -n_rows or positions.max() >= n_rows:
        raise InvalidInputError(f"row positions must be between 0 and {n_rows - 1}")
    return positions % n_rows


def _html_table(frame: pd.DataFrame, max_rows: int = 20) -> str:
    shown = frame.head(max_rows)
    more = f"<p>... {len(frame) - max_rows} more rows</p>" if len(frame) > max_rows else ""
    return shown.to_html(index=False, float_format=lambda v: f"{v:.4g}") + more


@dataclass(frozen=True)
class LocalExplanation:
    """SHAP contributions of each input feature to each explained row's output.

    For every row ``contributions.sum(axis=1) == predictions - base_values`` within
    ``additivity_tolerance`` (checked when the explanation is made). For classifiers the explained
    output is the probability of ``targets[i]`` (the predicted class unless a class was named); see
    ``output`` for models whose trees only explain log odds.
    """

    #: One row per explained row, one column per input feature (original columns, in model order).
    contributions: pd.DataFrame
    #: The model's expected output over the background, per row (it depends on the explained class).
    base_values: np.ndarray
    #: The explained output for each row (e.g. the probability of the explained class).
    predictions: np.ndarray
    #: The explained rows' input values.
    data: pd.DataFrame = field(repr=False)
    #: The class explained for each row; ``None`` for regressors and single-output models.
    targets: tuple[Any, ...] | None
    #: What is explained: probability, log_odds, decision_function, prediction or output.
    output: str
    #: The SHAP explainer used: tree, permutation or kernel.
    method: str
    model_uri: str | None = None
    #: Largest ``|sum(contributions) - (prediction - base_value)|`` over the rows.
    additivity_error: float = 0.0
    additivity_tolerance: float = 1e-6
    #: For a pipeline explained after its preprocessing: the contributions of each transformed
    #: column (e.g. one per one-hot category), before they are summed per original column.
    encoded_contributions: pd.DataFrame | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.contributions)

    @property
    def features(self) -> list[str]:
        """The explained input features."""
        return [str(c) for c in self.contributions.columns]

    @property
    def additive(self) -> bool:
        """Whether contributions add up to prediction minus base value for every row."""
        return bool(self.additivity_error <= self.additivity_tolerance)

    def to_frame(self) -> pd.DataFrame:
        """One row per explained row: ``target`` (classifiers), ``prediction``, ``base_value``, then
        each feature's contribution (a feature named like one of those gets `` (contribution)``)."""
        meta: dict[str, Any] = {}
        if self.targets is not None:
            meta["target"] = list(self.targets)
        meta["prediction"] = self.predictions
        meta["base_value"] = self.base_values
        contributions = self.contributions.rename(
            columns={c: f"{c} (contribution)" for c in self.contributions.columns if c in meta}
        ).reset_index(drop=True)
        return pd.concat([pd.DataFrame(meta), contributions], axis=1)

    def row(self, i: int) -> pd.DataFrame:
        """Row ``i`` as a table of feature, value and contribution, largest effect first
        (what a waterfall or force plot draws)."""
        if not -len(self) <= i < len(self):
            raise InvalidInputError(f"row {i} is out of range: this explanation has {len(self)} rows")
        frame = pd.DataFrame({
            "feature": self.features,
            "value": list(self.data.iloc[i]),
            "contribution": self.contributions.iloc[i].to_numpy(),
        })
        order = np.argsort(-np.abs(frame["contribution"].to_numpy()), kind="stable")
        return frame.iloc[order].reset_index(drop=True)

    def select(self, rows: Any) -> LocalExplanation:
        """The explanation of some rows only: a boolean mask or row positions."""
        positions = select_rows(len(self), rows)
        return replace(
            self,
            contributions=self.contributions.iloc[positions].reset_index(drop=True),
            base_values=self.base_values[positions],
            predictions=self.predictions[positions],
            data=self.data.iloc[positions].reset_index(drop=True),
            targets=None if self.targets is None else tuple(self.targets[p] for p in positions),
            encoded_contributions=None if self.encoded_contributions is None
            else self.encoded_contributions.iloc[positions].reset_index(drop=True),
        )

    @classmethod
    def concat(cls, parts: Sequence[LocalExplanation]) -> LocalExplanation:
        """The rows of several explanations of one model (same output and method), in order."""
        if not parts:
            raise InvalidInputError("nothing to concatenate: give at least one explanation")
        first = parts[0]
        if any((p.output, p.method, p.features) != (first.output, first.method, first.features) for p in parts):
            raise InvalidInputError("only explanations of the same model, output, method and features concatenate")
        encoded = [p.encoded_contributions for p in parts]
        return replace(
            first,
            contributions=pd.concat([p.contributions for p in parts], ignore_index=True),
            base_values=np.concatenate([p.base_values for p in parts]),
            predictions=np.concatenate([p.predictions for p in parts]),
            data=pd.concat([p.data for p in parts], ignore_index=True),
            targets=None if first.targets is None else tuple(t for p in parts for t in (p.targets or ())),
            additivity_error=max(p.additivity_error for p in parts),
            additivity_tolerance=max(p.additivity_tolerance for p in parts),
            encoded_contributions=None if any(e is None for e in encoded)
            else pd.concat(encoded, ignore_index=True),
        )

    def global_importance(self) -> GlobalExplanation:
        """Mean absolute contribution per feature over these rows."""
        return GlobalExplanation.from_local(self)

    def dependence(self, feature: str) -> FeatureDependence:
        """One feature's values against its contributions over these rows."""
        if feature not in self.contributions.columns:
            raise InvalidInputError(f"no feature {feature!r}; the explained features are {self.features}")
        values = self.data[feature].reset_index(drop=True)
        return FeatureDependence(
            feature=feature,
            values=values,
            contributions=self.contributions[feature].to_numpy(),
            kind=feature_kind(values),
            output=self.output,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the server's explain route returns, besides model name and id)."""
        features = self.features
        contributions = self.contributions.to_numpy(dtype=np.float64)
        values = self.data[features].astype(object).to_numpy() if len(features) else np.zeros((len(self), 0))
        rows = []
        for i in range(len(self)):
            rows.append({
                "target": None if self.targets is None else jsonable(self.targets[i]),
                "prediction": jsonable(self.predictions[i]),
                "base_value": jsonable(self.base_values[i]),
                "contributions": {f: jsonable(contributions[i, j]) for j, f in enumerate(features)},
                "values": {f: jsonable(values[i, j]) for j, f in enumerate(features)},
            })
        return {
            "method": self.method,
            "output": self.output,
            "model_uri": self.model_uri,
            "features": features,
            "additivity_error": jsonable(self.additivity_error),
            "additivity_tolerance": self.additivity_tolerance,
            "rows": rows,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> LocalExplanation:
        """Inverse of :meth:`to_dict` (how a client rebuilds the explain route's answer)."""
        try:
            features = [str(f) for f in body["features"]]
            rows = list(body["rows"])
            has_targets = any(r.get("target") is not None for r in rows)
            return cls(
                contributions=pd.DataFrame(
                    [[_float(r["contributions"].get(f)) for f in features] for r in rows],
                    columns=features, dtype=np.float64,
                ),
                base_values=np.array([_float(r["base_value"]) for r in rows], dtype=np.float64),
                predictions=np.array([_float(r["prediction"]) for r in rows], dtype=np.float64),
                data=pd.DataFrame([[r.get("values", {}).get(f) for f in features] for r in rows], columns=features),
                targets=tuple(r.get("target") for r in rows) if has_targets else None,
                output=str(body["output"]),
                method=str(body["method"]),
                model_uri=body.get("model_uri"),
                additivity_error=_float(body.get("additivity_error")),
                additivity_tolerance=_float(body.get("additivity_tolerance", 1e-6)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"not an explanation document (missing or malformed {exc})") from exc

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>Local explanation</b> of {len(self)} row(s): {html.escape(self.output)} explained "
            f"with SHAP ({html.escape(self.method)}); contributions add up within "
            f"{self.additivity_error:.2g}{'' if self.additive else ' (NOT ADDITIVE)'}</p>"
        )
        return head + _html_table(self.to_frame())


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class FeatureDependence:
    """How one feature's value relates to its contribution (a SHAP dependence plot's data)."""

    feature: str
    values: pd.Series = field(repr=False)
    contributions: np.ndarray = field(repr=False)
    #: ``numeric`` or ``categorical`` (as the reference profile classifies the column).
    kind: str = "numeric"
    output: str = "prediction"

    def to_frame(self) -> pd.DataFrame:
        """One row per explained row: ``value`` and ``contribution``."""
        return pd.DataFrame({"value": self.values.to_numpy(), "contribution": self.contributions})

    def summary(self) -> pd.DataFrame:
        """Mean contribution per category, or per decile of the values for numeric features."""
        frame = self.to_frame()
        if self.kind == "categorical":
            groups = frame["value"].astype(object).where(frame["value"].notna(), "(missing)")
        else:
            numeric = pd.to_numeric(frame["value"], errors="coerce")
            if numeric.nunique() <= 10:
                groups = numeric
            else:
                groups = pd.qcut(numeric, 10, duplicates="drop").astype(str)
        summary = frame.groupby(groups, sort=True, dropna=False)["contribution"].agg(["count", "mean"])
        return summary.rename(columns={"mean": "mean_contribution"}).rename_axis("value").reset_index()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "output": self.output,
            "values": [jsonable(v) for v in self.values.tolist()],
            "contributions": [jsonable(v) for v in self.contributions.tolist()],
        }

    def _repr_html_(self) -> str:
        return (
            f"<p><b>Dependence</b> of the {html.escape(self.output)} on <code>{html.escape(self.feature)}"
            f"</code> over {len(self.values)} rows</p>" + _html_table(self.summary())
        )


@dataclass(frozen=True)
class GlobalExplanation:
    """Mean absolute SHAP contribution per feature over a set of rows."""

    #: One row per feature, most important first: feature, mean_abs_contribution,
    #: mean_contribution, share (of the total mean absolute contribution), rank (1 = most).
    importance: pd.DataFrame
    n_rows: int
    #: Mean of the explained output, and of the base value, over the rows.
    mean_prediction: float
    mean_base_value: float
    output: str
    method: str
    model_uri: str | None = None
    #: The per-row explanation the averages come from.
    local: LocalExplanation | None = field(default=None, repr=False)

    @classmethod
    def from_local(cls, local: LocalExplanation) -> GlobalExplanation:
        """Average a local explanation."""
        if len(local) == 0:
            raise InvalidInputError("no rows to average: explain at least one row")
        contributions = local.contributions.to_numpy(dtype=np.float64)
        mean_abs = np.abs(contributions).mean(axis=0)
        total = mean_abs.sum()
        frame = pd.DataFrame({
            "feature": local.features,
            "mean_abs_contribution": mean_abs,
            "mean_contribution": contributions.mean(axis=0),
            "share": mean_abs / total if total > 0 else np.zeros_like(mean_abs),
        })
        frame = frame.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(drop=True)
        frame["rank"] = np.arange(1, len(frame) + 1)
        return cls(
            importance=frame,
            n_rows=len(local),
            mean_prediction=float(np.mean(local.predictions)),
            mean_base_value=float(np.mean(local.base_values)),
            output=local.output,
            method=local.method,
            model_uri=local.model_uri,
            local=local,
        )

    @property
    def ranking(self) -> list[str]:
        """Feature names, most important first."""
        return [str(f) for f in self.importance["feature"]]

    def dependence(self, feature: str) -> FeatureDependence:
        """One feature's values against its contributions over the explained rows."""
        if self.local is None:
            raise InvalidInputError("this global explanation carries no per-row contributions")
        return self.local.dependence(feature)

    def to_frame(self) -> pd.DataFrame:
        """The importance table."""
        return self.importance.copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the per-row explanation)."""
        return {
            "method": self.method,
            "output": self.output,
            "model_uri": self.model_uri,
            "n_rows": self.n_rows,
            "mean_prediction": jsonable(self.mean_prediction),
            "mean_base_value": jsonable(self.mean_base_value),
            "importance": [
                {k: jsonable(v) for k, v in row.items()} for row in self.importance.to_dict(orient="records")
            ],
        }

    def _repr_html_(self) -> str:
        return (
            f"<p><b>Global importance</b> over {self.n_rows} rows: mean |contribution| to the "
            f"{html.escape(self.output)} (SHAP, {html.escape(self.method)})</p>" + _html_table(self.importance)
        )


@dataclass(frozen=True)
class ImportanceShift:
    """Global importance on reference data against a live window: why the answers changed.

    The change of the mean explained output splits exactly into the change of the mean base value
    plus, per feature, the change of its mean contribution (SHAP values add up row by row, so their
    means do too): ``prediction_change == base_value_change + table.mean_contribution_change.sum()``.
    """

    reference: GlobalExplanation
    live: GlobalExplanation
    #: One row per feature, largest change of mean contribution first: reference_importance,
    #: live_importance, importance_change, reference_rank, live_rank, reference_mean_contribution,
    #: live_mean_contribution, mean_contribution_change.
    table: pd.DataFrame

    @classmethod
    def compare(cls, reference: GlobalExplanation, live: GlobalExplanation) -> ImportanceShift:
        """Line up two global explanations of the same model, feature by feature."""
        if reference.output != live.output:
            raise InvalidInputError(
                f"cannot compare explanations of different outputs ({reference.output} vs {live.output})"
            )
        ref = reference.importance.set_index("feature")
        cur = live.importance.set_index("feature")
        if set(ref.index) != set(cur.index):
            raise InvalidInputError("the two explanations cover different features")
        table = pd.DataFrame({
            "feature": ref.index,
            "reference_importance": ref["mean_abs_contribution"].to_numpy(),
            "live_importance": cur.loc[ref.index, "mean_abs_contribution"].to_numpy(),
            "reference_rank": ref["rank"].to_numpy(),
            "live_rank": cur.loc[ref.index, "rank"].to_numpy(),
            "reference_mean_contribution": ref["mean_contribution"].to_numpy(),
            "live_mean_contribution": cur.loc[ref.index, "mean_contribution"].to_numpy(),
        })
        table.insert(3, "importance_change", table["live_importance"] - table["reference_importance"])
        table["mean_contribution_change"] = table["live_mean_contribution"] - table["reference_mean_contribution"]
        order = np.argsort(-np.abs(table["mean_contribution_change"].to_numpy()), kind="stable")
        return cls(reference=reference, live=live, table=table.iloc[order].reset_index(drop=True))

    @property
    def prediction_change(self) -> float:
        """Mean explained output on the live rows minus on the reference rows."""
        return self.live.mean_prediction - self.reference.mean_prediction

    @property
    def base_value_change(self) -> float:
        """Change of the mean base value (non-zero when the explained classes differ in mix)."""
        return self.live.mean_base_value - self.reference.mean_base_value

    def top(self, n: int = 3) -> list[str]:
        """The ``n`` features whose mean contribution moved most."""
        return [str(f) for f in self.table["feature"].head(n)]

    def summary(self) -> str:
        """One sentence: how the mean output moved and which features moved it."""
        moves = ", ".join(
            f"{row.feature} ({row.mean_contribution_change:+.3g})"
            for row in self.table.head(3).itertuples(index=False)
        )
        return (
            f"mean {self.reference.output} moved from {self.reference.mean_prediction:.4g} "
            f"({self.reference.n_rows} reference rows) to {self.live.mean_prediction:.4g} "
            f"({self.live.n_rows} live rows), {self.prediction_change:+.3g}; largest contribution changes: {moves}"
        )

    def to_frame(self) -> pd.DataFrame:
        """The per-feature comparison table."""
        return self.table.copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "summary": self.summary(),
            "prediction_change": jsonable(self.prediction_change),
            "base_value_change": jsonable(self.base_value_change),
            "reference": self.reference.to_dict(),
            "live": self.live.to_dict(),
            "features": [{k: jsonable(v) for k, v in row.items()} for row in self.table.to_dict(orient="records")],
        }

    def _repr_html_(self) -> str:
        return f"<p><b>Importance shift</b>: {html.escape(self.summary())}</p>" + _html_table(self.table)
