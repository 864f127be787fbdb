"""ModelReview (the page for one model) and the review app's pages built from URL arguments."""

from __future__ import annotations

import panel as pn
import pytest

from workbench.errors import ModelNotFoundError
from workbench.widgets import (
    Deployments,
    DriftMonitor,
    ExperimentBrowser,
    Explanations,
    ModelRegistry,
    ModelReview,
    PackageBuilder,
    apps,
    governance_available,
    tabs,
)

from driving import control, errors_shown, shown_text


def test_the_review_opens_on_the_champion_with_lineage_metrics_and_profile(two_versions) -> None:
    first, _ = two_versions
    review = ModelReview(model_name=first.name)
    assert review.wait(120)
    assert review.version == first.version  # @champion, not the newest
    shown = shown_text(review)
    assert f"v{first.version}" in shown and "@champion" in shown and first.run_id in shown
    metrics = control(review, pn.widgets.Tabulator, "run metrics").value
    assert "accuracy" in set(metrics["key"])
    profile = control(review, pn.widgets.Tabulator, "data profile").value
    assert {"x0", "x5", "label"} <= set(profile["feature"])
    assert errors_shown(review) == []


def test_sections_are_built_when_first_shown_and_follow_the_version(two_versions) -> None:
    first, second = two_versions
    review = ModelReview(model_name=first.name, version=first.version)
    expected = ["Overview", "Runs", "Versions", "Compare versions", "Package", "Deployments", "Drift", "Explanations"]
    expected += ["Fairness", "Model card"] if governance_available() else []
    assert review.param.section.objects == expected == [t.name for t in tabs.tabs_of("model", review._context())]
    kinds = {"Runs": ExperimentBrowser, "Versions": ModelRegistry, "Package": PackageBuilder,
             "Deployments": Deployments, "Drift": DriftMonitor, "Explanations": Explanations}
    for section, kind in kinds.items():
        review.section = section
        assert isinstance(review.component(section), kind)
    review.wait(120)
    assert review.component("Runs").selected_runs == [first.run_id]  # the run the version came from
    review.version = second.version
    review.wait(120)
    assert review.component("Package").model_uri == second.uri
    assert review.component("Explanations").model_uri == second.uri
    assert review.component("Deployments").model_uri == second.uri


def test_opening_another_version_from_the_versions_tab_switches_the_review(two_versions) -> None:
    first, second = two_versions
    review = ModelReview(model_name=first.name, version=first.version)
    registry = review.component("Versions")
    registry.version = second.version
    registry.open_review()
    assert review.version == second.version


def test_a_review_of_an_unknown_model_names_the_known_ones(two_versions) -> None:
    with pytest.raises(ModelNotFoundError, match="registered models:"):
        ModelReview(model_name="no-such-model-xyz")


def test_pages_follow_the_url_arguments(two_versions, live_deployment) -> None:
    first, _ = two_versions
    page = apps.page({"model": [first.name.encode()], "section": [b"Versions"]})
    reviews = [t for t in page.select(pn.Tabs) if "Overview" in t._names]
    assert len(reviews) == 1 and reviews[0].active == reviews[0]._names.index("Versions")

    home = apps.page({})
    assert [t for t in home.select(pn.Tabs) if t._names == ["Models", "Experiments", "Deployments", "Drift"]]

    deployment = apps.page({"deployment": [live_deployment.name.encode()]})
    assert [t for t in deployment.select(pn.Tabs) if t._names == ["Drift", "Explanations", "Status"]]

    missing = apps.page({"model": ["no-such-model-xyz"]})
    alerts = [a.object for a in missing.select(pn.pane.Alert)]
    assert any("no registered model named 'no-such-model-xyz'" in a for a in alerts)


def test_query_arguments_are_decoded() -> None:
    assert apps.query_args({"model": [b"churn%20v2"], "version": "3", "x": []}) == {
        "model": "churn v2", "version": "3", "x": ""}
