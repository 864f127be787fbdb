"""Deployments at a glance, on real local deployments: health, policy verdict, drift state, where deployed."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb


@pytest.fixture()
def running(registered_model):
    """A local deployment of the shared forest (clean: every check passes), stopped after the test."""
    name = f"glance-{uuid.uuid4().hex[:6]}"
    deployment = wb.deploy(registered_model.uri, name=name)
    yield deployment
    wb.stop(name)


def test_a_clean_deployment_is_healthy_passes_and_shows_drift_when_its_inputs_move(running, numeric_data) -> None:
    X, _ = numeric_data
    glances = wb.Glances()
    (first,) = glances.of([running])
    assert (first.name, first.health, first.policy, first.alerts) == (running.name, "healthy", "passes", "no data")
    assert first.policy_detail.endswith("passes (5 passed)") and first.alerts_detail == "no predictions yet"

    running.predict(X.iloc[:150])
    (calm,) = glances.of([wb.get_deployment(running.name)])
    assert calm.alerts == "ok" and calm.alerts_detail == "no drift over the last 150 predictions"

    for i in range(3):
        running.predict(X.iloc[150 + 100 * i:250 + 100 * i].assign(x2=lambda d: d["x2"] + 4))
    (moved,) = glances.of([wb.get_deployment(running.name)])
    # x2 moved, and the forest grows less sure of its answers: both show, with no label needed
    assert moved.alerts == "drift and performance", moved
    assert moved.alerts_detail.startswith("1 feature(s) drifted: x2; estimated accuracy 0.")
    assert moved.alerts_detail.endswith("over the last 450 predictions")
    assert moved.to_dict()["health"] == "healthy"
    # The last day in a sentence, from the window summaries beside the log (a new Glances: reads it now).
    (later,) = wb.Glances().of([wb.get_deployment(running.name)])
    assert later.history.startswith("last 24 h: 450 rows in 1 period, drift in 1 (first "), later.history
    assert f"deploy v{running.model_version}" in later.history and later.to_dict()["history"] == later.history


def test_where_deployed_names_each_deployment_of_a_version(running, registered_model) -> None:
    where = wb.where_deployed(registered_model.name)
    assert f"{running.name} (local, serving)" in where[registered_model.version]
    assert wb.where_deployed(f"never-deployed-{uuid.uuid4().hex[:4]}") == {}


def test_the_policy_badge_advises_by_default_and_says_blocked_under_an_enforcing_policy(numeric_data) -> None:
    X, y = numeric_data
    data = X.assign(sex=np.where(X["x0"] > 0, "female", "male"))
    coded = data.assign(sex=(data["sex"] == "female").astype(float))
    with wb.start_run(experiment="glances"):
        logged = wb.log_model(LogisticRegression().fit(coded, y), training_data=coded, training_labels=y)
    version = wb.register(logged, f"glance-sex-{uuid.uuid4().hex[:6]}")
    with pytest.warns(wb.PolicyAdvisory):
        deployment = wb.deploy(version.uri, name=f"glance-sex-{uuid.uuid4().hex[:6]}")
    try:
        (advised,) = wb.Glances().of([deployment])
        assert advised.policy == "advisory" and "the policy only advises" in advised.policy_detail
        path = wb.init_policy()
        try:
            (blocked,) = wb.Glances().of([deployment])
        finally:
            path.unlink()
        assert blocked.policy == "blocked" and "is blocked" in blocked.policy_detail
    finally:
        wb.stop(deployment.name)


def test_a_classifier_whose_answers_grow_unsure_shows_accuracy_down(numeric_data) -> None:
    X, y = numeric_data
    with wb.start_run(experiment="glances"):
        model = LogisticRegression().fit(X, y)
        logged = wb.log_model(model, training_data=X, training_labels=y)
    version = wb.register(logged, f"glance-perf-{uuid.uuid4().hex[:6]}")
    deployment = wb.deploy(version.uri, name=f"glance-perf-{uuid.uuid4().hex[:6]}")
    try:
        glances = wb.Glances()
        deployment.predict(X.iloc[:200])
        (calm,) = glances.of([wb.get_deployment(deployment.name)])
        assert calm.alerts == "ok", calm
        # Inputs squeezed towards the decision boundary: every answer near 50/50, no labels needed to see it.
        deployment.predict(X.iloc[200:600] * 0.02)
        (unsure,) = glances.of([wb.get_deployment(deployment.name)])
        assert unsure.alerts == "drift and performance", unsure  # squeezed inputs drift too
        assert "estimated accuracy 0." in unsure.alerts_detail
        assert unsure.alerts_detail.endswith("over the last 500 predictions")
    finally:
        wb.stop(deployment.name)


def test_when_the_truth_arrives_the_badge_says_what_was_measured(running, numeric_data) -> None:
    """Unshifted inputs (no drift), but the truth that comes back says the answers are wrong: the
    glance shows accuracy down, measured on the labelled rows, not estimated."""
    X, _ = numeric_data
    glances = wb.Glances()
    answers = running.predict(X.iloc[:200], request_id="glance-batch")
    (calm,) = glances.of([wb.get_deployment(running.name)])
    assert calm.alerts == "ok", calm
    running.log_feedback("glance-batch", 1 - np.asarray(answers))  # the world now says the opposite
    (told,) = glances.of([wb.get_deployment(running.name)])
    assert told.alerts == "performance", told
    assert told.alerts_detail.startswith("measured accuracy 0.000 on 200 labelled rows (reference ")


def test_promoting_a_deployment_made_from_an_alias_moves_that_alias_and_rolling_back_moves_it_back(
        register_versions, numeric_data) -> None:
    """Notebook 07's story: after the loop promotes v2, ``models:/NAME@champion`` loads v2, not v1;
    after a rollback, v1 again, and the deployment still follows the alias."""
    from sklearn.tree import DecisionTreeClassifier

    first, second = register_versions([LogisticRegression(max_iter=300), DecisionTreeClassifier(max_depth=3)],
                                      "promotion", "promoted")
    wb.set_alias(first.name, "champion", first.version)
    name = f"promo-{uuid.uuid4().hex[:5]}"
    wb.deploy(wb.format_model_uri(first.name, alias="champion"), name=name)
    try:
        wb.start_challenger(name, second.uri, shadow=True)
        promoted = wb.promote(name)
        assert promoted.model_version == second.version
        assert wb.get_version(first.name, alias="champion").version == second.version
        X, _ = numeric_data
        assert (wb.load_model(f"models:/{first.name}@champion").predict(X.head(20))
                == np.asarray(promoted.predict(X.head(20)))).all()
        moved = wb.audit_log(first.name, action="set_alias")
        assert list(moved["to_version"])[-1] == second.version
        assert wb.where_deployed(first.name) == {second.version: (f"{name} (local, serving)",)}

        rolled = wb.rollback(name)
        assert (rolled.model_version, rolled.alias) == (first.version, "champion")
        assert wb.get_version(first.name, alias="champion").version == first.version
        assert (wb.load_model(f"models:/{first.name}@champion").predict(X.head(20))
                == np.asarray(rolled.predict(X.head(20)))).all()
        assert list(wb.audit_log(first.name, action="set_alias")["to_version"])[-2:] == [second.version,
                                                                                        first.version]
    finally:
        wb.stop(name)


def test_promoting_a_deployment_made_from_a_version_leaves_the_aliases_alone(register_versions) -> None:
    first, second = register_versions([LogisticRegression(max_iter=300), LogisticRegression(C=0.1, max_iter=300)],
                                      "promotion", "pinned")
    wb.set_alias(first.name, "champion", first.version)
    name = f"pin-{uuid.uuid4().hex[:5]}"
    wb.deploy(first.uri, name=name)
    try:
        wb.start_challenger(name, second.uri, shadow=True)
        assert wb.promote(name).model_version == second.version
        assert wb.get_version(first.name, alias="champion").version == first.version
        assert wb.rollback(name).model_version == first.version
        assert wb.get_version(first.name, alias="champion").version == first.version
    finally:
        wb.stop(name)
