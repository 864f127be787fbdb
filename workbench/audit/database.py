"""The audit tables in the workspace's SQLite file (``workbench.db``), append-only.

The file is shared with the deployment records (:mod:`workbench.deployment.store`); this module owns
only the audit trail's tables, ``audit`` and the governance ``waivers`` (a waiver is audit evidence),
and ``advice``, when a version's failing checks were first shown in full. Rows are only ever inserted: triggers make SQLite
itself refuse an ``UPDATE`` or ``DELETE`` on them, so even a hand-written statement cannot rewrite
the record a regulator reads.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from workbench import _sqlite
from workbench._private import private_folder
from workbench.config import get_settings
from workbench.errors import StoreUnavailableError

__all__ = ["connect", "now_utc", "transaction"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,                 -- UTC, ISO 8601 with microseconds
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    model_name TEXT,
    from_version TEXT,
    to_version TEXT,
    target TEXT,
    deployment TEXT,
    details TEXT NOT NULL             -- JSON object
);
CREATE INDEX IF NOT EXISTS audit_model ON audit (model_name, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE IF NOT EXISTS waivers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    model_key TEXT NOT NULL,          -- name/version, or the model URI when it is not registered
    model_name TEXT NOT NULL,
    model_version TEXT,
    check_name TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_by TEXT NOT NULL         -- the workspace user who entered it
);
CREATE INDEX IF NOT EXISTS waivers_model ON waivers (model_key, check_name, id);

CREATE TABLE IF NOT EXISTS advice (
    model_key TEXT NOT NULL,          -- name/version, or the model URI when it is not registered
    checks TEXT NOT NULL,             -- the failing checks shown, sorted, comma-separated
    ts TEXT NOT NULL,                 -- when they were first shown in full
    PRIMARY KEY (model_key, checks)
);
CREATE TRIGGER IF NOT EXISTS waivers_no_update BEFORE UPDATE ON waivers
BEGIN SELECT RAISE(ABORT, 'waivers are append-only'); END;
CREATE TRIGGER IF NOT EXISTS waivers_no_delete BEFORE DELETE ON waivers
BEGIN SELECT RAISE(ABORT, 'waivers are append-only'); END;
"""

_lock = threading.Lock()
#: Database files (path, inode) whose schema this process has already put in place.
_ready: set[tuple[Path, int]] = set()


def now_utc() -> str:
    """The current UTC time as ISO 8601 with microseconds (sorts as text, and as time)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


def _unavailable(path: Path, exc: OSError | sqlite3.Error) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"cannot use the workspace database {path} ({exc}); check that WORKBENCH_HOME is on a writable, "
        "local disk, and try again if another process was holding a long write"
    )


@contextlib.contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A connection to the workspace database with the governance tables in place (WAL mode)."""
    path = get_settings().workspace_db
    try:
        private_folder(path.parent)  # the workspace: 0700
        conn = _sqlite.connect(path, rows=True)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnavailableError(
            f"cannot open the workspace database {path}: {exc}. Set WORKBENCH_HOME to a folder you can write to."
        ) from exc
    try:
        try:
            # Keyed by inode too, so a workspace file replaced under a running kernel gets its tables.
            key = (path, os.stat(path).st_ino)
            with _lock:
                if key not in _ready:
                    conn.executescript(_SCHEMA)  # idempotent; other processes may run it too
                    _ready.add(key)
        except (OSError, sqlite3.Error) as exc:
            raise _unavailable(path, exc) from exc
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction() -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the database's write lock at once (``BEGIN IMMEDIATE``).

    Taking the lock up front means a writer waits for another process's write instead of failing
    half-way with "database is locked".
    """
    with connect() as conn:
        try:
            with _sqlite.transaction(conn):
                yield conn
        except sqlite3.Error as exc:
            raise _unavailable(get_settings().workspace_db, exc) from exc
