"""The audit trail: who registered, promoted, packaged, deployed, updated, rolled back, stopped or
waived what, and when.

One append-only table (``audit``) in the workspace database. Every action the workbench takes on a
model writes exactly one row through :func:`record`; nothing in the workbench updates or deletes a
row, and the database refuses it too. Read it with :func:`audit_log` (a DataFrame) or
``workbench audit``.

Example::

    import workbench as wb
    wb.audit_log(model="churn", since="7d")      # one row per action, oldest first
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from workbench.config import get_settings
from workbench.errors import InvalidInputError
from workbench.audit.database import connect, now_utc, transaction

__all__ = ["ACTIONS", "AUDIT_COLUMNS", "AuditRecord", "ShareMove", "append", "audit_log", "parse_since", "record",
           "record_share_changes"]

#: The actions the audit trail knows. ``set_traffic``, ``start_challenger``, ``promote`` and
#: ``abort`` are the champion/challenger steps of a deployment; ``retrain`` (a new version trained
#: on live rows) and ``gate`` (the comparison that decided it) those of a retrain loop;
#: ``bandit_shares`` is a move of the shares a bandit router gave its versions (see
#: :func:`record_share_changes`); ``reproduce`` a re-run of a version's captured code on its data
#: snapshot (``details``: whether it matched, the new run); ``attach_profile`` a reference profile
#: given to a version logged without one (``details``: the data hash).
ACTIONS: frozenset[str] = frozenset({
    "register", "set_alias", "delete_alias", "package", "deploy", "update", "rollback", "stop",
    "start_challenger", "set_traffic", "promote", "abort", "waive", "retrain", "gate", "bandit_shares",
    "reproduce", "attach_profile",
})

#: Columns of :func:`audit_log`'s DataFrame, in order.
AUDIT_COLUMNS = ("id", "ts", "user", "action", "model_name", "from_version", "to_version", "target",
                 "deployment", "details")

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class AuditRecord:
    """One row of the audit trail."""

    #: Position in the trail: strictly increasing, never reused.
    id: int
    #: When it happened (UTC).
    ts: pd.Timestamp
    #: Who acted (the workspace user, ``WORKBENCH_USER``).
    user: str
    action: str
    model_name: str | None
    #: The version served or aliased before the action, and after it.
    from_version: str | None
    to_version: str | None
    #: Deployment target (``local``, ``docker``, ...) or, for ``package``, the image tag.
    target: str | None
    #: Deployment name, for deployment actions.
    deployment: str | None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id, "ts": self.ts.isoformat(), "user": self.user, "action": self.action,
            "model_name": self.model_name, "from_version": self.from_version, "to_version": self.to_version,
            "target": self.target, "deployment": self.deployment, "details": dict(self.details),
        }


def _version(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def record(
    action: str,
    *,
    model_name: str | None = None,
    from_version: str | int | None = None,
    to_version: str | int | None = None,
    target: str | None = None,
    deployment: str | None = None,
    details: Mapping[str, Any] | None = None,
    user: str | None = None,
) -> AuditRecord:
    """Append one row to the audit trail and return it.

    ``user`` defaults to the settings' user (``WORKBENCH_USER``); ``details`` is any JSON-ready
    mapping (values that are not JSON are stored as their ``str``). Example, from a deploy::

        record("deploy", model_name="churn", to_version="3", target="docker", deployment="churn")
    """
    with transaction() as conn:
        return append(conn, action, model_name=model_name, from_version=from_version, to_version=to_version,
                      target=target, deployment=deployment, details=details, user=user)


def append(
    conn: sqlite3.Connection,
    action: str,
    *,
    model_name: str | None = None,
    from_version: str | int | None = None,
    to_version: str | int | None = None,
    target: str | None = None,
    deployment: str | None = None,
    details: Mapping[str, Any] | None = None,
    user: str | None = None,
) -> AuditRecord:
    """:func:`record` inside the caller's open transaction, so the audited change and its row are
    written together or not at all."""
    if action not in ACTIONS:
        raise InvalidInputError(f"{action!r} is not an audited action; use one of {sorted(ACTIONS)}")
    if details is not None and not isinstance(details, Mapping):
        raise InvalidInputError("audit details must be a mapping of names to JSON-ready values")
    who = user or get_settings().user
    payload = json.dumps(dict(details or {}), default=str, sort_keys=True)
    ts = now_utc()
    row = (ts, who, action, model_name, _version(from_version), _version(to_version), target, deployment, payload)
    cursor = conn.execute(
        "INSERT INTO audit (ts, user, action, model_name, from_version, to_version, target, deployment, "
        "details) VALUES (?,?,?,?,?,?,?,?,?)",
        row,
    )
    return AuditRecord(
        id=int(cursor.lastrowid or 0), ts=pd.Timestamp(ts), user=who, action=action, model_name=model_name,
        from_version=_version(from_version), to_version=_version(to_version), target=target,
        deployment=deployment, details=MappingProxyType(json.loads(payload)),
    )


@dataclass(frozen=True)
class ShareMove:
    """One move of a bandit router's shares, numbered ``seq`` within the bandit's ``run``."""

    run: str
    seq: int
    #: When the router saw the shares move (UTC, ISO 8601).
    ts: str
    shares: Mapping[str, float]
    rewards: Mapping[str, int]


def record_share_changes(moves: list[ShareMove], *, deployment: str, model_name: str | None,
                         from_version: str | None, to_version: str | None, target: str | None,
                         strategy: str) -> list[AuditRecord]:
    """Append one ``bandit_shares`` row per move not yet in the trail, oldest first, and return them.

    Whoever reads a router may call this with every move it still keeps: the newest row of the
    deployment says which run and seq were written last, and both the look-up and the writes are
    one write transaction, so two readers at once never write a move twice. A move the router no
    longer kept is counted in the next row's ``missed``."""
    if not moves:
        return []
    written: list[AuditRecord] = []
    with transaction() as conn:
        row = conn.execute(
            "SELECT details FROM audit WHERE model_name IS ? AND deployment = ? AND action = 'bandit_shares' "
            "ORDER BY id DESC LIMIT 1", (model_name, deployment)).fetchone()
        last = json.loads(row["details"]) if row else {}
        seen = int(last.get("seq", 0)) if last.get("run") == moves[0].run else 0
        for move in sorted(moves, key=lambda m: m.seq):
            if move.seq <= seen:
                continue
            details: dict[str, Any] = {"run": move.run, "seq": move.seq, "moved_at": move.ts, "strategy": strategy,
                                       "shares": {k: round(v, 4) for k, v in move.shares.items()},
                                       "rewards": dict(move.rewards)}
            if move.seq > seen + 1:
                details["missed"] = move.seq - seen - 1
            written.append(append(conn, "bandit_shares", model_name=model_name, from_version=from_version,
                                  to_version=to_version, target=target, deployment=deployment, details=details))
            seen = move.seq
    return written


def parse_since(since: str | _dt.datetime | _dt.date | _dt.timedelta | pd.Timestamp) -> pd.Timestamp:
    """A UTC timestamp from ``since``: a time, a date, a timedelta back from now, an ISO string,
    or a relative string such as ``"30m"``, ``"12h"``, ``"7d"`` or ``"2w"``. Naive times are UTC."""
    now = pd.Timestamp.now(tz="UTC")
    if isinstance(since, _dt.timedelta):
        return now - pd.Timedelta(since)
    if isinstance(since, str):
        match = _RELATIVE.match(since)
        if match:
            amount, unit = float(match.group(1)), match.group(2).lower()
            return now - pd.Timedelta(**{_UNITS[unit]: amount})
        try:
            stamp = pd.Timestamp(since)
        except ValueError as exc:
            raise InvalidInputError(
                f"since={since!r} is neither a time (2026-11-02, 2026-11-02T09:30) nor a span back from now "
                "(30m, 12h, 7d, 2w)"
            ) from exc
    else:
        stamp = pd.Timestamp(since)
    if pd.isna(stamp):
        raise InvalidInputError(f"since={since!r} is not a time")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def audit_log(
    model: str | None = None,
    action: str | None = None,
    since: str | _dt.datetime | _dt.date | _dt.timedelta | pd.Timestamp | None = None,
    *,
    deployment: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The audit trail as a DataFrame, oldest first (columns :data:`AUDIT_COLUMNS`).

    Filter by registered model name, action, deployment name, and time (``since``: see
    :func:`parse_since`); ``limit`` keeps the newest rows. The frame is a copy: changing it changes
    nothing stored.
    """
    if action is not None and action not in ACTIONS:
        raise InvalidInputError(f"{action!r} is not an audited action; use one of {sorted(ACTIONS)}")
    if limit is not None and limit < 1:
        raise InvalidInputError("limit must be at least 1")
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("model_name", model), ("action", action), ("deployment", deployment)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(parse_since(since).isoformat(timespec="microseconds"))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = f"SELECT * FROM audit {where} ORDER BY id DESC"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    with connect() as conn:
        rows = conn.execute(query, params).fetchall()
    # object columns keep None for "not applicable" (pandas' string dtype would turn it into NaN)
    frame = pd.DataFrame([dict(r) for r in reversed(rows)], columns=list(AUDIT_COLUMNS), dtype=object)
    frame["id"] = frame["id"].astype("int64")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    frame["details"] = [json.loads(d) for d in frame["details"]]
    return frame
