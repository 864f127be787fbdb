"""The prediction log: every answered request, appended durably, read back incrementally.

Each server process appends to ``predictions.db`` (SQLite in WAL mode) in its log folder: the
deployment's folder for local deploys, a volume for containers. A writer thread commits records in
groups, and a request is answered only once its record is committed, so an acknowledged prediction
survives a crash or restart of the server; the group commit keeps that cheap (one commit for all the
requests that arrived together).

Readers take pages after a cursor (``since``), from the file directly (:func:`read_predictions`) or
from a running server over HTTP (``GET /workbench/predictions?since=N``), so monitoring can follow
every replica without re-reading what it has seen.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from workbench.errors import InvalidInputError, NotFoundError, WorkbenchError
from workbench.tables import restore_column

__all__ = ["LogRecord", "PredictionLog", "PredictionPage", "page_rows", "read_predictions"]

LOG_FILE = "predictions.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT,
    protocol TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    inputs BLOB NOT NULL,
    outputs BLOB NOT NULL,
    replica TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
CREATE INDEX IF NOT EXISTS predictions_request ON predictions (request_id);
"""


@dataclass(frozen=True)
class LogRecord:
    """One answered request."""

    request_id: str
    ts: float
    model_name: str
    model_version: str | None
    protocol: str
    n_rows: int
    latency_ms: float
    #: ``{"columns": [...], "data": [[...], ...], "dtypes": [...]}`` (values exact, see
    #: :mod:`workbench.tables`; ``dtypes`` lets readers restore each column's type)
    inputs: dict[str, Any]
    #: output name -> list of values, one per row
    outputs: dict[str, Any]


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives the process crashing (not the machine losing power)
    # without an fsync per commit.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class PredictionLog:
    """Appends records from any thread; each ``append`` returns once its record is committed.

    ``PredictionLog(folder)`` opens (or creates) ``folder/predictions.db``. Call :meth:`close` to
    flush and stop the writer thread.
    """

    def __init__(self, folder: str | Path, *, replica: str | None = None, max_group: int = 512) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LOG_FILE
        self.replica = replica or uuid.uuid4().hex[:12]
        self._max_group = max_group
        conn = _connect(self.path)
        conn.executescript(_SCHEMA)
        conn.close()
        self._stop = threading.Event()
        # Checkpoints (copying the WAL into the database, with an fsync) run on their own thread:
        # done by the writer they would stall commits, and so answers, for tens of milliseconds.
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="prediction-log-checkpoint",
                                              daemon=True)
        self._checkpointer.start()
        self._queue: queue.SimpleQueue[tuple[list[LogRecord], Callable[[BaseException | None], None]] | None]
        self._queue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, records: Sequence[LogRecord], done: Callable[[BaseException | None], None]) -> None:
        """Queue records; ``done(None)`` is called from the writer thread once they are committed
        (``done(error)`` if they could not be)."""
        if self._closed:
            done(RuntimeError("the prediction log is closed"))
            return
        self._queue.put((list(records), done))

    def append(self, records: Sequence[LogRecord], timeout: float = 30.0) -> None:
        """Append and wait for the commit (for callers outside the server's event loop)."""
        finished = threading.Event()
        failure: list[BaseException | None] = [None]

        def done(error: BaseException | None) -> None:
            failure[0] = error
            finished.set()

        self.submit(records, done)
        if not finished.wait(timeout):
            raise TimeoutError("the prediction log did not commit in time")
        if failure[0] is not None:
            raise failure[0]

    def _checkpoint_loop(self, every: float = 1.0) -> None:
        conn = _connect(self.path)
        try:
            while not self._stop.wait(every):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _run(self) -> None:
        conn = _connect(self.path)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                group = [item]
                # Take everything already waiting: one commit for all of it.
                while len(group) < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._commit(conn, group)
                        return
                    group.append(nxt)
                self._commit(conn, group)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, group: list[Any]) -> None:
        rows = [
            (r.request_id, r.ts, r.model_name, r.model_version, r.protocol, r.n_rows, r.latency_ms,
             _dumps(r.inputs), _dumps(r.outputs), self.replica)
            for records, _ in group
            for r in records
        ]
        error: BaseException | None = None
        for attempt in range(5):
            try:
                with conn:  # BEGIN ... COMMIT, rolled back on error
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT INTO predictions (request_id, ts, model_name, model_version, protocol, "
                        "n_rows, latency_ms, inputs, outputs, replica) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        rows,
                    )
                error = None
                break
            except sqlite3.OperationalError as exc:  # e.g. busy beyond the timeout, disk full
                error = exc
                time.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # never let the writer thread die
                error = exc
                break
        for _, done in group:
            with contextlib.suppress(Exception):
                done(error)

    def close(self) -> None:
        """Commit everything queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._stop.set()
        self._checkpointer.join(timeout=60)

    def read(self, since: int = 0, limit: int | None = 1000, *, max_bytes: int | None = None) -> PredictionPage:
        """Records after cursor ``since`` (see :func:`read_predictions`)."""
        return read_predictions(self.folder, since=since, limit=limit, max_bytes=max_bytes)


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
        return cls(pd.DataFrame(body["records"], columns=_COLUMNS), int(body["next_since"]),
                   bool(body.get("more", False)))


def page_rows(records: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """One row per predicted input row of log records, and the input and output column names.

    Built column-wise in one pass (not one DataFrame per request): reading 10k logged rows costs
    milliseconds. Outputs whose name clashes with an input column are named ``output.<name>``.
    """
    if not len(records):
        return pd.DataFrame(columns=list(_ROW_META)), (), ()
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


_ROW_META = ("request_id", "ts", "model_version", "seq")

_COLUMNS = ["seq", "request_id", "ts", "model_name", "model_version", "protocol", "n_rows",
            "latency_ms", "inputs", "outputs", "replica"]


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
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM predictions WHERE seq > ? ORDER BY seq"
        args: tuple[Any, ...] = (since,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (since, limit)
        cut_by_bytes = False
        if max_bytes is not None:  # sizes first, then only the records that fit are read
            size_sql = sql.replace(", ".join(_COLUMNS), "seq, length(inputs) + length(outputs)", 1)
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
    frame = pd.DataFrame(decoded, columns=_COLUMNS)
    more = cut_by_bytes or (limit is not None and len(rows) >= limit)
    return PredictionPage(frame, int(rows[-1][0]) if rows else since, more)
