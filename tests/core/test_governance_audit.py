"""The audit trail: one row per recorded action, read back as written, append-only, safe across processes."""

from __future__ import annotations

import datetime as _dt
import sqlite3
import subprocess
import sys
import uuid

import pandas as pd
import pytest

import workbench as wb
import workbench.audit as audit_module
from workbench.errors import InvalidInputError
from workbench.audit import ACTIONS, record
from workbench.audit import AUDIT_COLUMNS, parse_since


def _model() -> str:
    return f"audited-{uuid.uuid4().hex[:6]}"


def test_each_record_call_leaves_exactly_one_row_read_back_as_written(session_workspace) -> None:
    name = _model()
    before = pd.Timestamp.now(tz="UTC")
    steps = [
        dict(action="register", to_version=1, details={"run_id": "abc"}),
        dict(action="set_alias", to_version="1", details={"alias": "champion"}),
        dict(action="package", to_version="1", target="workbench/credit:1", details={"image_id": "sha256:1"}),
        dict(action="deploy", to_version="1", target="docker", deployment="credit"),
        dict(action="update", from_version="1", to_version="2", target="docker", deployment="credit"),
        dict(action="rollback", from_version="2", to_version="1", target="docker", deployment="credit"),
        dict(action="stop", from_version="1", target="docker", deployment="credit"),
    ]
    returned = []
    for i, step in enumerate(steps):
        returned.append(record(model_name=name, **step))  # type: ignore[arg-type]
        assert len(wb.audit_log(model=name)) == i + 1
    log = wb.audit_log(model=name)
    assert list(log.columns) == list(AUDIT_COLUMNS)
    assert log["action"].tolist() == ["register", "set_alias", "package", "deploy", "update", "rollback", "stop"]
    assert log["id"].tolist() == [r.id for r in returned] and log["id"].is_monotonic_increasing
    assert log["from_version"].tolist() == [None, None, None, None, "1", "2", "1"]
    assert log["to_version"].tolist() == ["1", "1", "1", "1", "2", "1", None]
    assert log["deployment"].tolist() == [None, None, None, "credit", "credit", "credit", "credit"]
    assert log["target"].iloc[2] == "workbench/credit:1"
    assert log["details"].iloc[0] == {"run_id": "abc"} and log["details"].iloc[6] == {}
    assert (log["user"] == wb.get_settings().user).all()
    assert str(log["ts"].dt.tz) == "UTC" and (log["ts"] >= before.floor("us")).all()
    assert returned[4].to_dict()["from_version"] == "1" and returned[4].ts == log["ts"].iloc[4]


def test_the_log_filters_by_model_action_deployment_and_time(session_workspace) -> None:
    name, other = _model(), _model()
    record("register", model_name=name, to_version="1")
    record("register", model_name=other, to_version="1")
    record("deploy", model_name=name, to_version="1", target="local", deployment=f"{name}-svc")
    assert wb.audit_log(model=name)["action"].tolist() == ["register", "deploy"]
    assert wb.audit_log(model=name, action="deploy")["deployment"].tolist() == [f"{name}-svc"]
    assert wb.audit_log(deployment=f"{name}-svc")["model_name"].tolist() == [name]
    assert len(wb.audit_log(model=name, since="1h")) == 2
    assert len(wb.audit_log(model=name, since=_dt.datetime.now(_dt.UTC) + _dt.timedelta(minutes=1))) == 0
    assert wb.audit_log(model=name, limit=1)["action"].tolist() == ["deploy"]  # the newest
    assert wb.audit_log(model="never-registered").empty


def test_since_accepts_times_dates_and_spans_back() -> None:
    now = pd.Timestamp.now(tz="UTC")
    assert abs((now - parse_since("2h")) - pd.Timedelta(hours=2)) < pd.Timedelta(seconds=5)
    assert abs((now - parse_since(_dt.timedelta(days=7))) - pd.Timedelta(days=7)) < pd.Timedelta(seconds=5)
    assert parse_since("2026-11-02") == pd.Timestamp("2026-11-02", tz="UTC")
    assert parse_since("2026-11-02T10:00+01:00") == pd.Timestamp("2026-11-02T09:00", tz="UTC")
    with pytest.raises(InvalidInputError, match="since='yesterday' is neither a time"):
        parse_since("yesterday")


def test_unknown_actions_and_bad_details_are_refused(session_workspace) -> None:
    with pytest.raises(InvalidInputError, match="'deploy_all' is not an audited action"):
        record("deploy_all", model_name="x")
    with pytest.raises(InvalidInputError, match="must be a mapping"):
        record("deploy", details=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="'launch' is not an audited action"):
        wb.audit_log(action="launch")
    assert {"register", "set_alias", "package", "deploy", "update", "rollback", "stop", "waive"} <= ACTIONS


def test_rows_cannot_be_changed_or_removed(session_workspace) -> None:
    name = _model()
    record("register", model_name=name, to_version="1", details={"note": "original"})
    # The API has no way to change the trail: only record (append) and audit_log (read) exist.
    public = {n for n in dir(audit_module) if not n.startswith("_") and callable(getattr(audit_module, n))}
    assert not {n for n in public if any(w in n for w in ("update", "delete", "remove", "edit", "clear"))}
    # What audit_log returns is a copy: changing it changes nothing stored.
    log = wb.audit_log(model=name)
    log.loc[0, "action"] = "stop"
    log.loc[0, "details"]["note"] = "rewritten"
    again = wb.audit_log(model=name)
    assert again["action"].tolist() == ["register"] and again["details"].iloc[0] == {"note": "original"}
    # And the database itself refuses changes, even by hand.
    with sqlite3.connect(wb.get_settings().workspace_db) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="the audit log is append-only"):
            conn.execute("UPDATE audit SET action = 'stop' WHERE model_name = ?", (name,))
        with pytest.raises(sqlite3.DatabaseError, match="the audit log is append-only"):
            conn.execute("DELETE FROM audit WHERE model_name = ?", (name,))
    assert wb.audit_log(model=name)["action"].tolist() == ["register"]


def test_the_trail_lives_beside_the_deployment_records_in_its_own_table(session_workspace) -> None:
    from workbench.deployment.store import DeploymentStore

    record("register", model_name=_model(), to_version="1")
    DeploymentStore(session_workspace.workspace_db)  # the deployment tables in the same file
    with sqlite3.connect(session_workspace.workspace_db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"audit", "waivers", "deployments", "revisions"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_processes_recording_at_once_each_leave_exactly_their_rows(session_workspace) -> None:
    name = _model()
    script = (
        "import sys, workbench.audit as g\n"
        "for i in range(40):\n"
        "    g.record('set_alias', model_name=sys.argv[1], to_version=str(i), details={'writer': sys.argv[2]})\n"
    )
    env = {**session_workspace.as_env(), "PATH": ""}
    writers = [subprocess.Popen([sys.executable, "-c", script, name, str(w)], env=env) for w in range(3)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    log = wb.audit_log(model=name)
    assert len(log) == 120 and log["id"].is_unique
    for w in range(3):
        mine = log[log["details"].map(lambda d, w=w: d["writer"] == str(w))]
        assert mine["to_version"].tolist() == [str(i) for i in range(40)]  # each writer's rows in its order
