"""A replica's spool: where its records wait on local disk while the shared log store is away.

``spool.db`` (SQLite in WAL mode, through :mod:`workbench._sqlite`, committed as the embedded log
commits) in the replica's log folder holds prediction records and feedback items exactly as they
will be written to the store, each with the replica and idempotency key it was given when it was
answered. :class:`~workbench.predlog.storelog.StoreLog` drains it, oldest first, once the store
answers again; a record is deleted from the spool only after the store committed it, and the store
skips a key it already holds, so a crash between the two costs nothing and duplicates nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from workbench._sqlite import connect

__all__ = ["SPOOL_FILE", "Spool", "SpooledFeedback"]

#: The spool's file, in the replica's log folder.
SPOOL_FILE = "spool.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled_predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL, replica TEXT NOT NULL, idem_key TEXT NOT NULL,
    request_id TEXT NOT NULL, ts REAL NOT NULL, model_name TEXT NOT NULL, model_version TEXT,
    protocol TEXT NOT NULL, n_rows INTEGER NOT NULL, latency_ms REAL NOT NULL,
    inputs BLOB NOT NULL, outputs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS spooled_feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL, replica TEXT NOT NULL, idem_key TEXT NOT NULL,
    item BLOB NOT NULL,          -- the item as the client sent it (JSON)
    model_version TEXT,          -- the version of the server it was sent to
    ts REAL NOT NULL             -- when it arrived
);
"""

_PREDICTION_COLUMNS = ("deployment", "replica", "idem_key", "request_id", "ts", "model_name", "model_version",
                       "protocol", "n_rows", "latency_ms", "inputs", "outputs")


@dataclass(frozen=True)
class SpooledFeedback:
    """A feedback item waiting in the spool."""

    seq: int
    deployment: str
    replica: str
    idem_key: str
    item: dict[str, Any]
    model_version: str | None
    ts: float


class Spool:
    """The spool file of one log folder; used from one thread (the store writer's)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / SPOOL_FILE
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, threads=True, synchronous="NORMAL")
            try:
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def exists(self) -> bool:
        """Whether a spool file is there (left by this replica or a previous run of it)."""
        return self.path.is_file()

    def write(self, predictions: Sequence[tuple[Any, ...]], feedback: Sequence[tuple[Any, ...]]) -> None:
        """Commit prediction rows (the store's insert columns) and feedback rows (deployment, replica,
        key, item JSON, model version, ts) in one transaction; raises when the disk refuses."""
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT INTO spooled_predictions ({', '.join(_PREDICTION_COLUMNS)}) VALUES "
                             f"({','.join('?' * len(_PREDICTION_COLUMNS))})", predictions)
            conn.executemany("INSERT INTO spooled_feedback (deployment, replica, idem_key, item, model_version, ts) "
                             "VALUES (?,?,?,?,?,?)", feedback)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def counts(self) -> tuple[int, int]:
        """Predictions and feedback items waiting."""
        if self._conn is None and not self.exists():
            return 0, 0
        conn = self._open()
        return (conn.execute("SELECT count(*) FROM spooled_predictions").fetchone()[0],
                conn.execute("SELECT count(*) FROM spooled_feedback").fetchone()[0])

    def oldest_predictions(self, limit: int) -> list[tuple[int, tuple[Any, ...]]]:
        """The oldest spooled predictions: ``(spool seq, row of the store's insert columns)``."""
        rows = self._open().execute(f"SELECT seq, {', '.join(_PREDICTION_COLUMNS)} FROM spooled_predictions "
                                    "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(r[0]), tuple(r[1:])) for r in rows]

    def oldest_feedback(self, limit: int) -> list[SpooledFeedback]:
        """The oldest spooled feedback items."""
        rows = self._open().execute("SELECT seq, deployment, replica, idem_key, item, model_version, ts FROM "
                                    "spooled_feedback ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [SpooledFeedback(int(r[0]), r[1], r[2], r[3], orjson.loads(r[4]), r[5], float(r[6])) for r in rows]

    def defer(self, feedback: Sequence[int]) -> None:
        """Put feedback items back at the end of the queue, as they are (their arrival time kept)."""
        conn = self._open()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for seq in feedback:
                conn.execute("INSERT INTO spooled_feedback (deployment, replica, idem_key, item, model_version, ts) "
                             "SELECT deployment, replica, idem_key, item, model_version, ts FROM spooled_feedback "
                             "WHERE seq = ?", (seq,))
                conn.execute("DELETE FROM spooled_feedback WHERE seq = ?", (seq,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def forget(self, predictions: Sequence[int] = (), feedback: Sequence[int] = ()) -> None:
        """Delete what the store committed."""
        conn = self._open()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("DELETE FROM spooled_predictions WHERE seq = ?", [(s,) for s in predictions])
            conn.executemany("DELETE FROM spooled_feedback WHERE seq = ?", [(s,) for s in feedback])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the file (reopened on the next use)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
