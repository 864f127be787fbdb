"""Proxies: model inputs that stand in for a protected attribute, measured on reference data.

Each (input, protected attribute) pair is measured with the association suited to the two kinds
of column, all on a 0..1 scale where 0 is independence:

============================  =========================  ===========================================
input                          protected attribute        measure
============================  =========================  ===========================================
categorical                    categorical                Cramér's V (``scipy.stats.contingency``)
numeric                        binary                     absolute point-biserial correlation
numeric                        categorical (3+ levels)    correlation ratio (eta)
categorical                    numeric                    correlation ratio (eta) of the protected
                                                          attribute grouped by the input
numeric                        numeric                    absolute Spearman rank correlation
============================  =========================  ===========================================

A column with exactly two distinct values counts as binary whatever its dtype (``sex`` coded 0/1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.profile import feature_kind

__all__ = ["Association", "association", "correlation_ratio", "cramers_v", "measure_proxies"]

Measure = Literal["cramers_v", "point_biserial", "correlation_ratio", "spearman"]
_Kind = Literal["numeric", "binary", "categorical"]


@dataclass(frozen=True)
class Association:
    """How strongly one input is associated with one protected attribute in the reference data."""

    feature: str
    protected: str
    #: The protected attribute the column stands for (``sex`` for a column named ``Gender_M``...).
    attribute: str
    measure: Measure | None
    #: 0..1; ``None`` when the pair could not be measured (see ``note``).
    value: float | None
    rows: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"feature": self.feature, "protected": self.protected, "attribute": self.attribute,
                "measure": self.measure, "value": self.value, "rows": self.rows, "note": self.note}


def _kind(series: pd.Series) -> _Kind:
    if series.nunique(dropna=True) == 2:
        return "binary"
    return "numeric" if feature_kind(series) == "numeric" else "categorical"


def cramers_v(x: pd.Series, y: pd.Series) -> float:
    """Cramér's V of two categorical columns (rows missing in either are dropped)."""
    from scipy.stats.contingency import association as scipy_association

    table = pd.crosstab(x.astype(str), y.astype(str)).to_numpy()
    if min(table.shape) < 2:
        return 0.0
    return float(scipy_association(table, method="cramer"))


def correlation_ratio(groups: pd.Series, values: pd.Series) -> float:
    """The correlation ratio (eta) of numeric ``values`` grouped by categorical ``groups``: the square
    root of the share of the values' variance that lies between the groups."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    frame = pd.DataFrame({"g": groups.astype(str).to_numpy(), "v": numbers.to_numpy()}).dropna()
    total = float(((frame["v"] - frame["v"].mean()) ** 2).sum())
    if total == 0.0:
        return 0.0
    stats = frame.groupby("g")["v"].agg(["count", "mean"])
    between = float((stats["count"] * (stats["mean"] - frame["v"].mean()) ** 2).sum())
    return float(np.sqrt(min(1.0, between / total)))


def _numbers(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.astype("int64").astype(np.float64)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(np.float64)
    return pd.to_numeric(series, errors="coerce").astype(np.float64)


def association(feature: pd.Series, protected: pd.Series) -> tuple[Measure, float]:
    """The association of ``feature`` with ``protected`` (0..1) and the measure used (see the table)."""
    from scipy.stats import pointbiserialr, spearmanr

    f_kind, p_kind = _kind(feature), _kind(protected)
    if f_kind != "numeric" and p_kind != "numeric":
        return "cramers_v", cramers_v(feature, protected)
    if f_kind == "numeric" and p_kind == "numeric":
        rho = spearmanr(_numbers(feature), _numbers(protected)).statistic
        return "spearman", float(abs(rho)) if np.isfinite(rho) else 0.0
    numeric, other, other_kind = (feature, protected, p_kind) if f_kind == "numeric" else (protected, feature, f_kind)
    if other_kind == "binary":
        codes = (other.astype(str) == sorted(other.astype(str).unique())[0]).astype(np.float64)
        values = _numbers(numeric)
        if values.nunique() < 2:
            return "point_biserial", 0.0
        r = pointbiserialr(codes, values).statistic
        return "point_biserial", float(abs(r)) if np.isfinite(r) else 0.0
    return "correlation_ratio", correlation_ratio(other, numeric)


def measure_proxies(
    data: pd.DataFrame,
    features: Sequence[str],
    protected: Iterable[tuple[str, str]],
    *,
    min_rows: int = 30,
    max_levels: int = 50,
) -> list[Association]:
    """The association of every input in ``features`` with every protected column in ``data``.

    ``protected`` lists ``(column, attribute)`` pairs. Pairs with fewer than ``min_rows`` complete
    rows, a constant column, or a categorical column with more than ``max_levels`` levels are
    returned unmeasured (``value=None``) with a note saying why.
    """
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError("proxies are measured on a DataFrame of reference data")
    out = []
    for column, attribute in protected:
        for feature in features:
            if feature == column or feature not in data.columns:
                continue
            pair = data[[feature, column]].dropna()
            rows = len(pair)
            note = ""
            if rows < min_rows:
                note = f"only {rows} complete rows (min_rows={min_rows})"
            else:
                for name in (feature, column):
                    levels = pair[name].nunique()
                    if levels < 2:
                        note = f"{name!r} is constant in the reference data"
                    elif _kind(pair[name]) == "categorical" and levels > max_levels:
                        note = f"{name!r} has {levels} levels (max_levels={max_levels})"
            if note:
                out.append(Association(feature, column, attribute, None, None, rows, note))
                continue
            measure, value = association(pair[feature], pair[column])
            out.append(Association(feature, column, attribute, measure, round(value, 6), rows))
    return out
