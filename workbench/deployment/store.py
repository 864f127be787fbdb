"""Deployment records in the workspace (``workbench.db``), safe across processes.

A name is reserved (a ``creating`` row) before anything starts, so two kernels deploying the same
name cannot both succeed, and a failed deploy removes its reservation: no half-written record.
Every deploy, update, rollback and stop appends a revision, the history ``rollback`` reads.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import _sqlite
from workbench._private import private_folder
from workbench.errors import DeploymentNotFoundError, NameTakenError

__all__ = ["DeploymentRecord", "DeploymentStore", "RevisionRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    status TEXT NOT NULL,             -- creating | active
    revision INTEGER NOT NULL,
    requested_uri TEXT NOT NULL,
    model_uri TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT,
    placement TEXT,                   -- JSON (url, handle)
    options TEXT NOT NULL,            -- JSON
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    user TEXT NOT NULL,
    challenger_uri TEXT,              -- the version served beside the champion, if any
    challenger_version TEXT,
    traffic TEXT                      -- JSON TrafficPolicy while there is a challenger
);
CREATE TABLE IF NOT EXISTS revisions (
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    action TEXT NOT NULL,             -- deploy | update | rollback | challenger | promote | abort | stop
    model_uri TEXT NOT NULL,
    model_version TEXT,
    ts TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (name, revision, action)
);
"""


# A stop shares the revision of what it stopped, and times have one-second resolution: within a
# revision the stop comes last (ties on time would otherwise fall back to the key, alphabetical by
# action, putting a "stop" before the "update" it followed).
_OLDEST_FIRST = "revision, action = 'stop', ts, rowid"
_NEWEST_FIRST = "revision DESC, action = 'stop' DESC, ts DESC, rowid DESC"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DeploymentRecord:
    """A stored deployment (what was asked and where it runs), without its live state."""

    name: str
    target: str
    status: str
    revision: int
    requested_uri: str
    model_uri: str
    model_name: str
    model_version: str | None
    placement: Mapping[str, Any] | None
    options: Mapping[str, Any]
    created: str
    updated: str
    user: str
    challenger_uri: str | None = None
    challenger_version: str | None = None
    traffic: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RevisionRecord:
    """One step in a deployment's history."""

    name: str
    revision: int
    action: str
    model_uri: str
    model_version: str | None
    ts: str
    user: str


class DeploymentStore:
    """Reads and writes deployment records in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_folder(path.parent)  # the workspace: 0700
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            have = {r[1] for r in conn.execute("PRAGMA table_info(deployments)")}
            for column in ("challenger_uri", "challenger_version", "traffic"):
                if column not in have:  # a workspace from before challengers: add the columns
                    conn.execute(f"ALTER TABLE deployments ADD COLUMN {column} TEXT")

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return _sqlite.opened(self.path, rows=True)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn, _sqlite.transaction(conn):
            yield conn

    @staticmethod
    def _record(row: sqlite3.Row) -> DeploymentRecord:
        return DeploymentRecord(
            name=row["name"],
            target=row["target"],
            status=row["status"],
            revision=int(row["revision"]),
            requested_uri=row["requested_uri"],
            model_uri=row["model_uri"],
            model_name=row["model_name"],
            model_version=row["model_version"],
            placement=json.loads(row["placement"]) if row["placement"] else None,
            options=json.loads(row["options"]),
            created=row["created"],
            updated=row["updated"],
            user=row["user"],
            challenger_uri=row["challenger_uri"],
            challenger_version=row["challenger_version"],
            traffic=json.loads(row["traffic"]) if row["traffic"] else None,
        )

    def reserve(self, name: str, target: str, requested_uri: str, model_uri: str, model_name: str,
                model_version: str | None, options: Mapping[str, Any], user: str) -> DeploymentRecord:
        """Claim ``name`` for a deployment being created; NameTakenError if it exists."""
        now = _now()
        with self._transaction() as conn:
            existing = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
            if existing is not None:
                rec = self._record(existing)
                what = "being created" if rec.status == "creating" else f"on {rec.target} serving {rec.model_uri}"
                raise NameTakenError(
                    f"a deployment named {name!r} already exists ({what}): choose another name, or replace "
                    f"its model with `workbench update {name} MODEL_URI`"
                )
            last = conn.execute("SELECT MAX(revision) FROM revisions WHERE name = ?", (name,)).fetchone()[0]
            conn.execute(
                "INSERT INTO deployments (name, target, status, revision, requested_uri, model_uri, model_name, "
                "model_version, placement, options, created, updated, user) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (name, target, "creating", (last or 0) + 1, requested_uri, model_uri, model_name,
                 model_version, None, json.dumps(dict(options)), now, now, user),
            )
        return self.get(name)

    def release(self, name: str) -> None:
        """Drop a reservation whose deploy failed."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM deployments WHERE name = ? AND status = 'creating'", (name,))

    def activate(self, name: str, placement: Mapping[str, Any], action: str, user: str) -> DeploymentRecord:
        """Mark a reserved deployment as running at ``placement`` and append its revision."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
            conn.execute(
                "UPDATE deployments SET status = 'active', placement = ?, updated = ? WHERE name = ?",
                (json.dumps(dict(placement)), _now(), name),
            )
            conn.execute("INSERT INTO revisions VALUES (?,?,?,?,?,?,?)",
                         (name, row["revision"], action, row["model_uri"], row["model_version"], _now(), user))
        return self.get(name)

    def replace(self, name: str, *, requested_uri: str, model_uri: str, model_name: str,
                model_version: str | None, placement: Mapping[str, Any], action: str,
                user: str) -> DeploymentRecord:
        """Point an active deployment at a new model and placement (update or rollback)."""
        with self._transaction() as conn:
            row = conn.execute("SELECT revision FROM deployments WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise DeploymentNotFoundError(f"no deployment named {name!r}")
            revision = int(row["revision"]) + 1
            now = _now()
            conn.execute(
                "UPDATE deployments SET revision = ?, requested_uri = ?, model_uri = ?, model_name = ?, "
                "model_version = ?, placement = ?, updated = ?, user = ?, challenger_uri = NULL, "
                "challenger_version = NULL, traffic = NULL WHERE name = ?",
                (revision, requested_uri, model_uri, model_name, model_version,
                 json.dumps(dict(placement)), now, user, name),
            )
            conn.execute("INSERT INTO revisions VALUES (?,?,?,?,?,?,?)",
                         (name, revision, action, model_uri, model_version, now, user))
        return self.get(name)

    def set_challenger(self, name: str, *, placement: Mapping[str, Any], challenger_uri: str | None,
                       challenger_version: str | None, traffic: Mapping[str, Any] | None, action: str,
                       user: str) -> DeploymentRecord:
        """Record a challenger started, re-weighted or aborted (the champion stays)."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise DeploymentNotFoundError(f"no deployment named {name!r}")
            revision = int(row["revision"]) + 1
            now = _now()
            conn.execute(
                "UPDATE deployments SET revision = ?, placement = ?, challenger_uri = ?, challenger_version = ?, "
                "traffic = ?, updated = ?, user = ? WHERE name = ?",
                (revision, json.dumps(dict(placement)), challenger_uri, challenger_version,
                 json.dumps(dict(traffic)) if traffic else None, now, user, name),
            )
            conn.execute("INSERT INTO revisions VALUES (?,?,?,?,?,?,?)",
                         (name, revision, action, challenger_uri or row["model_uri"],
                          challenger_version if challenger_uri else row["model_version"], now, user))
        return self.get(name)

    def remove(self, name: str, user: str) -> None:
        """Delete the record of a stopped deployment; its history stays."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise DeploymentNotFoundError(f"no deployment named {name!r}")
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))
            conn.execute("INSERT OR REPLACE INTO revisions VALUES (?,?,?,?,?,?,?)",
                         (name, row["revision"], "stop", row["model_uri"], row["model_version"], _now(), user))

    def get(self, name: str) -> DeploymentRecord:
        """The record of ``name``; DeploymentNotFoundError naming the known ones if absent."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
            if row is None:
                last = conn.execute(f"SELECT * FROM revisions WHERE name = ? ORDER BY {_NEWEST_FIRST} LIMIT 1",
                                    (name,)).fetchone()
                if last is not None and last["action"] == "stop":
                    raise DeploymentNotFoundError(
                        f"deployment {name!r} was stopped ({last['ts'][:19].replace('T', ' ')} UTC, by "
                        f"{last['user']}): start it again with `workbench deploy {last['model_uri']} --name {name}`; "
                        f"its history: workbench.deployment_history({name!r})"
                    )
                names = [r[0] for r in conn.execute("SELECT name FROM deployments ORDER BY name")]
                known = ", ".join(names) if names else "none yet"
                raise DeploymentNotFoundError(
                    f"no deployment named {name!r} (deployments: {known}); list them with `workbench deployments`"
                )
            return self._record(row)

    def all(self) -> list[DeploymentRecord]:
        """Every deployment record (including ones still being created), by name."""
        with self._connect() as conn:
            return [self._record(r) for r in conn.execute("SELECT * FROM deployments ORDER BY name")]

    def history(self, name: str) -> list[RevisionRecord]:
        """Every revision of ``name``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM revisions WHERE name = ? ORDER BY {_OLDEST_FIRST}", (name,)
            ).fetchall()
        return [RevisionRecord(r["name"], int(r["revision"]), r["action"], r["model_uri"],
                               r["model_version"], r["ts"], r["user"]) for r in rows]
