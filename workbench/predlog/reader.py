"""Reading the prediction log: pages of records after a cursor, and one row per predicted input row.

Readers take pages after a cursor (``since``), from the file directly (:func:`read_predictions`) or
from a running server over HTTP (``GET /workbench/predictions?since=N``, see
:mod:`workbench.predlog.sources`), so monitoring follows every replica without re-reading what it
has seen.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from workbench._sqlite import connect
from workbench.errors import InvalidInputError, NotFoundError, WorkbenchError
from workbench.predlog.schema import LOG_FILE, META_COLUMNS, RECORD_COLUMNS
from workbench.tables import restore_column

__all__ = ["LogRows", "PredictionPage", "log_rows", "page_rows", "read_predictions"]


@dataclass(frozen=True)
class PredictionPage:
    """A page of the prediction log and the cursor to continue from."""

    #: One row per request: seq, request_id, ts, model_name, model_version, protocol, n_rows,
    #: latency_ms, inputs, outputs, replica.
    records: pd.DataFrame
    #: Pass as ``since`` to get what comes after this page.
    next_since: int
    #: True when the page stopped at its limit of records or bytes: more records may follow, read
    #: from ``next_since`` (False: the page reached the end of the log as it was).
    more: bool = False

    def __len__(self) -> int:
        return len(self.records)

    def rows(self) -> pd.DataFrame:
        """One row per predicted input row: the input columns, then each output as a column,
        plus ``request_id``, ``ts``, ``model_version`` and ``seq`` (see :func:`page_rows`)."""
        return page_rows(self.records)[0]

    def to_json(self) -> dict[str, Any]:
        """The HTTP route's body: ``{"records": [...], "next_since": N}``."""
        return {
            "records": [
                {k: (v if not hasattr(v, "item") else v.item()) for k, v in rec.items()}
                for rec in self.records.to_dict(orient="records")
            ],
            "next_since": self.next_since,
            "more": self.more,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PredictionPage:
        """Inverse of :meth:`to_json` (what a client of the HTTP route gets)."""
        return cls(pd.DataFrame(body["records"], columns=list(RECORD_COLUMNS)), int(body["next_since"]),
                   bool(body.get("more", False)))


def page_rows(records: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """One row per predicted input row of log records, and the input and output column names.

    Built column-wise in one pass (not one DataFrame per request): reading 10k logged rows costs
    milliseconds. Outputs whose name clashes with an input column are named ``output.<name>``.
    """
    if not len(records):
        return pd.DataFrame(columns=list(META_COLUMNS[:-1])), (), ()
    inputs = records["inputs"].tolist()
    outputs = records["outputs"].tolist()
    input_names: list[str] = []
    for item in inputs:
        for name in item["columns"]:
            if name not in input_names:
                input_names.append(name)
    n_rows = np.fromiter((len(item["data"]) for item in inputs), dtype=np.int64, count=len(inputs))
    total = int(n_rows.sum())
    columns: dict[str, Any] = {}
    uniform = all(item["columns"] == input_names for item in inputs)
    if uniform:
        flat = itertools.chain.from_iterable(item["data"] for item in inputs)
        transposed = list(zip(*flat)) if total else [() for _ in input_names]  # one C-level pass
        columns.update(zip(input_names, transposed))
    else:  # requests with different column sets: align by name, missing as None
        for name in input_names:
            values: list[Any] = []
            for item in inputs:
                if name in item["columns"]:
                    j = item["columns"].index(name)
                    values.extend(row[j] for row in item["data"])
                else:
                    values.extend([None] * len(item["data"]))
            columns[name] = values
    _restore_types(columns, inputs)
    output_names: list[str] = []
    for item in outputs:
        for name in item:
            if name not in output_names:
                output_names.append(name)
    out_columns = []
    for name in output_names:
        column = name if name not in columns else f"output.{name}"
        out_columns.append(column)
        columns[column] = list(itertools.chain.from_iterable(
            _per_row(item.get(name), count) for item, count in zip(outputs, n_rows.tolist())
        ))
    frame = pd.DataFrame(columns)
    frame["request_id"] = np.repeat(records["request_id"].to_numpy(), n_rows)
    frame["ts"] = np.repeat(records["ts"].to_numpy(dtype=np.float64), n_rows)
    frame["model_version"] = np.repeat(records["model_version"].to_numpy(), n_rows)
    frame["seq"] = np.repeat(records["seq"].to_numpy(dtype=np.int64), n_rows)
    return frame, tuple(input_names), tuple(out_columns)


def _restore_types(columns: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
    """Give each input column back the dtype the server predicted with (records keep it in
    ``dtypes``): datetimes, nullable integers and categories read back as themselves."""
    seen: dict[str, set[str]] = {}
    for item in inputs:
        for name, dtype in zip(item["columns"], item.get("dtypes") or ()):
            seen.setdefault(name, set()).add(dtype)
    for name, dtypes in seen.items():
        if len(dtypes) == 1 and name in columns:
            (dtype,) = dtypes
            with contextlib.suppress(WorkbenchError):  # a column that cannot be restored stays as logged
                columns[name] = restore_column(name, dtype, list(columns[name]))


def _per_row(values: Any, count: int) -> Iterable[Any]:
    if isinstance(values, list) and len(values) == count:
        return values
    return [values] * count


def read_predictions(folder: str | Path, since: int = 0, limit: int | None = 1000, *,
                     max_bytes: int | None = None) -> PredictionPage:
    """Records with ``seq > since`` from the log in ``folder``, oldest first, at most ``limit``.

    ``max_bytes`` bounds the page by the size of the records' logged inputs and outputs as well: the
    page ends before the record that would go over it (but holds at least one record, so a reader
    always moves on). ``page.more`` says whether a limit cut the page short.
    """
    if since < 0 or (limit is not None and limit <= 0) or (max_bytes is not None and max_bytes <= 0):
        raise InvalidInputError("since must be >= 0, and limit and max_bytes > 0")
    path = Path(folder) / LOG_FILE
    if not path.exists():
        raise NotFoundError(f"no prediction log at {path}: has the server answered a request yet?")
    conn = connect(path, read_only=True)
    try:
        sql = f"SELECT {', '.join(RECORD_COLUMNS)} FROM predictions WHERE seq > ? ORDER BY seq"
        args: tuple[Any, ...] = (since,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (since, limit)
        cut_by_bytes = False
        if max_bytes is not None:  # sizes first, then only the records that fit are read
            size_sql = sql.replace(", ".join(RECORD_COLUMNS), "seq, length(inputs) + length(outputs)", 1)
            taken, total, last = 0, 0, since
            for seq, size in conn.execute(size_sql, args):
                if taken and total + size > max_bytes:
                    cut_by_bytes = True
                    break
                taken, total, last = taken + 1, total + size, seq
            sql = sql.replace("WHERE seq > ?", "WHERE seq > ? AND seq <= ?", 1)
            args = (since, last, *args[1:])
        rows = conn.execute(sql, args).fetchall()
    finally:
        conn.close()
    decoded = [
        (*row[:8], orjson.loads(row[8]), orjson.loads(row[9]), row[10]) for row in rows
    ]
    frame = pd.DataFrame(decoded, columns=list(RECORD_COLUMNS))
    more = cut_by_bytes or (limit is not None and len(rows) >= limit)
    return PredictionPage(frame, int(rows[-1][0]) if rows else since, more)


@dataclass(frozen=True)
class LogRows:
    """Rows of a prediction log: one row per predicted input row."""

    #: Input columns, then output columns, then ``request_id``, ``ts``, ``model_version``, ``seq``
    #: and ``source``.
    frame: pd.DataFrame
    #: Names of the input (feature) columns in ``frame``.
    inputs: tuple[str, ...]
    #: Names of the output columns in ``frame`` (``predict``, ``predict_proba``, ...).
    outputs: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.frame)


def log_rows(records: pd.DataFrame, source: str = "") -> LogRows:
    """One row per predicted input row of a page's records, tagged with the source they came from."""
    frame, inputs, outputs = page_rows(records)
    frame["source"] = source
    return LogRows(frame, inputs, outputs)
