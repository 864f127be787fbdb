"""Every action of the end-to-end flow leaves exactly one audit record, with the right versions.

register, set_alias, package, deploy, update, rollback and stop each call
``workbench.audit.record`` (wired into workbench.registry, workbench.packaging and
workbench.deployment); this test drives the public API and reads the trail back after each step.
"""

from __future__ import annotations

import uuid
from typing import Any

import docker
import mlflow
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

import workbench as wb


def _only_new_record(name: str, seen: int, action: str, **expected: Any) -> pd.Series:
    """The single row the last action added to ``name``'s trail, checked against ``expected``."""
    log = wb.audit_log(model=name)
    new = log.iloc[seen:]
    assert new["action"].tolist() == [action], (
        f"{action} should leave exactly one audit record, found {new['action'].tolist()} "
        f"(is workbench.audit.record called from {action}?)"
    )
    row = new.iloc[0]
    for column, value in expected.items():
        assert row[column] == value, f"{action}: {column} is {row[column]!r}, expected {value!r}"
    assert row["user"] == wb.get_settings().user
    return row


@pytest.mark.docker
def test_each_action_of_the_flow_leaves_exactly_one_audit_record(numeric_data, docker_engine) -> None:
    X, y = numeric_data
    name = f"audit-flow-{uuid.uuid4().hex[:6]}"
    seen = 0

    versions = []
    for model in (RandomForestClassifier(n_estimators=10, random_state=0), GradientBoostingClassifier(random_state=0)):
        with wb.start_run(experiment="e2e-audit"):
            model.fit(X, y)
            mlflow.log_metric("accuracy", model.score(X, y))
            logged = wb.log_model(model, training_data=X, training_labels=y)
        versions.append(wb.register(logged, name))
        _only_new_record(name, seen, "register", to_version=versions[-1].version)
        seen += 1
    v1, v2 = versions

    wb.set_alias(name, "champion", v1.version)
    row = _only_new_record(name, seen, "set_alias", from_version=None, to_version=v1.version)
    assert row["details"]["alias"] == "champion"
    seen += 1
    wb.set_alias(name, "champion", v2.version)
    _only_new_record(name, seen, "set_alias", from_version=v1.version, to_version=v2.version)
    seen += 1
    wb.set_alias(name, "champion", v1.version)
    _only_new_record(name, seen, "set_alias", from_version=v2.version, to_version=v1.version)
    seen += 1

    image = wb.package(v1.uri, tag=f"workbench-test/{name}:{v1.version}")
    docker.from_env().images.remove(image.tag, force=True)  # the local deploy below serves from the store
    _only_new_record(name, seen, "package", to_version=v1.version, target=image.tag)
    seen += 1

    deployment = f"flow-{uuid.uuid4().hex[:6]}"
    wb.deploy(f"models:/{name}@champion", target="local", name=deployment)
    try:
        _only_new_record(name, seen, "deploy", to_version=v1.version, target="local", deployment=deployment)
        seen += 1
        wb.update(deployment, v2.uri)
        _only_new_record(name, seen, "update", from_version=v1.version, to_version=v2.version, deployment=deployment)
        seen += 1
        wb.rollback(deployment)
        _only_new_record(name, seen, "rollback", from_version=v2.version, to_version=v1.version,
                         deployment=deployment)
        seen += 1
    finally:
        wb.stop(deployment)
    _only_new_record(name, seen, "stop", from_version=v1.version, deployment=deployment)
    seen += 1

    log = wb.audit_log(model=name)
    assert log["action"].tolist() == ["register", "register", "set_alias", "set_alias", "set_alias", "package",
                                      "deploy", "update", "rollback", "stop"]
    assert log["ts"].is_monotonic_increasing and log["id"].is_monotonic_increasing
    assert wb.audit_log(deployment=deployment)["action"].tolist() == ["deploy", "update", "rollback", "stop"]
