"""Fixtures of the widget tests: a model with two versions, and a live local deployment.

Helpers that drive the widgets as a user would are in ``driving.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb


@pytest.fixture(scope="session")
def two_versions(register_versions) -> tuple[wb.ModelVersion, wb.ModelVersion]:
    """A model with two registered versions (a forest, then a logistic regression), @champion on v1."""
    from sklearn.ensemble import RandomForestClassifier

    first, second = register_versions(
        [RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), LogisticRegression(max_iter=300)],
        "widget-tests", "widgets")
    wb.set_alias(first.name, "champion", first.version)
    return first, second


@pytest.fixture(scope="session")
def live_deployment(registered_model) -> Iterator[wb.Deployment]:
    """A local deployment of fixture-rf shared by the explanation and review tests (stopped at the end)."""
    name = f"widgets-live-{uuid.uuid4().hex[:5]}"
    deployment = wb.deploy(registered_model.uri, target="local", name=name)
    yield deployment
    wb.stop(name)
