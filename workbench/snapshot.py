"""Training data snapshots: the rows a model was trained on, stored once as Parquet, by content.

Asked for at ``log_model`` (``snapshot_data=True``, or ``WORKBENCH_SNAPSHOT_DATA=1``; off by default),
the training features and labels are written as one Parquet table and keyed by a SHA-256 of their
content (values, column names, dtypes and row order, as :func:`~workbench.profile.data_hash`; the
index is not kept). The file lives in the MLflow artifact store, as the artifact of one run per key
in the experiment :data:`SNAPSHOT_EXPERIMENT`: on a team tracking server every colleague reads it
where the models are, and however many versions are trained on the same rows, it is stored once.
Each model keeps only a small manifest (``training_data/snapshot.json``): the key, rows, bytes, and
where the file is, or why it was not stored (over ``WORKBENCH_MAX_SNAPSHOT_BYTES``, or a column
Parquet cannot hold exactly).

A snapshot is checked when written: it is read back, and stored only if every dtype and value comes
back exactly (NaN and ``pd.NA``, nullable ``Int64``/``boolean``/``string``, categories with their
levels, datetimes of any unit and time zone).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import _mlflow
from workbench.config import get_settings
from workbench.errors import InvalidInputError, NotFoundError
from workbench.profile import data_hash

__all__ = [
    "SNAPSHOT_DIR",
    "SNAPSHOT_EXPERIMENT",
    "SNAPSHOT_MANIFEST",
    "SnapshotManifest",
    "content_key",
    "read_snapshot",
    "store_snapshot",
]

#: The folder of a model's artifacts that holds the snapshot manifest.
SNAPSHOT_DIR = "training_data"
#: The manifest's file name inside :data:`SNAPSHOT_DIR`.
SNAPSHOT_MANIFEST = "snapshot.json"
#: The experiment whose runs hold the snapshot files, one run per content key.
SNAPSHOT_EXPERIMENT = "workbench-data-snapshots"
#: The Parquet file's name in its run's artifacts.
SNAPSHOT_FILE = "snapshot.parquet"
#: The tag of a snapshot run (and of a model) naming the snapshot's content key.
TAG_SNAPSHOT_KEY = "workbench.snapshot_key"
TAG_SNAPSHOT_BYTES = "workbench.snapshot_bytes"
#: The labels' column in the Parquet table (their own name is kept in the manifest).
_LABEL_COLUMN = "__workbench_label__"


@dataclass(frozen=True)
class SnapshotManifest:
    """What a model records about its training data snapshot."""

    #: SHA-256 of the features, the labels and the labels' name.
    key: str
    #: False when the snapshot was not stored; ``reason`` says why.
    stored: bool
    rows: int
    #: The feature columns, in order.
    columns: tuple[str, ...]
    #: Whether labels were given, and their name (a Series' ``name``).
    has_labels: bool = False
    label_name: Any = None
    #: Size of the Parquet file in bytes (also when it was over the bound and not stored).
    bytes: int = 0
    reason: str = ""
    #: The snapshot run holding the file (in :data:`SNAPSHOT_EXPERIMENT`).
    run_id: str | None = None
    #: True when an earlier model had already stored the same rows.
    reused: bool = False
    #: The ``object`` columns (Parquet reads text back as ``str``) and how each writes a gap:
    #: ``none``, ``nan``, ``na`` or ``""`` when it has none.
    object_columns: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``snapshot.json`` holds)."""
        return {"key": self.key, "stored": self.stored, "rows": self.rows, "columns": list(self.columns),
                "has_labels": self.has_labels, "label_name": self.label_name, "bytes": self.bytes,
                "reason": self.reason, "run_id": self.run_id, "reused": self.reused,
                "object_columns": dict(self.object_columns), "experiment": SNAPSHOT_EXPERIMENT,
                "file": SNAPSHOT_FILE}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotManifest:
        """Read back :meth:`to_dict`."""
        return cls(key=data["key"], stored=bool(data["stored"]), rows=int(data["rows"]),
                   columns=tuple(data.get("columns") or ()), has_labels=bool(data.get("has_labels")),
                   label_name=data.get("label_name"), bytes=int(data.get("bytes") or 0),
                   reason=data.get("reason") or "", run_id=data.get("run_id"), reused=bool(data.get("reused")),
                   object_columns=dict(data.get("object_columns") or {}))

    def save(self, directory: Path) -> Path:
        """Write ``snapshot.json`` into ``directory / SNAPSHOT_DIR``."""
        folder = directory / SNAPSHOT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SNAPSHOT_MANIFEST
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def _labels(labels: pd.Series | Sequence[Any] | None, rows: int) -> pd.Series | None:
    if labels is None:
        return None
    series = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), name="target")
    if len(series) != rows:
        raise InvalidInputError(f"training_labels has {len(series)} values for {rows} training rows: give one "
                                "label per row")
    return series.reset_index(drop=True)


def _label_name(series: pd.Series | None) -> Any:
    name = None if series is None else series.name
    return name if name is None or isinstance(name, (str, int, float, bool)) else str(name)


def _table(data: pd.DataFrame, labels: pd.Series | None) -> pd.DataFrame:
    table = data.reset_index(drop=True)
    if labels is not None:
        table = table.assign(**{_LABEL_COLUMN: labels.array})
    return table


def content_key(data: pd.DataFrame, labels: pd.Series | Sequence[Any] | None = None) -> str:
    """The snapshot key of training rows: a SHA-256 of the features' and labels' content and names."""
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError("a training data snapshot needs training_data as a DataFrame")
    series = _labels(labels, len(data))
    digest = hashlib.sha256(data_hash(_table(data, series)).encode())
    digest.update(json.dumps([series is not None, _label_name(series)], default=str).encode())
    return digest.hexdigest()


_GAPS: dict[str, Any] = {"none": None, "nan": float("nan"), "na": pd.NA}


def _object_columns(table: pd.DataFrame) -> dict[str, str]:
    """Each ``object`` column, and how it writes a gap (see :attr:`SnapshotManifest.object_columns`)."""
    found = {}
    for name in table.columns:
        if table[name].dtype == object:
            gaps = table[name][table[name].isna()]
            first = gaps.iloc[0] if len(gaps) else ""
            found[str(name)] = "" if not len(gaps) else "none" if first is None else "na" if first is pd.NA else "nan"
    return found


def _restore(back: pd.DataFrame, object_columns: dict[str, str]) -> pd.DataFrame:
    """Give ``object`` columns their dtype and gap marker back (Parquet has one kind of null)."""
    for name, gap in object_columns.items():
        values = back[name].astype(object)
        back[name] = values.where(values.notna(), _GAPS[gap]) if gap else values
    return back


def _exact(original: pd.DataFrame, back: pd.DataFrame) -> str:
    """Why ``back`` is not exactly ``original`` (empty when it is)."""
    if list(back.columns) != list(original.columns):
        return "Parquet changed the column names"
    for name in original.columns:
        if str(back[name].dtype) != str(original[name].dtype):
            return f"Parquet reads column {name!r} back as {back[name].dtype}, not {original[name].dtype}"
    for name in original.columns:
        try:  # stricter than the data hash, which takes None and NaN in a text column for one another
            pd.testing.assert_series_equal(back[name], original[name], check_exact=True)
        except AssertionError:
            return f"Parquet does not read the values of column {name!r} back exactly"
    return ""


def _find(client: Any, experiment_id: str, key: str) -> Any:
    found = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_SNAPSHOT_KEY}` = '{key}' and "
                               "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"],
                               max_results=1)
    return found[0] if found else None


def store_snapshot(data: pd.DataFrame, labels: pd.Series | Sequence[Any] | None, max_bytes: int) -> SnapshotManifest:
    """Store ``data`` (and ``labels``) as a Parquet snapshot unless the same rows are already stored;
    a snapshot over ``max_bytes``, or one Parquet cannot hold exactly, is not stored and the manifest
    says why."""
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError("snapshot_data needs training_data as a DataFrame: pass training_data=X")
    series = _labels(labels, len(data))
    key = content_key(data, series)
    base = {"key": key, "rows": len(data), "columns": tuple(str(c) for c in data.columns),
            "has_labels": series is not None, "label_name": _label_name(series)}
    table = _table(data, series)
    objects = _object_columns(table)
    base["object_columns"] = objects
    if not all(isinstance(c, str) for c in data.columns):
        return SnapshotManifest(stored=False, reason="Parquet needs text column names: name the columns "
                                "(e.g. X.columns = X.columns.astype(str)) to snapshot these rows", **base)
    if _LABEL_COLUMN in data.columns:
        return SnapshotManifest(stored=False, reason=f"a feature is called {_LABEL_COLUMN!r}, the name the "
                                "snapshot keeps labels under: rename it", **base)
    client = _mlflow.client()
    with _mlflow.translated(NotFoundError, "the data snapshot store"):
        experiment = _mlflow.get_or_create_experiment(SNAPSHOT_EXPERIMENT, {"workbench.user": get_settings().user})
        existing = _find(client, experiment.experiment_id, key)
        if existing is not None:
            size = int(existing.data.tags.get(TAG_SNAPSHOT_BYTES) or 0)
            return SnapshotManifest(stored=True, bytes=size, run_id=existing.info.run_id, reused=True, **base)
    with tempfile.TemporaryDirectory(prefix="workbench-snapshot-") as tmp:
        path = Path(tmp) / SNAPSHOT_FILE
        try:
            table.to_parquet(path, index=False, engine="pyarrow")
            problem = _exact(table, _restore(pd.read_parquet(path, engine="pyarrow"), objects))
        except Exception as exc:  # a column pyarrow cannot write (e.g. mixed Python objects)
            problem = f"Parquet cannot hold these rows ({exc})"
        size = path.stat().st_size if path.exists() else 0
        if problem:
            return SnapshotManifest(stored=False, bytes=size, reason=problem, **base)
        if size > max_bytes:
            return SnapshotManifest(stored=False, bytes=size, reason=(
                f"the snapshot is {size:,} bytes, over the bound of {max_bytes:,} (WORKBENCH_MAX_SNAPSHOT_BYTES): "
                "raise the bound to store it, or train on fewer rows"), **base)
        with _mlflow.translated(NotFoundError, "the data snapshot store"):
            run = client.create_run(experiment.experiment_id, run_name=f"snapshot-{key[:12]}",
                                    tags={"workbench.user": get_settings().user, TAG_SNAPSHOT_BYTES: str(size)})
            client.log_artifact(run.info.run_id, str(path))
            # Tagged with its key only once the file is there, so no reader finds a half-written one.
            client.set_tag(run.info.run_id, TAG_SNAPSHOT_KEY, key)
            client.set_terminated(run.info.run_id)
    return SnapshotManifest(stored=True, bytes=size, run_id=run.info.run_id, **base)


def read_snapshot(manifest: SnapshotManifest) -> tuple[pd.DataFrame, pd.Series | None]:
    """The features and labels a stored snapshot holds, exactly as they were logged (a fresh index)."""
    import mlflow.artifacts

    if not manifest.stored or manifest.run_id is None:
        raise NotFoundError(f"the training data snapshot {manifest.key[:12]} was not stored: {manifest.reason}")
    _mlflow.ensure_ready()
    with tempfile.TemporaryDirectory(prefix="workbench-snapshot-") as tmp:
        with _mlflow.translated(NotFoundError, f"the training data snapshot of run {manifest.run_id}"):
            path = mlflow.artifacts.download_artifacts(run_id=manifest.run_id, artifact_path=SNAPSHOT_FILE,
                                                       dst_path=tmp)
        table = _restore(pd.read_parquet(path, engine="pyarrow"), manifest.object_columns)
    labels = None
    if manifest.has_labels:
        labels = table.pop(_LABEL_COLUMN).rename(manifest.label_name)
    return table, labels
