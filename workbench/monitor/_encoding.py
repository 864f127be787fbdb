"""Rows of mixed features as one float matrix, encoded from what the reference profile knows.

The multivariate drift test and the outlier detector both need numbers; they share this encoder so a
feature means the same thing to both.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import pandas as pd

from workbench.errors import MonitoringError
from workbench.profile import CategoricalProfile, NumericProfile, ReferenceProfile, numeric_values

#: Category codes the encoder keeps per feature (histogram-based trees take at most 255 bins).
MAX_CODES = 250


class FeatureEncoder:
    """Numeric features as floats; categorical ones as codes or as their reference frequency.

    ``categorical="codes"``: the reference's most frequent categories get 0, 1, ...; unseen and pooled
    ones share one more code; missing stays NaN (for trees that handle categories and NaN).
    ``categorical="frequency"``: each category becomes its share in the reference (unseen: 0), so rare
    and new categories look unusual to distance- or isolation-based models; numeric features are
    standardised and missing values take the reference median.
    """

    def __init__(self, *, categorical: Literal["codes", "frequency"] = "codes") -> None:
        self.categorical = categorical

    def fit(self, profile: ReferenceProfile, columns: list[str] | None = None) -> Self:
        """Learn the encoding of ``columns`` (default: the profile's features) from the profile."""
        names = columns if columns is not None else profile.feature_names
        missing = [c for c in names if c not in profile.features]
        if missing:
            raise MonitoringError(f"the reference profile has no feature(s) {missing}")
        self.columns_ = list(names)
        self.kinds_ = {c: profile.features[c].kind for c in names}
        self.lookup_: dict[str, pd.Series] = {}
        self.center_: dict[str, float] = {}
        self.scale_: dict[str, float] = {}
        for name in names:
            feature = profile.features[name]
            if isinstance(feature, CategoricalProfile):
                ranked = sorted(feature.categories.items(), key=lambda kv: -kv[1])[:MAX_CODES - 1]
                if self.categorical == "codes":
                    self.lookup_[name] = pd.Series(np.arange(len(ranked), dtype=np.float64),
                                                   index=[k for k, _ in ranked])
                else:
                    total = max(feature.count, 1)
                    self.lookup_[name] = pd.Series([v / total for _, v in ranked],
                                                   index=[k for k, _ in ranked], dtype=np.float64)
            elif isinstance(feature, NumericProfile):
                median = float(feature.quantiles[len(feature.quantiles) // 2]) if feature.count else 0.0
                self.center_[name] = median
                std = float(feature.std) if np.isfinite(feature.std) and feature.std > 0 else 1.0
                self.scale_[name] = std
        return self

    @property
    def categorical_mask_(self) -> np.ndarray:
        """Which encoded columns are category codes."""
        return np.array([self.kinds_[c] == "categorical" for c in self.columns_])

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The encoded matrix, one column per fitted feature (a column absent from ``frame`` is
        all missing)."""
        if not hasattr(self, "columns_"):
            raise MonitoringError("FeatureEncoder is not fitted: call .fit(profile) first")
        out = np.empty((len(frame), len(self.columns_)), dtype=np.float64)
        for j, name in enumerate(self.columns_):
            if name not in frame.columns:
                out[:, j] = np.nan
                continue
            series = frame[name]
            if self.kinds_[name] == "numeric":
                if pd.api.types.is_datetime64_any_dtype(series.dtype):
                    values = np.full(len(series), np.nan)
                    values[series.notna().to_numpy()] = numeric_values(series)
                else:
                    values = pd.to_numeric(series, errors="coerce").to_numpy(
                        dtype=np.float64, na_value=np.nan, copy=True)
                values[~np.isfinite(values)] = np.nan
                if self.categorical == "frequency":
                    values = (values - self.center_[name]) / self.scale_[name]
                    values[np.isnan(values)] = 0.0
                out[:, j] = values
            else:
                lookup = self.lookup_[name]
                # Look up each distinct value once, then spread the codes back over the rows.
                inverse, uniques = pd.factorize(series, use_na_sentinel=True)
                known = lookup.reindex(pd.Index(uniques).astype(str)).to_numpy(dtype=np.float64, copy=True)
                if self.categorical == "codes":
                    known[np.isnan(known)] = float(len(lookup))  # unseen or pooled
                    missing_code = np.nan
                else:
                    known[np.isnan(known)] = 0.0
                    missing_code = 0.0
                out[:, j] = np.where(inverse >= 0, known[np.maximum(inverse, 0)] if len(known) else 0.0,
                                     missing_code)
        return out
