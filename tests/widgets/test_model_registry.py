"""ModelRegistry: models, versions, lineage; set and remove an alias; open a version's review."""

from __future__ import annotations

import panel as pn

import workbench as wb
from workbench.widgets import ModelRegistry, ModelReview

from driving import control, errors_shown, press, shown_text


def test_it_lists_models_and_the_versions_with_their_aliases(two_versions) -> None:
    first, second = two_versions
    registry = ModelRegistry(model_name=first.name)
    models = control(registry, pn.widgets.Tabulator, "models").value
    row = models[models["name"] == first.name].iloc[0]
    assert row["latest"] == second.version and row["aliases"] == f"@champion={first.version}"
    versions = control(registry, pn.widgets.Tabulator, "versions").value
    assert list(versions["version"]) == [second.version, first.version]  # newest first
    assert versions.set_index("version").loc[first.version, "aliases"] == "@champion"
    # The newest version is picked; its lineage names the run it came from.
    assert registry.version == second.version
    assert second.run_id in shown_text(registry)


def test_picking_a_version_row_shows_its_lineage(two_versions) -> None:
    first, _ = two_versions
    registry = ModelRegistry(model_name=first.name)
    table = control(registry, pn.widgets.Tabulator, "versions")
    table.selection = [1]
    assert registry.version == first.version
    assert first.run_id in shown_text(registry)
    metrics = control(registry, pn.widgets.Tabulator, "lineage metrics").value
    assert "accuracy" in set(metrics["key"])


def test_set_alias_moves_the_alias_in_the_registry(two_versions) -> None:
    first, second = two_versions
    registry = ModelRegistry(model_name=first.name, version=second.version)
    control(registry, pn.widgets.TextInput, "Alias").value = "challenger"
    press(registry, "Set alias")
    assert registry.wait(30)
    assert wb.resolve(f"models:/{first.name}@challenger").version == second.version
    assert "@challenger now points at" in shown_text(registry)
    versions = control(registry, pn.widgets.Tabulator, "versions").value
    assert versions.set_index("version").loc[second.version, "aliases"] == "@challenger"

    press(registry, "Remove alias")
    registry.wait(30)
    assert "challenger" not in wb.get_version(first.name, second.version).aliases


def test_a_bad_alias_is_refused_with_advice(two_versions) -> None:
    first, _ = two_versions
    registry = ModelRegistry(model_name=first.name)
    registry.alias = "latest"
    registry.set_alias()
    registry.wait(30)
    assert any("reserved by MLflow" in e for e in errors_shown(registry))


def test_open_review_shows_the_review_below_in_a_notebook(two_versions) -> None:
    first, _ = two_versions
    registry = ModelRegistry(model_name=first.name, version=first.version)
    assert _review_tabs(registry) == []
    press(registry, "Open review")
    assert registry.opened == f"models:/{first.name}/{first.version}"
    (tabs,) = _review_tabs(registry)
    assert "Drift" in tabs._names
    review = registry.open_review()
    assert isinstance(review, ModelReview) and review.version == first.version


def test_without_navigation_it_only_reports_what_was_opened(two_versions) -> None:
    first, second = two_versions
    registry = ModelRegistry(model_name=first.name, version=second.version, navigate=False)
    opened = []
    registry.param.watch(lambda event: opened.append(event.new), "opened")
    press(registry, "Open review")
    assert opened == [f"models:/{first.name}/{second.version}"]
    assert _review_tabs(registry) == []


def _review_tabs(registry: ModelRegistry) -> list[pn.Tabs]:
    return [t for t in registry.__panel__().select(pn.Tabs) if "Overview" in t._names]
