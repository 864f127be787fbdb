"""Fixtures of the widget tests: a model with two versions, and a live local deployment.

Helpers that drive the widgets as a user would are in ``driving.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb


@pytest.fixture(scope="session")
def two_versions(numeric_data) -> tuple[wb.ModelVersion, wb.ModelVersion]:
    """A model with two registered versions (a forest, then a logistic regression), @champion on v1."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = numeric_data
    name = f"widgets-{uuid.uuid4().hex[:6]}"
    versions = []
    for model in (RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), LogisticRegression(max_iter=300)):
        with wb.start_run(experiment="widget-tests", run_name=type(model).__name__):
            model.fit(X, y)
            mlflow.log_metric("accuracy", model.score(X, y))
            versions.append(wb.register(wb.log_model(model, training_data=X, training_labels=y), name))
    wb.set_alias(name, "champion", versions[0].version)
    return versions[0], versions[1]


@pytest.fixture(scope="session")
def live_deployment(registered_model) -> Iterator[wb.Deployment]:
    """A local deployment of fixture-rf shared by the drift and explanation tests (stopped at the end)."""
    name = f"widgets-live-{uuid.uuid4().hex[:5]}"
    deployment = wb.deploy(registered_model.uri, target="local", name=name)
    yield deployment
    wb.stop(name)
