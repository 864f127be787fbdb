"""Multivariate drift: can a classifier tell the current window from the reference sample?

A change in how features move together (a correlation that appears, a combination of values that
never occurred) can leave every column's own distribution untouched, so no per-feature test sees it.
The domain classifier sees it: it learns to separate the profile's bounded ``sample`` (label 0) from
the current rows (label 1), and its cross-validated ROC AUC says how well it can.

The p-value is calibrated, so unshifted data raises an alarm at most ``alpha`` of the time:

- Both sides are encoded alike. Category codes are given by the two sides' pooled counts: a category
  seen fewer than ``min_category_rows`` times in both together shares one "rare" code. Codes chosen
  by the reference's counts alone would mark the current side's rare categories (those that missed
  the reference's top) as different, and on a column of many rare values (cities, names) the
  classifier learns that from nothing but the split.
- Each fold is scored on its own. Under no drift the rows a fold model never saw are exchangeable
  with respect to their labels, so that fold's AUC is the Mann-Whitney statistic of two exchangeable
  samples: mean 0.5, variance ``(n0 + n1 + 1) / (12 n0 n1)`` (smaller with ties, so conservative).
  The folds share the sample's chance structure, so their AUCs are correlated; their mean z-score
  has a variance of at most 1 however correlated they are, and is compared with a standard normal
  (adding them up as if independent, or pooling the folds' scores into one AUC, which mixes models
  with different score scales, raised false alarms on up to 20 % of unshifted splits).

The statistic is the folds' mean AUC. Drift is flagged when the p-value is below ``alpha`` *and* the
AUC reaches ``threshold`` (default 0.55), so that with large windows a real but negligible difference
does not raise alarms. ``benchmarks/falsealarms/run.py`` measures the false-alarm rate on random
splits of real tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import stats

from workbench.errors import MonitoringError
from workbench.monitor._encoding import MAX_CODES, FeatureEncoder
from workbench.profile import ReferenceProfile

__all__ = ["DomainClassifierTest", "MultivariateDrift"]

#: Fewer rows than this on either side and the AUC says nothing useful.
MIN_ROWS = 30


@dataclass(frozen=True)
class MultivariateDrift:
    """Outcome of the multivariate (domain classifier) drift test."""

    test: str
    #: Cross-validated ROC AUC (mean over folds) of telling current rows from reference rows (0.5:
    #: indistinguishable).
    statistic: float
    p_value: float
    #: The AUC at or above which (with ``p_value < alpha``) the data counts as drifted.
    threshold: float
    alpha: float
    drifted: bool
    n_reference: int
    n_current: int
    #: The features that separate the two best (by how much the AUC drops without each), best first.
    top_features: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "top_features": list(self.top_features),
        }


def _category_strings(series: pd.Series) -> pd.Series:
    """A category column's values as strings (the form the profile counts them in), missing as None."""
    present = series.notna().to_numpy()
    out = pd.Series(np.full(len(series), None, dtype=object))
    out[present] = series[present].astype(str).to_numpy()
    return out


class DomainClassifierTest:
    """Multivariate drift by a domain classifier (gradient-boosted trees), in the scikit-learn manner.

    ``fit(profile)`` takes the profile's ``sample`` as the reference (never the training data);
    ``score(current)`` returns a :class:`MultivariateDrift`. At most ``max_rows`` rows of each side
    are used (a random subset), so the cost does not grow with the window. ``n_threads`` caps the
    OpenMP threads of the trees (``None``: all cores): one thread is the default because on a busy
    machine (a notebook kernel beside a server) OpenMP's waiting threads made the test ~9x slower.
    """

    name = "domain_classifier"

    def __init__(
        self, *, threshold: float = 0.55, alpha: float = 0.05, max_rows: int = 5000, n_splits: int = 3,
        max_iter: int = 60, n_threads: int | None = 1, min_category_rows: int = 20, seed: int = 0,
    ) -> None:
        self.threshold = threshold
        self.min_category_rows = min_category_rows
        self.alpha = alpha
        self.max_rows = max_rows
        self.n_splits = n_splits
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.seed = seed

    def fit(self, profile: ReferenceProfile, columns: list[str] | None = None) -> Self:
        """Encode the profile's sample (``columns``, default every feature) as the reference side."""
        if not 0.5 <= self.threshold < 1:
            raise MonitoringError(f"the domain classifier's AUC threshold must be in [0.5, 1), got {self.threshold}")
        if not 0 < self.alpha < 1:
            raise MonitoringError(f"alpha must be in (0, 1), got {self.alpha}")
        names = [c for c in (columns if columns is not None else profile.feature_names)
                 if c in profile.sample.columns]
        if not names or len(profile.sample) < MIN_ROWS:
            raise MonitoringError(
                f"the reference profile's sample has {len(profile.sample)} rows of {len(names)} features; "
                f"the multivariate test needs at least {MIN_ROWS} rows: profile more data, or turn the "
                "test off (DriftSettings(multivariate=False))"
            )
        self.encoder_ = FeatureEncoder(categorical="codes").fit(profile, names)
        sample = profile.sample
        if len(sample) > self.max_rows:
            sample = sample.sample(n=self.max_rows, random_state=self.seed)
        self.reference_ = self.encoder_.transform(sample)
        self.categories_ = {name: _category_strings(sample[name]) for name, is_category
                            in zip(self.encoder_.columns_, self.encoder_.categorical_mask_) if is_category}
        return self

    def _pooled_codes(self, current: pd.DataFrame, ref: np.ndarray, cur: np.ndarray) -> None:
        """Re-code each category column of both sides by the pooled counts (see the module docstring)."""
        for j, name in enumerate(self.encoder_.columns_):
            if name not in self.categories_:
                continue
            before = self.categories_[name]
            after = _category_strings(current[name]) if name in current.columns else pd.Series(
                [None] * len(current), dtype=object)
            counts = pd.concat([before, after], ignore_index=True).value_counts()
            kept = counts[counts >= self.min_category_rows].index[:MAX_CODES - 1]
            lookup = pd.Series(np.arange(len(kept), dtype=np.float64), index=kept)
            for side, values in ((ref, before), (cur, after)):
                codes = lookup.reindex(values.to_numpy()).to_numpy(dtype=np.float64, copy=True)
                codes[np.isnan(codes)] = float(len(kept))  # rare on both sides together
                codes[values.isna().to_numpy()] = np.nan
                side[:, j] = codes

    def score(self, current: pd.DataFrame) -> MultivariateDrift:
        """Cross-validated AUC of separating ``current`` from the reference sample, and its verdict."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold
        from threadpoolctl import threadpool_limits

        if not hasattr(self, "reference_"):
            raise MonitoringError("DomainClassifierTest is not fitted: call .fit(profile) first")
        if len(current) < MIN_ROWS:
            raise MonitoringError(f"the multivariate test needs at least {MIN_ROWS} current rows, got {len(current)}")
        if len(current) > self.max_rows:
            current = current.sample(n=self.max_rows, random_state=self.seed)
        cur = self.encoder_.transform(current)
        ref = self.reference_.copy()
        self._pooled_codes(current, ref, cur)
        X = np.vstack([ref, cur])
        y = np.concatenate([np.zeros(len(ref), dtype=np.int8), np.ones(len(cur), dtype=np.int8)])
        mask = self.encoder_.categorical_mask_
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
            early_stopping=False, categorical_features=mask if mask.any() else None,
            random_state=self.seed,
        )
        folds = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.seed)
        aucs, z_scores = [], []
        with threadpool_limits(self.n_threads, user_api="openmp"):
            for train, test in folds.split(X, y):
                scores = clone(model).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
                auc_k = float(roc_auc_score(y[test], scores))
                m1 = int(y[test].sum())
                m0 = len(test) - m1
                aucs.append(auc_k)
                z_scores.append((auc_k - 0.5) / np.sqrt((m0 + m1 + 1) / (12.0 * m0 * m1)))
        auc = float(np.mean(aucs))
        n0, n1 = len(ref), len(cur)
        p_value = float(stats.norm.sf(np.mean(z_scores)))
        drifted = bool(p_value < self.alpha and auc >= self.threshold)
        top: tuple[str, ...] = ()
        if drifted:
            with threadpool_limits(self.n_threads, user_api="openmp"):
                top = self._top_features(model.fit(X, y), X, y)
        return MultivariateDrift(self.name, auc, p_value, self.threshold, self.alpha, drifted, n0, n1, top)

    def _top_features(self, model: Any, X: np.ndarray, y: np.ndarray) -> tuple[str, ...]:
        # In-sample AUC drop when one column is shuffled: cheap, and enough to rank the culprits.
        from sklearn.metrics import roc_auc_score

        rng = np.random.default_rng(self.seed)
        base = roc_auc_score(y, model.predict_proba(X)[:, 1])
        used = _split_features(model)
        drops = []
        for j, name in enumerate(self.encoder_.columns_):
            permuted = rng.permutation(X[:, j])  # drawn for every column: the same draws whichever are skipped
            if used is not None and j not in used:
                # No tree splits on it, so shuffling it changes no prediction: its drop is 0. Skipping
                # the prediction keeps a 300-column table from costing 300 predictions.
                continue
            shuffled = X.copy()
            shuffled[:, j] = permuted
            drops.append((base - roc_auc_score(y, model.predict_proba(shuffled)[:, 1]), name))
        return tuple(name for drop, name in sorted(drops, reverse=True)[:5] if drop > 0.005)


def _split_features(model: Any) -> set[int] | None:
    """The columns some tree of a fitted HistGradientBoosting model splits on (``None`` if its trees
    cannot be read, e.g. another scikit-learn layout: then every column is tried)."""
    try:
        # With categorical features the model reorders its columns (its ColumnTransformer puts the
        # categorical ones first): the trees' feature indices are positions in that order.
        source = np.arange(model.n_features_in_)
        preprocessor = model._preprocessor
        if preprocessor is not None:
            mask = np.asarray(model.is_categorical_, dtype=bool)
            source = np.empty(model.n_features_in_, dtype=np.int64)
            for part, columns in (("encoder", np.flatnonzero(mask)), ("numerical", np.flatnonzero(~mask))):
                source[preprocessor.output_indices_[part]] = columns
        used: set[int] = set()
        for trees in model._predictors:
            for tree in trees:
                nodes = tree.nodes
                used.update(int(source[j]) for j in np.unique(nodes["feature_idx"][nodes["is_leaf"] == 0]))
        return used
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None
