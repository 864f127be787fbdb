"""Reference profiles: what the training data looked like, kept with the model.

A :class:`ReferenceProfile` is computed once from the training data when a model is logged and stored
inside the model's artifacts (``reference_profile/``), so monitoring and explanations never re-read the
training data. It holds, per feature:

- numeric: count, missing count, mean, std, min, max, a fine quantile sketch (1,001 points by default)
  and a histogram on fixed bin edges;
- categorical: the count of each category (up to a cap, the rest pooled) and the missing count;

plus a bounded random sample of rows (for multivariate drift, outlier models and SHAP backgrounds) and
a content hash of the data for lineage.

Example::

    >>> import pandas as pd
    >>> from workbench.profile import ReferenceProfile
    >>> profile = ReferenceProfile.from_data(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    >>> profile.features["c"].categories
    {'a': 2, 'b': 1}
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.parquet import parquet_source, sample_positions
from workbench.tables import ColumnType, TableSchema, refuse_duplicate_columns

__all__ = [
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "PROFILE_COLUMNS",
    "ReferenceProfile",
    "category_values",
    "data_hash",
    "feature_kind",
    "numeric_values",
]

PROFILE_FORMAT = 1
PROFILE_DIR = "reference_profile"
_SUMMARY_FILE = "profile.json"
_SAMPLE_FILE = "sample.parquet"

#: Columns of :meth:`ReferenceProfile.to_frame`, in order.
PROFILE_COLUMNS = ("feature", "kind", "dtype", "count", "missing_rate", "mean", "std", "min", "max", "categories")


def feature_kind(series: pd.Series) -> Literal["numeric", "categorical"]:
    """Whether a column is profiled (and drift-tested) as numeric or categorical.

    Booleans, strings, categoricals and objects are categorical; integers and floats are numeric;
    datetimes are numeric (seconds since the epoch).
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "numeric"
    return "categorical"


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column's non-missing values as float64 (datetimes as seconds since the epoch)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        # Any unit (pandas 3 makes microseconds, older data nanoseconds) and any time zone: the
        # same instant gives the same number of seconds.
        present = series.dropna()
        if getattr(present.dtype, "tz", None) is not None:
            present = present.dt.tz_convert("UTC").dt.tz_localize(None)
        return present.to_numpy().astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
    if series.dtype == np.float64:  # already numbers: no coercion, and no copy before the filter
        values = series.to_numpy()
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def category_values(series: pd.Series) -> pd.Series:
    """A column's non-missing values as strings, the form categories are counted in."""
    return series.dropna().astype(str)


def data_hash(data: pd.DataFrame) -> str:
    """A SHA-256 of a DataFrame's content, column names and dtypes (row order matters, index not):
    of the names and dtypes as JSON, then of pandas' row hashes (``hash_pandas_object(data,
    index=False)``)."""
    hashes = _RowHashes(len(data), data.shape[1])
    for _, series in data.items():
        hashes.add(series)
    return hashes.hexdigest()


class _RowHashes:
    """:func:`data_hash` of a table given a column at a time: pandas' row hashes
    (``hash_pandas_object``: each column's hashes folded in as CPython folds a tuple's), kept as a
    running fold, so a table read in column groups hashes as the whole DataFrame does."""

    def __init__(self, n_rows: int, n_columns: int) -> None:
        self.n_columns = n_columns
        self.rows = np.full(n_rows, 0x345678, dtype=np.uint64)
        self.mult = np.uint64(1000003)
        self.dtypes: list[list[str]] = []

    def add(self, series: pd.Series) -> None:
        """Fold in the next column."""
        inverse = self.n_columns - len(self.dtypes)
        self.dtypes.append([str(series.name), str(series.dtype)])
        if len(self.rows):
            self.rows ^= pd.util.hash_pandas_object(series, index=False).to_numpy()
            self.rows *= self.mult
        self.mult += np.uint64(82520 + inverse + inverse)

    def hexdigest(self) -> str:
        """The hash, once every column was added."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.dtypes).encode())
        if len(self.rows):
            digest.update((self.rows + np.uint64(97531)).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class NumericProfile:
    """Summary of one numeric feature of the reference data."""

    name: str
    dtype: str
    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    #: Values at ``np.linspace(0, 1, len(quantiles))``: a sketch of the whole distribution.
    quantiles: np.ndarray = field(repr=False)
    #: Histogram bin edges (reference deciles widened to +-inf) and the reference count in each bin.
    bin_edges: np.ndarray = field(repr=False)
    bin_counts: np.ndarray = field(repr=False)
    kind: Literal["numeric"] = "numeric"

    @property
    def missing_rate(self) -> float:
        """Share of rows where the feature is missing."""
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "name": self.name,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "quantiles": self.quantiles.tolist(),
            "bin_edges": [_json_float(x) for x in self.bin_edges],
            "bin_counts": self.bin_counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            dtype=data["dtype"],
            count=int(data["count"]),
            missing=int(data["missing"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            min=float(data["min"]),
            max=float(data["max"]),
            quantiles=np.asarray(data["quantiles"], dtype=np.float64),
            bin_edges=np.asarray([float(x) for x in data["bin_edges"]], dtype=np.float64),
            bin_counts=np.asarray(data["bin_counts"], dtype=np.int64),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """Summary of one categorical feature of the reference data."""

    name: str
    dtype: str
    count: int
    missing: int
    #: Count of each category seen (the most frequent ones, up to the profile's cap).
    categories: Mapping[str, int]
    #: Count of rows whose category was pooled beyond the cap.
    other: int = 0
    kind: Literal["categorical"] = "categorical"

    @property
    def missing_rate(self) -> float:
        """Share of rows where the feature is missing."""
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "name": self.name,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.missing,
            "categories": dict(self.categories),
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            dtype=data["dtype"],
            count=int(data["count"]),
            missing=int(data["missing"]),
            categories=MappingProxyType({str(k): int(v) for k, v in data["categories"].items()}),
            other=int(data.get("other", 0)),
        )


FeatureProfile = NumericProfile | CategoricalProfile


def _json_float(value: float) -> float | str:
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


#: Above this many values, a numeric feature's quantile sketch and bin edges come from a uniform
#: random sample of this many of them (its count, missing values, mean, spread, extremes and bin counts
#: still from every value); the sketch's quantiles are off by about 1/sqrt(200,000) of rank, far below
#: what a drift test resolves.
QUANTILE_SAMPLE = 200_000


def _sorted_quantiles(ordered: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``np.quantile(values, probs)`` (its default, linear method), bit for bit, of values already
    sorted: no partition per quantile."""
    positions = probs * (len(ordered) - 1)
    below = np.floor(positions).astype(np.intp)
    above = np.minimum(below + 1, len(ordered) - 1)
    t = positions - below
    a, b = ordered[below], ordered[above]
    diff = b - a
    result = a + diff * t
    np.subtract(b, diff * (1 - t), out=result, where=t >= 0.5)
    return result


def _numeric_profile(name: str, series: pd.Series, n_quantiles: int, n_bins: int,
                     rng: np.random.Generator) -> NumericProfile:
    values = numeric_values(series)
    missing = int(len(series) - len(values))
    if len(values) == 0:
        nan = float("nan")
        return NumericProfile(
            name, str(series.dtype), 0, missing, nan, nan, nan, nan,
            np.full(n_quantiles, np.nan), np.array([-np.inf, np.inf]), np.array([0]),
        )
    sampled = values if len(values) <= QUANTILE_SAMPLE else values[rng.integers(0, len(values), QUANTILE_SAMPLE)]
    ordered = np.sort(sampled)
    low, high = float(values.min()), float(values.max())
    quantiles = _sorted_quantiles(ordered, np.linspace(0.0, 1.0, n_quantiles))
    quantiles[0], quantiles[-1] = low, high  # a sample may miss the extremes; the sketch keeps them
    inner = np.unique(_sorted_quantiles(ordered, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    # Bins [e_i, e_i+1), as np.histogram counts them: the values below each edge, read off the sorted
    # values (a vectorised sort of a million values costs less than a million binary searches).
    below = np.searchsorted(np.sort(values), inner, side="left")
    counts = np.diff(np.concatenate([[0], below, [len(values)]]))
    return NumericProfile(
        name=name,
        dtype=str(series.dtype),
        count=int(len(values)),
        missing=missing,
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        min=low,
        max=high,
        quantiles=quantiles,
        bin_edges=edges,
        bin_counts=counts.astype(np.int64),
    )


def _in_proportion(feature: CategoricalProfile, rows: int) -> list[str]:
    """The categories, each repeated in proportion to its count (largest remainders round)."""
    counts = dict(feature.categories)
    total = sum(counts.values())
    if not total:
        return [""] * rows
    shares = {c: rows * n / total for c, n in counts.items()}
    taken = {c: int(s) for c, s in shares.items()}
    for category in sorted(shares, key=lambda c: shares[c] - taken[c], reverse=True)[:rows - sum(taken.values())]:
        taken[category] += 1
    return [c for c, n in taken.items() for _ in range(n)]


def _category_counts(series: pd.Series) -> pd.Series:
    """How often each non-missing value occurs, by its string form (as :func:`category_values`
    counts them), the most frequent first. A pandas categorical is counted on its codes and only its
    categories are written as strings: a million rows cost a bincount, not a million strings."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return category_values(series).value_counts(sort=True)
    counts = series.value_counts(sort=False, dropna=True)
    counts = counts[counts > 0]  # unused categories are listed too
    counts.index = counts.index.astype(object).map(str)
    if counts.index.has_duplicates:  # e.g. 1 and "1" are one category once written as strings
        counts = counts.groupby(level=0, sort=False).sum()
    return counts.sort_values(ascending=False, kind="stable")


def _categorical_profile(name: str, series: pd.Series, max_categories: int) -> CategoricalProfile:
    counts = _category_counts(series)
    count = int(counts.sum())
    kept = counts.iloc[:max_categories]
    return CategoricalProfile(
        name=name,
        dtype=str(series.dtype),
        count=count,
        missing=int(len(series) - count),
        categories=MappingProxyType({str(k): int(v) for k, v in kept.items()}),
        other=int(counts.iloc[max_categories:].sum()),
    )


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-feature sketches of a model's training data, plus a bounded sample of its rows."""

    n_rows: int
    features: Mapping[str, FeatureProfile]
    sample: pd.DataFrame = field(repr=False)
    data_hash: str = ""
    created: str = ""
    #: Name of the target column profiled alongside the features, if labels were given.
    target: str | None = None
    #: Sensitive attributes profiled for fairness and proxy checks; never model inputs.
    sensitive: tuple[str, ...] = ()

    @classmethod
    def from_data(
        cls,
        data: pd.DataFrame | str | Path | Any,
        *,
        target: pd.Series | None = None,
        sensitive: pd.DataFrame | None = None,
        sample_size: int = 10_000,
        n_quantiles: int = 1001,
        n_bins: int = 10,
        max_categories: int = 1000,
        seed: int = 0,
        hash_data: bool = True,
    ) -> ReferenceProfile:
        """Profile a DataFrame of features, and optionally the target and sensitive attributes (each
        profiled as more columns, kept apart from the model's inputs).

        ``hash_data=False`` leaves :attr:`data_hash` empty: a profile made only to test drift
        against (never logged for lineage) skips hashing every value.

        ``data`` may also be Parquet (a ``Path``, a ``.parquet`` path, a folder of Parquet files or a
        ``pyarrow.dataset.Dataset``): it is read a group of columns at a time, so memory holds a few
        columns, never the table, and the profile is the one ``pd.read_parquet`` of it would give.
        """
        table = parquet_source(data) if not isinstance(data, pd.DataFrame) else None
        if table is not None:
            if target is not None or sensitive is not None:
                raise InvalidInputError(
                    f"a target or sensitive attributes go with a DataFrame of features, not with Parquet "
                    f"({table.where}): read the file with pd.read_parquet to profile them too"
                )
            if not table.columns:
                raise InvalidInputError(f"{table.where} has no columns to profile")
            return cls._profile(table.n_rows, list(table.columns),
                                table.column_groups, None, (),
                                sample_size, n_quantiles, n_bins, max_categories, seed,
                                hashed=None if hash_data else "")
        if not isinstance(data, pd.DataFrame):
            raise InvalidInputError(
                f"a reference profile needs a pandas DataFrame of features (or Parquet), got {type(data).__name__}; "
                "wrap arrays with pd.DataFrame(X, columns=[...])"
            )
        if data.shape[1] == 0:
            raise InvalidInputError("the training data has no columns to profile")
        data = data.rename(columns=str)
        refuse_duplicate_columns(data, "the training data")
        target_name = None
        if target is not None:
            target_name = str(target.name) if target.name is not None else "target"
            if target_name in data.columns:
                raise InvalidInputError(
                    f"the target is named {target_name!r} like a feature column: give it another name"
                )
            full = data.assign(**{target_name: np.asarray(target)})
        else:
            full = data
        sensitive_names: tuple[str, ...] = ()
        if sensitive is not None:
            if not isinstance(sensitive, pd.DataFrame) or len(sensitive) != len(data):
                raise InvalidInputError(
                    "sensitive attributes are a DataFrame with one row per training row, e.g. people[['sex']]"
                )
            sensitive = sensitive.rename(columns=str)
            clash = sorted(set(sensitive.columns) & set(full.columns))
            if clash:
                raise InvalidInputError(f"sensitive attributes {clash} are also features or the target: "
                                        "a sensitive attribute must not be a model input")
            sensitive_names = tuple(sensitive.columns)
            full = full.assign(**{c: sensitive[c].to_numpy() for c in sensitive_names})
        return cls._profile(len(full), list(full.columns), lambda names: iter([full]), target_name,
                            sensitive_names, sample_size, n_quantiles, n_bins, max_categories, seed,
                            hashed=data_hash(data) if hash_data else "")

    @classmethod
    def _profile(
        cls, n_rows: int, names: list[str], groups: Callable[[list[str]], Iterator[pd.DataFrame]],
        target: str | None, sensitive: tuple[str, ...], sample_size: int, n_quantiles: int, n_bins: int,
        max_categories: int, seed: int, hashed: str | None = None,
    ) -> ReferenceProfile:
        """The profile of a table given as consecutive column groups (a DataFrame is one group): each
        column summarised, the sample's rows taken and the hash folded in as its group passes."""
        features: dict[str, FeatureProfile] = {}
        rng = np.random.default_rng(seed)
        positions = sample_positions(n_rows, sample_size, seed)
        sampled: list[pd.DataFrame] = []
        hashes = _RowHashes(n_rows, len(names)) if hashed is None else None
        for frame in groups(names):
            for name in frame.columns:
                series = frame[name]
                if feature_kind(series) == "numeric":
                    features[name] = _numeric_profile(name, series, n_quantiles, n_bins, rng)
                else:
                    features[name] = _categorical_profile(name, series, max_categories)
                if hashes is not None:
                    hashes.add(series)
            sampled.append(frame.take(positions).reset_index(drop=True))
        sample = pd.concat(sampled, axis=1) if len(sampled) > 1 else sampled[0]
        return cls(
            n_rows=int(n_rows),
            features=MappingProxyType(features),
            sample=sample,
            data_hash=hashes.hexdigest() if hashes is not None else hashed or "",
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            target=target,
            sensitive=sensitive,
        )

    def summary_rows(self, rows: int = 100, *, seed: int = 0, schema: TableSchema | None = None) -> pd.DataFrame:
        """``rows`` rows made from the features' summaries alone, no training row among them.

        Each numeric feature takes evenly spaced values of its quantile sketch (datetimes as such,
        whole numbers rounded), each categorical one its categories in proportion to their counts;
        every column is shuffled on its own. Columns keep the training dtypes (``schema``, the
        model's ``input_types.json``, gives a category column its levels): a background for SHAP,
        or an input example, that carries no training data.
        """
        rng = np.random.default_rng(seed)
        columns: dict[str, Any] = {}
        for name in self.feature_names:
            feature = self.features[name]
            column = schema[name] if schema is not None and name in schema else ColumnType(name, feature.dtype)
            values: list[Any]
            if isinstance(feature, NumericProfile):
                sketch = feature.quantiles
                drawn = np.interp((np.arange(rows) + 0.5) / rows, np.linspace(0, 1, len(sketch)), sketch)
                if column.kind == "datetime":  # the sketch holds seconds since the epoch
                    values = [pd.Timestamp(round(v * 1e6), unit="us", tz="UTC").isoformat() for v in drawn]
                elif column.kind in ("int", "nullable-int"):
                    values = [int(v) for v in np.round(drawn)]
                else:
                    values = drawn.tolist()
            else:
                levels = {str(level): level for level in column.categories or ()}
                truth = {"True": True, "False": False} if column.kind in ("bool", "nullable-bool") else {}
                values = [levels.get(v, truth.get(v, v)) for v in _in_proportion(feature, rows)]
            columns[name] = pd.Series(column.restore(list(rng.permutation(np.array(values, dtype=object)))))
        return pd.DataFrame(columns)

    @property
    def feature_names(self) -> list[str]:
        """The model's input features (the target and sensitive attributes excluded)."""
        return [name for name in self.features if name != self.target and name not in self.sensitive]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of everything but the sample."""
        return {
            "format": PROFILE_FORMAT,
            "n_rows": self.n_rows,
            "data_hash": self.data_hash,
            "created": self.created,
            "target": self.target,
            "sensitive": list(self.sensitive),
            "features": [f.to_dict() for f in self.features.values()],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: kind, dtype, count, missing rate and a short summary."""
        rows = []
        for f in self.features.values():
            row: dict[str, Any] = {
                "feature": f.name,
                "kind": f.kind,
                "dtype": f.dtype,
                "count": f.count,
                "missing_rate": round(f.missing_rate, 4),
            }
            if isinstance(f, NumericProfile):
                row.update(mean=f.mean, std=f.std, min=f.min, max=f.max, categories=None)
            else:
                row.update(mean=None, std=None, min=None, max=None, categories=len(f.categories))
            rows.append(row)
        return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)

    def save(self, directory: str | Path) -> Path:
        """Write ``profile.json`` and ``sample.parquet`` into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / _SUMMARY_FILE).write_text(json.dumps(self.to_dict()))
        self.sample.to_parquet(directory / _SAMPLE_FILE, index=False)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ReferenceProfile:
        """Read a profile written by :meth:`save`."""
        directory = Path(directory)
        summary_path = directory / _SUMMARY_FILE
        if not summary_path.exists():
            raise InvalidInputError(
                f"no reference profile at {directory}: log the model with workbench.log_model(..., "
                "training_data=X) so its profile is stored with it"
            )
        data = json.loads(summary_path.read_text())
        if data.get("format") != PROFILE_FORMAT:
            raise InvalidInputError(
                f"reference profile format {data.get('format')!r} is not supported (expected "
                f"{PROFILE_FORMAT}): re-log the model with this version of the workbench"
            )
        features: dict[str, FeatureProfile] = {}
        for item in data["features"]:
            profile_cls = NumericProfile if item["kind"] == "numeric" else CategoricalProfile
            features[item["name"]] = profile_cls.from_dict(item)
        sample_path = directory / _SAMPLE_FILE
        sample = pd.read_parquet(sample_path) if sample_path.exists() else pd.DataFrame()
        return cls(
            n_rows=int(data["n_rows"]),
            features=MappingProxyType(features),
            sample=sample,
            data_hash=data.get("data_hash", ""),
            created=data.get("created", ""),
            target=data.get("target"),
            sensitive=tuple(data.get("sensitive", ())),
        )
