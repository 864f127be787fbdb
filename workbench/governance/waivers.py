"""Waivers: a named person accepts one failing check for one model version, with a reason.

A waiver is scoped to exactly one model version (an alias is resolved to the version it points to
now, so moving ``@champion`` to a new version does not carry the waiver along) and one check. It is
stored in the workspace database (append-only, like the audit trail) and recorded in the audit trail.

Example::

    import workbench as wb
    wb.waive("models:/credit/3", "proxies", by="Dana Reyes (Model Risk)",
             reason="postcode kept: validated as a risk driver, see MRM-2026-114")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from workbench.config import get_settings
from workbench.errors import InvalidInputError
from workbench.audit import append
from workbench.audit.database import connect, now_utc, transaction
from workbench.governance.policy import CHECK_NAMES

__all__ = ["ModelRef", "Waiver", "list_waivers", "model_ref", "waive", "waivers_for"]


@dataclass(frozen=True)
class ModelRef:
    """The exact model a governance action is about."""

    #: The URI that loads exactly this model (``models:/name/3`` for a registered version).
    uri: str
    name: str
    #: Registered version, ``None`` for a model that is not registered.
    version: str | None

    @property
    def key(self) -> str:
        """What waivers are scoped to: ``name/version``, or the URI of an unregistered model."""
        return f"{self.name}/{self.version}" if self.version is not None else self.uri


def model_ref(model_uri: str) -> ModelRef:
    """Resolve ``model_uri`` (an alias to its version now) into a :class:`ModelRef`."""
    from workbench.registry import check_model_uri, registered_version

    if not isinstance(model_uri, str) or not model_uri.strip():
        raise InvalidInputError("give a model URI such as models:/<name>/<version> or models:/<name>@<alias>")
    check_model_uri(model_uri)
    version = registered_version(model_uri)
    if version is not None:
        return ModelRef(uri=version.uri, name=version.name, version=version.version)
    return ModelRef(uri=model_uri, name=PurePosixPath(model_uri.rstrip("/")).name or model_uri, version=None)


@dataclass(frozen=True)
class Waiver:
    """A recorded acceptance of one failing check for one model version."""

    id: int
    model_name: str
    model_version: str | None
    check: str
    #: The person who granted it (named by the caller, e.g. a model risk officer).
    by: str
    reason: str
    #: When it was recorded (UTC) and by which workspace user.
    ts: pd.Timestamp
    recorded_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "model_name": self.model_name, "model_version": self.model_version,
                "check": self.check, "by": self.by, "reason": self.reason, "ts": self.ts.isoformat(),
                "recorded_by": self.recorded_by}

    def describe(self) -> str:
        """One line for reports: who waived it, when, and why."""
        return f"waived by {self.by} on {self.ts:%Y-%m-%d}: {self.reason}"


def waive(model_uri: str, check: str, *, by: str, reason: str) -> Waiver:
    """Record that ``by`` accepts the failing ``check`` for the version ``model_uri`` names, because
    ``reason``; it is logged to the audit trail. :func:`workbench.governance.enforce` then lets that
    check pass, showing the waiver. The same waiver given again is returned as it was recorded."""
    if check not in CHECK_NAMES:
        raise InvalidInputError(f"{check!r} is not a policy check; checks: {', '.join(CHECK_NAMES)}")
    if not isinstance(by, str) or not by.strip():
        raise InvalidInputError("a waiver needs the name of the person granting it: by='Full Name (role)'")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInputError("a waiver needs a reason a reviewer can check later: reason='...'")
    ref = model_ref(model_uri)
    same = waivers_for(ref).get(check)
    if same is not None and (same.by, same.reason) == (by.strip(), reason.strip()):
        return same  # a cell run again records nothing twice
    ts = now_utc()
    user = get_settings().user
    details = {"check": check, "by": by.strip(), "reason": reason.strip(), "model_uri": ref.uri}
    with transaction() as conn:  # the waiver and its audit row are written together or not at all
        cursor = conn.execute(
            "INSERT INTO waivers (ts, model_key, model_name, model_version, check_name, granted_by, reason, "
            "recorded_by) VALUES (?,?,?,?,?,?,?,?)",
            (ts, ref.key, ref.name, ref.version, check, by.strip(), reason.strip(), user),
        )
        waiver_id = int(cursor.lastrowid or 0)
        append(conn, "waive", model_name=ref.name, to_version=ref.version,
               details={**details, "waiver_id": waiver_id}, user=user)
    return Waiver(waiver_id, ref.name, ref.version, check, by.strip(), reason.strip(), pd.Timestamp(ts), user)


def _waiver(row: Any) -> Waiver:
    return Waiver(int(row["id"]), row["model_name"], row["model_version"], row["check_name"], row["granted_by"],
                  row["reason"], pd.Timestamp(row["ts"]), row["recorded_by"])


def waivers_for(ref: ModelRef) -> dict[str, Waiver]:
    """check name -> the latest waiver of that check for exactly this model version."""
    with connect() as conn:
        rows = conn.execute("SELECT * FROM waivers WHERE model_key = ? ORDER BY id", (ref.key,)).fetchall()
    return {row["check_name"]: _waiver(row) for row in rows}


def list_waivers(model_uri: str | None = None) -> list[Waiver]:
    """Every waiver recorded in the workspace, or those of the version ``model_uri`` names; oldest first."""
    with connect() as conn:
        if model_uri is None:
            rows = conn.execute("SELECT * FROM waivers ORDER BY id").fetchall()
        else:
            rows = conn.execute("SELECT * FROM waivers WHERE model_key = ? ORDER BY id",
                                (model_ref(model_uri).key,)).fetchall()
    return [_waiver(r) for r in rows]
