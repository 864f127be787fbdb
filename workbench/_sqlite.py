"""The one way the workbench opens its SQLite files: the workspace database (``workbench.db``: deployment
records, the audit trail, waivers) and each server's prediction log (``predictions.db``).

Every connection is in autocommit mode (``isolation_level=None``) with WAL journaling, so readers never
block the writer; writes go through :func:`transaction`, which takes the write lock up front
(``BEGIN IMMEDIATE``) so a writer waits for another process instead of failing half-way with
"database is locked".
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from workbench._private import create_private

__all__ = ["connect", "opened", "transaction"]


def connect(path: str | Path, *, read_only: bool = False, rows: bool = False,
            threads: bool = False, synchronous: str | None = None) -> sqlite3.Connection:
    """An open connection to ``path`` (the caller closes it; see :func:`opened`).

    ``read_only`` opens without creating or journaling anything (a reader of a log another process
    writes); ``rows`` gives :class:`sqlite3.Row` results; ``threads`` lets the connection move between
    threads (its user serialises access); ``synchronous`` sets the pragma (``NORMAL`` in WAL mode: a
    commit survives the process crashing, not the machine losing power, without an fsync per commit).
    """
    if read_only:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30, isolation_level=None,
                               check_same_thread=not threads)
    else:
        create_private(Path(path))  # 0600 (its WAL and shared-memory files take the same mode)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=not threads)
    if rows:
        conn.row_factory = sqlite3.Row
    try:
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def opened(path: str | Path, *, read_only: bool = False, rows: bool = False, threads: bool = False,
           synchronous: str | None = None) -> Iterator[sqlite3.Connection]:
    """:func:`connect` as a context manager that closes the connection."""
    conn = connect(path, read_only=read_only, rows=rows, threads=threads, synchronous=synchronous)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on ``conn``, rolled back when the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may already have ended it
            conn.execute("ROLLBACK")
        raise
