"""Mergeable window summaries of a prediction log: drift and performance over any period without rows.

Per window of ``every`` seconds (a minute by default) and per model version, a :class:`WindowSummary`
keeps what the drift tests and the measured metrics need, on the reference profile's own bins:

- numeric features: the count in each fine bin (the profile's quantile-sketch points, every
  ``REFERENCE_STEP``-th, plus its histogram edges), how many values sit exactly on a bin's lower edge,
  the missing count, minimum, maximum and sum;
- categorical features: the count of each category (as the tests count them) and the missing count;
- performance counts of the rows whose ground truth arrived: a confusion table (classifiers) and the
  error sums (regressors), recomputed for a window whenever a label for it arrives or is corrected.

Summaries merge by adding (:meth:`WindowSummary.merge`), across windows and across replicas, so a
week is the sum of its minutes. The merged counts give the same tests the raw rows give
(:meth:`DriftDetector.score_samples`): PSI, Jensen-Shannon and chi-squared exactly, KS and
Wasserstein within a stated bound (``FeatureDrift.error``; zero for values on the bin edges, such as
integer features).

A :class:`SummaryStore` keeps them beside the log (``summaries.db`` in a log folder; in the workspace
for a server read over HTTP or the PostgreSQL store) with the cursors they were read up to, written in
one transaction each: a window is never counted twice, and nothing is lost when a reader stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np
import orjson
import pandas as pd

from workbench._sqlite import connect
from workbench.errors import InvalidInputError, MonitoringError, WorkbenchError
from workbench.monitor.stattests import BinnedSample, ColumnSample
from workbench.predlog import (
    FeedbackSource,
    LogFolderSource,
    PredictionSource,
    StoreSource,
    log_rows,
    read_all_feedback,
)
from workbench.profile import NumericProfile, ReferenceProfile

__all__ = [
    "CategoricalSummary",
    "NumericSummary",
    "PerformanceCounts",
    "SummaryGrid",
    "SummaryStore",
    "WindowSummary",
    "summarise_rows",
    "summary_store",
]

#: Every this-many points of the profile's 1,001-point quantile sketch is a fine bin edge (200 bins):
#: small enough to keep a week of minutes, fine enough that KS and Wasserstein stay within a few
#: thousandths of their raw-row values on reference-like data (the bound is stated per report).
REFERENCE_STEP = 5

#: Minute summaries are also rolled up into hours as they are written, so a week is 168 rows to read.
ROLLUP = 3600.0

#: The file of summaries beside a log folder's ``predictions.db``.
SUMMARY_FILE = "summaries.db"

#: The tables, in the SQLite file beside a log or in the PostgreSQL log store (``{blob}``/``{real}``:
#: each database's type for bytes and 8-byte floats).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS workbench_summaries (
    source TEXT NOT NULL, window_seconds {real} NOT NULL, window_start {real} NOT NULL, version TEXT NOT NULL,
    grid TEXT NOT NULL, n_rows BIGINT NOT NULL, data {blob} NOT NULL, counts {blob} NOT NULL,
    PRIMARY KEY (source, window_seconds, window_start, version)
);
CREATE TABLE IF NOT EXISTS workbench_summary_performance (
    source TEXT NOT NULL, window_seconds {real} NOT NULL, window_start {real} NOT NULL, version TEXT NOT NULL,
    labelled BIGINT NOT NULL, data {blob} NOT NULL,
    PRIMARY KEY (source, window_seconds, window_start, version)
);
CREATE TABLE IF NOT EXISTS workbench_summary_labels (
    source TEXT NOT NULL, window_seconds {real} NOT NULL, prediction_seq BIGINT NOT NULL, row_index BIGINT NOT NULL,
    window_start {real} NOT NULL, version TEXT NOT NULL, truth {blob} NOT NULL, predicted {blob} NOT NULL,
    PRIMARY KEY (source, window_seconds, prediction_seq, row_index)
);
CREATE INDEX IF NOT EXISTS workbench_summary_labels_window
    ON workbench_summary_labels (source, window_seconds, window_start, version);
CREATE TABLE IF NOT EXISTS workbench_summary_cursors (
    source TEXT NOT NULL, window_seconds {real} NOT NULL, predictions BIGINT NOT NULL, feedback BIGINT NOT NULL,
    PRIMARY KEY (source, window_seconds)
);
"""

_UPSERT_SUMMARY = ("INSERT INTO workbench_summaries VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (source, window_seconds, "
                   "window_start, version) DO UPDATE SET grid = excluded.grid, n_rows = excluded.n_rows, "
                   "data = excluded.data, counts = excluded.counts")
_UPSERT_PERFORMANCE = ("INSERT INTO workbench_summary_performance VALUES (?,?,?,?,?,?) ON CONFLICT (source, "
                       "window_seconds, window_start, version) DO UPDATE SET labelled = excluded.labelled, "
                       "data = excluded.data")
_UPSERT_LABEL = ("INSERT INTO workbench_summary_labels VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (source, window_seconds, "
                 "prediction_seq, row_index) DO UPDATE SET window_start = excluded.window_start, "
                 "version = excluded.version, truth = excluded.truth, predicted = excluded.predicted")
_UPSERT_CURSOR = ("INSERT INTO workbench_summary_cursors VALUES (?,?,?,?) ON CONFLICT (source, window_seconds) "
                  "DO UPDATE SET predictions = excluded.predictions, feedback = excluded.feedback")

#: ``version`` of rows logged without one.
NO_VERSION = ""


@dataclass(frozen=True)
class SummaryGrid:
    """The fine bins of each numeric feature of one reference profile (what summaries count in)."""

    #: Inner edges per numeric feature (ascending; the profile's histogram edges among them).
    edges: Mapping[str, np.ndarray]
    #: Identifies the profile and the resolution: summaries on different grids never merge.
    key: str

    @classmethod
    def of(cls, profile: ReferenceProfile, step: int = REFERENCE_STEP) -> SummaryGrid:
        """The grid of ``profile``: every ``step``-th sketch point and every histogram edge."""
        edges: dict[str, np.ndarray] = {}
        digest = hashlib.sha256(f"{profile.data_hash}|{profile.created}|{step}".encode())
        for name, feature in profile.features.items():
            if not isinstance(feature, NumericProfile):
                continue
            points = np.concatenate([feature.quantiles[::step], feature.quantiles[-1:], feature.bin_edges[1:-1]])
            edges[name] = np.unique(points[np.isfinite(points)])
            digest.update(name.encode() + edges[name].tobytes())
        return cls(MappingProxyType(edges), digest.hexdigest()[:16])


@dataclass(frozen=True)
class NumericSummary:
    """Counts of one numeric feature's values in a grid's fine bins (see :class:`BinnedSample`)."""

    n_total: int
    missing: int
    counts: np.ndarray = field(repr=False)
    #: Of each bin's values, those exactly on its lower edge.
    edge_counts: np.ndarray = field(repr=False)
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    kind: Literal["numeric"] = "numeric"

    @classmethod
    def of(cls, sample: ColumnSample, edges: np.ndarray) -> NumericSummary:
        """The summary of a column's values (summarised as the tests summarise them)."""
        values = sample.sorted_values
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        on_edge = np.zeros(len(edges) + 1, dtype=np.int64)
        if len(values) and len(edges):
            at = np.searchsorted(edges, values, side="left")
            hit = at < len(edges)
            hit[hit] = edges[at[hit]] == values[hit]
            on_edge += np.bincount(at[hit] + 1, minlength=len(edges) + 1)
        return cls(sample.n_total, sample.missing, counts.astype(np.int64), on_edge,
                   float(values[0]) if len(values) else math.inf, float(values[-1]) if len(values) else -math.inf,
                   float(values.sum()))

    @property
    def count(self) -> int:
        """Non-missing values."""
        return self.n_total - self.missing

    def merge(self, other: NumericSummary) -> NumericSummary:
        """The summary of both summaries' values."""
        return NumericSummary(self.n_total + other.n_total, self.missing + other.missing,
                              self.counts + other.counts, self.edge_counts + other.edge_counts,
                              min(self.minimum, other.minimum), max(self.maximum, other.maximum),
                              self.total + other.total)

    def sample(self, edges: np.ndarray) -> BinnedSample:
        """What the drift tests score."""
        return BinnedSample("numeric", self.n_total, self.missing, edges=edges, bin_counts=self.counts,
                            edge_counts=self.edge_counts, minimum=self.minimum, maximum=self.maximum)

    def out_of_range(self) -> int:
        """Values below the reference's minimum or above its maximum (the grid's outer edges)."""
        return int(self.counts[0] + self.counts[-1] - self.edge_counts[-1]) if len(self.counts) > 1 else 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form without the bin counts (stored apart, as int32: see :meth:`WindowSummary.encode`);
        edge counts sparse."""
        nonzero = np.flatnonzero(self.edge_counts)
        return {"k": "n", "n": self.n_total, "m": self.missing, "b": len(self.counts),
                "e": [nonzero.tolist(), self.edge_counts[nonzero].tolist()],
                "lo": self.minimum if self.count else None, "hi": self.maximum if self.count else None,
                "s": self.total}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], counts: np.ndarray) -> NumericSummary:
        """Inverse of :meth:`to_json`, given the bin counts."""
        where, how_many = data["e"]
        if where:
            edge_counts = np.zeros(len(counts), dtype=np.int64)
            edge_counts[np.asarray(where, dtype=np.int64)] = how_many
        else:  # continuous values are never on an edge: one shared, read-only zero array
            edge_counts = _no_edges(len(counts))
        low, high = data["lo"], data["hi"]
        return cls(int(data["n"]), int(data["m"]), counts, edge_counts,
                   math.inf if low is None else float(low), -math.inf if high is None else float(high),
                   float(data["s"]))

    @classmethod
    def merged(cls, parts: Sequence[NumericSummary]) -> NumericSummary:
        """The summary of all ``parts``' values (one sum per bin, not one merge per part)."""
        return cls(sum(p.n_total for p in parts), sum(p.missing for p in parts),
                   np.sum([p.counts for p in parts], axis=0), np.sum([p.edge_counts for p in parts], axis=0),
                   min(p.minimum for p in parts), max(p.maximum for p in parts), math.fsum(p.total for p in parts))


@dataclass(frozen=True)
class CategoricalSummary:
    """The count of each category of one categorical feature, and its missing count."""

    n_total: int
    missing: int
    categories: Mapping[str, int]
    kind: Literal["categorical"] = "categorical"

    @classmethod
    def of(cls, sample: ColumnSample) -> CategoricalSummary:
        """The summary of a column's values (summarised as the tests summarise them)."""
        return cls(sample.n_total, sample.missing,
                   MappingProxyType(dict(zip(map(str, sample.categories), sample.counts.tolist(), strict=True))))

    @property
    def count(self) -> int:
        """Non-missing values."""
        return self.n_total - self.missing

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        """The summary of both summaries' values."""
        return CategoricalSummary.merged([self, other])

    @classmethod
    def merged(cls, parts: Sequence[CategoricalSummary]) -> CategoricalSummary:
        """The summary of all ``parts``' values."""
        merged: dict[str, int] = {}
        for part in parts:
            for name, n in part.categories.items():
                merged[name] = merged.get(name, 0) + n
        return cls(sum(p.n_total for p in parts), sum(p.missing for p in parts), MappingProxyType(merged))

    def sample(self) -> ColumnSample:
        """What the drift tests score."""
        names = [c for c, n in self.categories.items() if n > 0]
        return ColumnSample("categorical", self.n_total, self.missing, categories=np.asarray(names, dtype=object),
                            counts=np.asarray([self.categories[c] for c in names], dtype=np.int64))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"k": "c", "n": self.n_total, "m": self.missing, "c": dict(self.categories)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CategoricalSummary:
        """Inverse of :meth:`to_json`."""
        return cls(int(data["n"]), int(data["m"]), MappingProxyType({str(k): int(v) for k, v in data["c"].items()}))


FeatureSummary = NumericSummary | CategoricalSummary


@functools.lru_cache(maxsize=64)
def _no_edges(n: int) -> np.ndarray:
    zeros = np.zeros(n, dtype=np.int64)
    zeros.flags.writeable = False
    return zeros


def _label(value: Any) -> Any:
    """A label as the measured metrics compare it: whole floats as integers (a classifier's 1.0 is 1)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class PerformanceCounts:
    """What the measured metrics of labelled rows need, mergeable: a confusion table and error sums.

    Accuracy and F1 come from the confusion table exactly as scikit-learn computes them on the rows;
    MAE, RMSE and R2 from the sums (R2 through the labels' mean and squared deviations, merged with
    Chan's formula). ROC AUC and log loss need each row's probabilities and are not kept.
    """

    n: int = 0
    #: ``(truth, predicted) -> count``; labels as JSON text.
    confusion: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: Some prediction was a float with a fraction: the model is a regressor.
    fractional: bool = False
    #: Regression sums (rows with numeric truth and prediction).
    numeric: int = 0
    abs_error: float = 0.0
    squared_error: float = 0.0
    truth_mean: float = 0.0
    truth_m2: float = 0.0

    @classmethod
    def of(cls, truths: Sequence[Any], predicted: Sequence[Any]) -> PerformanceCounts:
        """The counts of labelled rows (truths and what was predicted for them)."""
        confusion: dict[tuple[str, str], int] = {}
        fractional = False
        y, p = [], []
        for truth, guess in zip(truths, predicted, strict=True):
            if isinstance(guess, float) and not guess.is_integer():
                fractional = True
            key = (orjson.dumps(_label(truth)).decode(), orjson.dumps(_label(guess)).decode())
            confusion[key] = confusion.get(key, 0) + 1
            if isinstance(truth, (int, float)) and isinstance(guess, (int, float)) and not isinstance(truth, bool):
                y.append(float(truth))
                p.append(float(guess))
        counts = cls(len(truths), MappingProxyType(confusion), fractional)
        if y:
            ys, ps = np.asarray(y), np.asarray(p)
            error = ps - ys
            mean = float(ys.mean())
            counts = cls(len(truths), MappingProxyType(confusion), fractional, len(ys), float(np.abs(error).sum()),
                         float((error ** 2).sum()), mean, float(((ys - mean) ** 2).sum()))
        return counts

    def merge(self, other: PerformanceCounts) -> PerformanceCounts:
        """The counts of both sets of rows."""
        confusion = dict(self.confusion)
        for key, n in other.confusion.items():
            confusion[key] = confusion.get(key, 0) + n
        numeric = self.numeric + other.numeric
        if numeric:
            delta = other.truth_mean - self.truth_mean
            mean = self.truth_mean + delta * other.numeric / numeric
            m2 = self.truth_m2 + other.truth_m2 + delta * delta * self.numeric * other.numeric / numeric
        else:
            mean = m2 = 0.0
        return PerformanceCounts(self.n + other.n, MappingProxyType(confusion), self.fractional or other.fractional,
                                 numeric, self.abs_error + other.abs_error, self.squared_error + other.squared_error,
                                 mean, m2)

    @property
    def task(self) -> Literal["classification", "regression"]:
        """As the raw-row path guesses it: a float prediction with a fraction makes a regressor."""
        return "regression" if self.fractional else "classification"

    def metrics(self) -> dict[str, float]:
        """Accuracy and F1 (classifiers), or MAE, RMSE and R2 (regressors); empty without rows."""
        if not self.n:
            return {}
        if self.task == "regression":
            n = self.numeric
            if not n:
                return {}
            return {"mae": self.abs_error / n, "rmse": math.sqrt(self.squared_error / n),
                    "r2": 1 - self.squared_error / self.truth_m2 if self.truth_m2 > 0 else math.nan}
        labels = sorted({orjson.loads(k) for pair in self.confusion for k in pair}, key=_sort_key)
        index = {orjson.dumps(label).decode(): i for i, label in enumerate(labels)}
        table = np.zeros((len(labels), len(labels)))
        for (truth, guess), n in self.confusion.items():
            table[index[truth], index[guess]] += n
        tp = np.diag(table)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(2 * tp + (table.sum(axis=0) - tp) + (table.sum(axis=1) - tp) > 0,
                          2 * tp / (2 * tp + (table.sum(axis=0) - tp) + (table.sum(axis=1) - tp)), 0.0)
        metrics = {"accuracy": float(tp.sum() / self.n)}
        # scikit-learn: binary F1 of the larger label when two labels occur, else the macro average.
        metrics["f1"] = float(f1[-1]) if len(labels) == 2 else float(np.mean(f1))
        return metrics

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"n": self.n, "c": [[t, p, n] for (t, p), n in self.confusion.items()], "f": self.fractional,
                "r": [self.numeric, self.abs_error, self.squared_error, self.truth_mean, self.truth_m2]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PerformanceCounts:
        """Inverse of :meth:`to_json`."""
        numeric, abs_error, squared, mean, m2 = data["r"]
        return cls(int(data["n"]), MappingProxyType({(t, p): int(n) for t, p, n in data["c"]}), bool(data["f"]),
                   int(numeric), float(abs_error), float(squared), float(mean), float(m2))


def _sort_key(value: Any) -> tuple[int, Any]:
    # np.unique's order for one type; mixed types (rare) by type name then text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


@dataclass(frozen=True)
class WindowSummary:
    """Mergeable summary of the rows of one window (or of merged windows) of one model version."""

    #: Window start and end (seconds since the epoch; ``end`` is excluded).
    start: float
    end: float
    #: The model version whose answers these are (``""`` when not logged).
    version: str
    #: The :class:`SummaryGrid` key (the reference profile the bins come from).
    grid: str
    rows: int
    features: Mapping[str, FeatureSummary]
    #: Counts of the window's rows whose ground truth has arrived (``None``: none yet).
    performance: PerformanceCounts | None = None

    @property
    def labelled(self) -> int:
        """Rows whose ground truth has arrived."""
        return self.performance.n if self.performance is not None else 0

    def merge(self, other: WindowSummary) -> WindowSummary:
        """Both summaries as one: counts added, the time span covering both (any two summaries on
        the same grid merge: windows of a period, replicas of a deployment)."""
        return WindowSummary.merged([self, other])

    @classmethod
    def merged(cls, parts: Sequence[WindowSummary]) -> WindowSummary:
        """All ``parts`` as one summary (as merging them pairwise, in one pass: a week of minutes
        costs one sum per bin)."""
        if not parts:
            raise InvalidInputError("there are no window summaries to merge")
        grid = parts[0].grid
        if any(p.grid != grid for p in parts):
            raise MonitoringError(
                "these window summaries were counted on different reference profiles (different model "
                "versions): merge the summaries of one version, or compare versions side by side")
        names = dict.fromkeys(name for p in parts for name in p.features)
        features: dict[str, FeatureSummary] = {}
        for name in names:
            found = [p.features[name] for p in parts if name in p.features]
            if all(isinstance(f, NumericSummary) for f in found):
                features[name] = NumericSummary.merged(found)  # type: ignore[arg-type]
            else:
                features[name] = CategoricalSummary.merged(found)  # type: ignore[arg-type]
        performance = None
        for part in parts:
            if part.performance is not None:
                performance = part.performance if performance is None else performance.merge(part.performance)
        versions = {p.version for p in parts}
        return WindowSummary(min(p.start for p in parts), max(p.end for p in parts),
                             parts[0].version if len(versions) == 1 else "*", grid, sum(p.rows for p in parts),
                             MappingProxyType(features), performance)

    def samples(self, grid: SummaryGrid) -> dict[str, ColumnSample]:
        """Per feature, what :meth:`DriftDetector.score_samples` tests."""
        if grid.key != self.grid:
            raise MonitoringError("this summary was counted on another reference profile's bins")
        out: dict[str, ColumnSample] = {}
        for name, summary in self.features.items():
            out[name] = summary.sample(grid.edges[name]) if isinstance(summary, NumericSummary) else summary.sample()
        return out

    def encode(self) -> tuple[bytes, bytes]:
        """The stored form: the features as JSON, and every numeric feature's bin counts (in that
        order) as one int32 array, which a period's read turns into arrays without parsing."""
        numeric = [s.counts for s in self.features.values() if isinstance(s, NumericSummary)]
        blob = np.concatenate(numeric).astype(np.int32).tobytes() if numeric else b""
        return orjson.dumps({name: s.to_json() for name, s in self.features.items()}), blob

    @classmethod
    def decode(cls, data: bytes, counts: bytes, *, start: float, end: float, version: str, grid: str, rows: int,
               performance: PerformanceCounts | None = None) -> WindowSummary:
        """Inverse of :meth:`encode`."""
        parsed = orjson.loads(data)
        bins = np.frombuffer(counts, dtype=np.int32).astype(np.int64)
        features: dict[str, FeatureSummary] = {}
        at = 0
        for name, item in parsed.items():
            if item["k"] == "n":
                features[name] = NumericSummary.from_json(item, bins[at:at + item["b"]])
                at += item["b"]
            else:
                features[name] = CategoricalSummary.from_json(item)
        return cls(start, end, version, grid, rows, MappingProxyType(features), performance)


def summarise_rows(rows: pd.DataFrame, profile: ReferenceProfile, *, every: float = 60.0,
                   grid: SummaryGrid | None = None, features: Sequence[str] | None = None) -> list[WindowSummary]:
    """Summaries of log rows (a ``ts`` column, ``model_version`` when logged) per window of
    ``every`` seconds and per version, on ``profile``'s bins."""
    if every <= 0:
        raise InvalidInputError(f"a summary window needs a positive length, got every={every}")
    if "ts" not in rows.columns:
        raise InvalidInputError("rows to summarise need the log's ts column (seconds since the epoch)")
    grid = grid or SummaryGrid.of(profile)
    names = [c for c in (features or profile.feature_names) if c in rows.columns and c in profile.features]
    if not len(rows):
        return []
    ts = rows["ts"].to_numpy(dtype=np.float64)
    starts = np.floor(ts / every) * every
    versions = (rows["model_version"].astype(object).where(rows["model_version"].notna(), NO_VERSION).astype(str)
                if "model_version" in rows.columns else pd.Series(NO_VERSION, index=rows.index))
    out = []
    for (start, version), group in rows.groupby([starts, versions.to_numpy()], sort=True):
        summaries: dict[str, FeatureSummary] = {}
        for name in names:
            feature = profile.features[name]
            sample = ColumnSample.from_values(group[name], feature.kind)
            summaries[name] = (NumericSummary.of(sample, grid.edges[name]) if isinstance(feature, NumericProfile)
                               else CategoricalSummary.of(sample))
        out.append(WindowSummary(float(start), float(start) + every, str(version), grid.key, len(group),
                                 MappingProxyType(summaries)))
    return out


def summary_path(source: PredictionSource, home: Path) -> Path:
    """Where a source's SQLite summaries live: beside a log folder's ``predictions.db`` (when this
    user may write there); in the workspace (``home/monitor/summaries``) otherwise, e.g. for a
    server read over HTTP or a container's log folder owned by its user."""
    if isinstance(source, LogFolderSource) and os.access(source.folder, os.W_OK):
        return source.folder / SUMMARY_FILE
    digest = hashlib.sha256(source.name.encode()).hexdigest()[:16]
    return home / "monitor" / "summaries" / f"{digest}.db"


#: The profile the rows of a model version are compared with (``None``: its rows are not summarised).
ProfileFor = Callable[[str], ReferenceProfile | None]


Rows = list[tuple[Any, ...]]


class _Database(Protocol):
    """Where a :class:`SummaryStore` keeps its tables: statements with ``?`` placeholders."""

    where: str

    def query(self, sql: str, args: Sequence[Any]) -> Rows:
        """The rows a read-only statement returns."""
        ...

    def transaction(self, lock: str) -> contextlib.AbstractContextManager[Callable[[str, Sequence[Any]], Rows]]:
        """A write transaction holding ``lock`` (one writer per source), as a statement runner."""
        ...


class _SQLiteDatabase:
    """The summaries file beside a log folder (or in the workspace)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MonitoringError(f"cannot create {path.parent} for the window summaries ({exc}): check that "
                                  "the folder is writable") from exc
        with self._connection() as conn:
            conn.executescript(_SCHEMA.format(blob="BLOB", real="REAL"))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            raise MonitoringError(f"cannot open the window summaries at {self.path} ({exc}): check that the "
                                  "folder is writable") from exc
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, args: Sequence[Any]) -> Rows:
        with self._connection() as conn:
            return [tuple(r) for r in conn.execute(sql, tuple(args)).fetchall()]

    @contextlib.contextmanager
    def transaction(self, lock: str) -> Iterator[Callable[[str, Sequence[Any]], Rows]]:
        with self._connection() as conn, conn:
            conn.execute("BEGIN IMMEDIATE")  # the file's write lock: one writer at a time
            yield lambda sql, args: [tuple(r) for r in conn.execute(sql, tuple(args)).fetchall()]


class _PostgresDatabase:
    """Tables in the PostgreSQL log store that every replica writes (shared by every monitor)."""

    def __init__(self, url: Any) -> None:
        from workbench.predlog.store import connect as store_connect

        self.url = url
        self.where = url.name
        self._connect = store_connect
        self._conn: Any = None
        with self.transaction("workbench-summaries-schema") as run:
            for statement in _SCHEMA.format(blob="BYTEA", real="DOUBLE PRECISION").split(";"):
                if statement.strip():
                    run(statement, ())

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._connect(self.url, timeout=10)
            except WorkbenchError as exc:
                raise MonitoringError(str(exc)) from exc
        return self._conn

    def query(self, sql: str, args: Sequence[Any]) -> Rows:
        with self.transaction("") as run:
            return run(sql, args)

    @contextlib.contextmanager
    def transaction(self, lock: str) -> Iterator[Callable[[str, Sequence[Any]], Rows]]:
        from workbench.predlog.store import psycopg2_module

        pg = psycopg2_module()
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:
                if lock:
                    digest = hashlib.blake2b(lock.encode(), digest_size=8).digest()
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (int.from_bytes(digest, "big", signed=True),))

                def run(sql: str, args: Sequence[Any]) -> Rows:
                    cur.execute(sql.replace("?", "%s"), tuple(args))
                    rows = cur.fetchall() if cur.description is not None else []
                    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

                yield run
        except pg.Error as exc:
            with contextlib.suppress(Exception):
                conn.close()
            self._conn = None
            raise MonitoringError(f"cannot use the window summaries in the log store {self.where} "
                                  f"({str(exc).strip()}): is PostgreSQL running?") from exc

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class SummaryStore:
    """The window summaries of one prediction-log source, with the cursors they were read up to.

    :meth:`catch_up` reads what the source logged (and the feedback it recorded) after the cursors,
    adds it to the summaries of its windows and moves the cursors, in one transaction per page that
    first checks no other reader moved the cursor (each row is counted once, whoever reads);
    :meth:`read` returns the stored summaries of a period. ``path``: the SQLite file; a
    :class:`~workbench.predlog.StoreSource` keeps them in its PostgreSQL store instead (``path=None``).
    """

    def __init__(self, path: str | Path | None, source: PredictionSource, *, every: float = 60.0) -> None:
        if every <= 0:
            raise InvalidInputError(f"a summary window needs a positive length, got every={every}")
        self.source = source
        self.every = float(every)
        self._db: _Database
        if path is None:
            if not isinstance(source, StoreSource):
                raise InvalidInputError("only a PostgreSQL log store keeps its summaries itself: give a path")
            self._db = _PostgresDatabase(source.url)
        else:
            self._db = _SQLiteDatabase(Path(path))
        self.where = self._db.where
        self._lock = f"workbench-summaries:{source.name}:{self.every}"
        #: The length of the rolled-up windows kept beside these (``None``: none).
        self.rollup = ROLLUP if self.every < ROLLUP and (ROLLUP / self.every).is_integer() else None

    def __repr__(self) -> str:
        return f"SummaryStore({self.where!r}, source={self.source.name!r}, every={self.every:g})"

    def cursors(self) -> tuple[int, int]:
        """The prediction and feedback cursors summarised up to."""
        rows = self._db.query("SELECT predictions, feedback FROM workbench_summary_cursors WHERE source = ? AND "
                              "window_seconds = ?", (self.source.name, self.every))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def _cursors_in(self, run: Callable[[str, Sequence[Any]], Rows]) -> tuple[int, int]:
        rows = run("SELECT predictions, feedback FROM workbench_summary_cursors WHERE source = ? AND "
                   "window_seconds = ?", (self.source.name, self.every))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def catch_up(self, profile_for: ProfileFor, *, page_size: int = 5000, max_records: int | None = None) -> int:
        """Summarise what the source logged since the cursor, page by page; returns the rows added.

        ``profile_for(version)`` gives each version's reference profile (its grid is what the rows
        are counted on). Each page's summaries and the new cursor are committed together.
        """
        grids: dict[str, tuple[ReferenceProfile, SummaryGrid] | None] = {}

        def grid_of(version: str) -> tuple[ReferenceProfile, SummaryGrid] | None:
            if version not in grids:
                profile = profile_for(version)
                grids[version] = (profile, SummaryGrid.of(profile)) if profile is not None else None
            return grids[version]

        added, read = 0, 0
        since, feedback_since = self.cursors()
        while max_records is None or read < max_records:
            page = self.source.fetch(since, page_size)
            if not len(page):
                break
            rows = log_rows(page.records, source=self.source.name).frame
            read += len(page)
            summaries: list[WindowSummary] = []
            if len(rows):
                versions = rows["model_version"].astype(object).where(rows["model_version"].notna(), NO_VERSION)
                for version, group in rows.groupby(versions.astype(str).to_numpy(), sort=False):
                    found = grid_of(str(version))
                    if found is not None:
                        summaries += summarise_rows(group, found[0], every=self.every, grid=found[1])
            with self._db.transaction(self._lock) as run:
                now, feedback_since = self._cursors_in(run)
                if now == since:  # else another reader summarised this page meanwhile: read on from there
                    for summary in summaries:
                        self._add(run, summary, self.every)
                    for summary in self._rolled(summaries):
                        self._add(run, summary, summary.end - summary.start)
                    self._set_cursor(run, page.next_since, feedback_since)
                    added += sum(s.rows for s in summaries)
                    now = page.next_since
            if now != page.next_since:
                since = now
                continue
            since = page.next_since
            if not page.more:
                break
        self._catch_up_feedback(since, page_size)
        return added

    def _rolled(self, summaries: list[WindowSummary]) -> list[WindowSummary]:
        """``summaries`` merged into the rolled-up windows they fall in."""
        if self.rollup is None:
            return []
        hours: dict[tuple[float, str, str], list[WindowSummary]] = {}
        for summary in summaries:
            hours.setdefault((math.floor(summary.start / self.rollup) * self.rollup, summary.version, summary.grid),
                             []).append(summary)
        return [dataclasses.replace(WindowSummary.merged(parts), start=start, end=start + self.rollup)
                for (start, _, _), parts in hours.items()]

    def _add(self, run: Callable[[str, Sequence[Any]], Rows], summary: WindowSummary, seconds: float) -> None:
        key = (self.source.name, seconds, summary.start, summary.version)
        found = run("SELECT grid, n_rows, data, counts FROM workbench_summaries WHERE source = ? AND "
                    "window_seconds = ? AND window_start = ? AND version = ?", key)
        if found:
            grid, n, data, counts = found[0]
            if grid != summary.grid:
                # Counted on another profile of this version before (its profile was replaced): what
                # is stored stays; these rows are not comparable with it and are left out.
                return
            summary = WindowSummary.decode(data, counts, start=summary.start, end=summary.end,
                                           version=summary.version, grid=grid, rows=int(n)).merge(summary)
        run(_UPSERT_SUMMARY, (*key, summary.grid, summary.rows, *summary.encode()))

    def _set_cursor(self, run: Callable[[str, Sequence[Any]], Rows], predictions: int, feedback: int) -> None:
        run(_UPSERT_CURSOR, (self.source.name, self.every, predictions, feedback))

    def _catch_up_feedback(self, predictions_cursor: int, page_size: int) -> None:
        """Labels recorded since the feedback cursor: each labelled row's truth beside what was
        predicted for it (a correction replaces it), then its window's counts recounted."""
        if not isinstance(self.source, FeedbackSource):
            return
        _, since = self.cursors()
        read = read_all_feedback(self.source, page_size, since)
        if read.next_since == since:
            return
        truths = read.records
        truths = truths[truths["truth"].notna()] if len(truths) else truths
        # Only answers already summarised: a label for a later answer waits for the next catch-up.
        if len(truths):
            truths = truths[truths["prediction_seq"].astype(np.int64) <= predictions_cursor]
        labels = self._predicted(truths) if len(truths) else []
        with self._db.transaction(self._lock) as run:
            if self._cursors_in(run)[1] != since:  # another reader took these labels in meanwhile
                return
            touched = set()
            for seq, row, start, version, truth, guess in labels:
                # The newest label of a row replaces the one before (a correction is not a second row).
                run(_UPSERT_LABEL, (self.source.name, self.every, seq, row, start, version,
                                    orjson.dumps(truth), orjson.dumps(guess)))
                touched.add((start, version))
            windows = {(start, self.every, version) for start, version in touched}
            if self.rollup is not None:
                windows |= {(math.floor(start / self.rollup) * self.rollup, self.rollup, version)
                            for start, version in touched}
            for start, seconds, version in windows:
                pairs = run("SELECT truth, predicted FROM workbench_summary_labels WHERE source = ? AND "
                            "window_seconds = ? AND window_start >= ? AND window_start < ? AND version = ?",
                            (self.source.name, self.every, start, start + seconds, version))
                counts = PerformanceCounts.of([orjson.loads(t) for t, _ in pairs], [orjson.loads(p) for _, p in pairs])
                run(_UPSERT_PERFORMANCE, (self.source.name, seconds, start, version, counts.n,
                                          orjson.dumps(counts.to_json())))
            last = read.next_since
            if len(read.records) and len(truths) < int(read.records["truth"].notna().sum()):
                # Some labels name answers not summarised yet: start there again next time.
                waiting = read.records[read.records["prediction_seq"].astype(np.int64) > predictions_cursor]
                last = min(last, int(waiting["seq"].min()) - 1)
            self._set_cursor(run, self._cursors_in(run)[0], max(last, since))

    def _predicted(self, truths: pd.DataFrame) -> list[tuple[int, int, float, str, Any, Any]]:
        """``(prediction_seq, row, window start, version, truth, predicted)`` of labelled rows."""
        wanted = truths.assign(seq=truths["prediction_seq"].astype(np.int64), row=truths["row"].astype(np.int64))
        seqs = np.unique(wanted["seq"].to_numpy())
        frames = []
        position = 0
        while position < len(seqs):
            first = int(seqs[position])
            span = int(seqs[min(position + 999, len(seqs) - 1)]) - first + 1
            page = self.source.fetch(first - 1, max(1, min(span, 5000)))
            if not len(page):
                break
            frame = log_rows(page.records).frame
            frame["row"] = frame.groupby("seq", sort=False).cumcount()
            frames.append(frame)
            position = int(np.searchsorted(seqs, page.next_since, side="right"))
        if not frames:
            return []
        answers = pd.concat(frames, ignore_index=True)
        if "predict" not in answers.columns:
            return []
        joined = wanted[["seq", "row", "truth"]].merge(answers[["seq", "row", "ts", "model_version", "predict"]],
                                                       on=["seq", "row"], how="inner")
        out = []
        for seq, row, truth, ts, version, guess in joined.itertuples(index=False):
            start = math.floor(float(ts) / self.every) * self.every
            out.append((int(seq), int(row), float(start), NO_VERSION if version is None or pd.isna(version)
                        else str(version), _plain(truth), _plain(guess)))
        return out

    def read(self, since: float | None = None, until: float | None = None, *,
             every: float | None = None) -> list[WindowSummary]:
        """The stored summaries of windows starting in ``[since, until)`` (seconds since the epoch),
        oldest first, with their performance counts. When ``every`` (the period they will be merged
        into) is a whole number of hours, the whole hours come from the rolled-up summaries (a week:
        168 rows) and only the hours cut by ``since`` or ``until`` from the minutes."""
        low = -math.inf if since is None else math.floor(since / self.every) * self.every
        high = math.inf if until is None else until
        if self.rollup is None or every is None or not (every / self.rollup).is_integer():
            return self._read_level(self.every, low, high)
        first = low if math.isinf(low) else math.ceil(low / self.rollup) * self.rollup
        last = high if math.isinf(high) else math.floor(high / self.rollup) * self.rollup
        if first >= last:
            return self._read_level(self.every, low, high)
        return [*self._read_level(self.every, low, first), *self._read_level(self.rollup, first, last),
                *self._read_level(self.every, last, high)]

    def _read_level(self, seconds: float, low: float, high: float) -> list[WindowSummary]:
        if low >= high:
            return []
        rows = self._db.query(
            "SELECT s.window_start, s.version, s.grid, s.n_rows, s.data, s.counts, p.data FROM workbench_summaries s "
            "LEFT JOIN workbench_summary_performance p ON p.source = s.source AND p.window_seconds = s.window_seconds "
            "AND p.window_start = s.window_start AND p.version = s.version WHERE s.source = ? AND s.window_seconds = ? "
            "AND s.window_start >= ? AND s.window_start < ? ORDER BY s.window_start, s.version",
            (self.source.name, seconds, low, high))
        return [WindowSummary.decode(data, counts, start=float(start), end=float(start) + seconds,
                                     version=version, grid=grid, rows=int(n),
                                     performance=PerformanceCounts.from_json(orjson.loads(perf)) if perf else None)
                for start, version, grid, n, data, counts, perf in rows]


def _plain(value: Any) -> Any:
    """A JSON-ready Python value (numpy scalars as Python ones)."""
    return value.item() if hasattr(value, "item") else value


def summary_store(source: PredictionSource, home: Path, *, every: float = 60.0) -> SummaryStore:
    """The :class:`SummaryStore` of ``source``: tables in the PostgreSQL log store for a
    :class:`~workbench.predlog.StoreSource` (every monitor of the cluster shares them), else the
    SQLite file of :func:`summary_path`."""
    if isinstance(source, StoreSource):
        return SummaryStore(None, source, every=every)
    return SummaryStore(summary_path(source, home), source, every=every)
