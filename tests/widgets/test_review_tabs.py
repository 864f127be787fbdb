"""Review tabs register themselves (workbench.widgets.tabs): one call adds a tab to ModelReview, to the
review app's pages and, with a ``lab_page``, to JupyterLab's pages; nothing else is edited."""

from __future__ import annotations

from collections.abc import Iterator

import panel as pn
import pytest

from workbench.errors import InvalidInputError
from workbench.widgets import ModelReview, apps, tabs

from driving import shown_text


@pytest.fixture
def throwaway() -> Iterator[list[tabs.TabContext]]:
    """A tab on the model page between Versions and Compare versions; yields the contexts it was
    built and followed with."""
    seen: list[tabs.TabContext] = []

    def build(ctx: tabs.TabContext) -> pn.pane.Markdown:
        seen.append(ctx)
        return pn.pane.Markdown(f"throwaway tab of {ctx.model_uri}")

    def follow(pane: pn.pane.Markdown, ctx: tabs.TabContext) -> None:
        seen.append(ctx)
        pane.object = f"throwaway tab of {ctx.model_uri}"

    tabs.register(tabs.ReviewTab("Throwaway", build, order=25, follow=follow))
    yield seen
    tabs.unregister("model", "Throwaway")


class _Page:
    """A page (a plain Panel layout) as the driving helpers take a component."""

    def __init__(self, layout: pn.viewable.Viewable) -> None:
        self.layout = layout

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout


def _tab_names(page: pn.viewable.Viewable) -> list[list[str]]:
    return [list(t._names) for t in page.select(pn.Tabs)]


def test_a_tab_registered_alone_shows_in_model_review_and_follows_the_version(two_versions, throwaway) -> None:
    first, second = two_versions
    review = ModelReview(model_name=first.name, version=first.version)
    names = review.param.section.objects
    assert names[names.index("Versions") + 1] == "Throwaway" == names[names.index("Compare versions") - 1]
    assert throwaway == []  # built only when first shown
    review.section = "Throwaway"
    assert f"throwaway tab of {first.uri}" in shown_text(review)
    assert throwaway[0].review is review and throwaway[0].model_name == first.name
    review.version = second.version
    assert f"throwaway tab of {second.uri}" in shown_text(review)
    review.wait(120)


def test_the_review_app_opens_a_registered_tab_from_its_url(two_versions, throwaway) -> None:
    first, _ = two_versions
    page = apps.page({"model": [first.name.encode()], "section": [b"Throwaway"]})
    (review,) = [t for t in page.select(pn.Tabs) if "Throwaway" in t._names]
    assert review.active == review._names.index("Throwaway")
    assert f"throwaway tab of {first.uri}" in shown_text(_Page(page))


def test_once_unregistered_the_tab_is_gone(two_versions) -> None:
    first, _ = two_versions
    tabs.register(tabs.ReviewTab("Gone soon", lambda ctx: pn.pane.Markdown("x")))
    tabs.unregister("model", "Gone soon")
    assert "Gone soon" not in ModelReview(model_name=first.name).param.section.objects
    with pytest.raises(InvalidInputError, match="no section 'Gone soon'"):
        ModelReview(model_name=first.name, section="Gone soon")


def test_home_and_deployment_pages_read_the_registry_and_what_a_tab_needs() -> None:
    tabs.register(tabs.ReviewTab("Notes", lambda ctx: pn.pane.Markdown("team notes"), page="home", order=15))
    tabs.register(tabs.ReviewTab("Replicas", lambda ctx: pn.pane.Markdown(f"replicas of {ctx.deployment}"),
                                 page="home", order=16, needs=frozenset({"deployment"})))
    try:
        assert _tab_names(apps.home_page()) == [["Models", "Notes", "Experiments", "Deployments", "Drift"]]
        notes = apps.home_page("Notes")
        assert "team notes" in shown_text(_Page(notes))
    finally:
        tabs.unregister("home", "Notes")
        tabs.unregister("home", "Replicas")
    assert _tab_names(apps.home_page()) == [["Models", "Experiments", "Deployments", "Drift"]]


def test_a_bad_registration_says_what_to_fix() -> None:
    with pytest.raises(InvalidInputError, match="page 'sidebar' is not one of"):
        tabs.ReviewTab("X", lambda ctx: None, page="sidebar")
    with pytest.raises(InvalidInputError, match="needs \\['gpu'\\]: a tab may need"):
        tabs.ReviewTab("X", lambda ctx: None, needs=frozenset({"gpu"}))
    with pytest.raises(InvalidInputError, match="already has a tab 'Drift': pass replace=True"):
        tabs.register(tabs.ReviewTab("Drift", lambda ctx: None))
    with pytest.raises(InvalidInputError, match="has no tab 'Nope'"):
        tabs.unregister("model", "Nope")


def test_an_installed_package_adds_a_tab_through_its_entry_point(two_versions, tab_plugin, monkeypatch) -> None:
    first, _ = two_versions
    monkeypatch.syspath_prepend(tab_plugin)
    try:
        review = ModelReview(model_name=first.name, version=first.version, section="Plugin tab")
        assert review.param.section.objects[-1] == "Plugin tab"
        assert f"plugin tab of {first.uri}" in shown_text(review)
    finally:
        tabs.unregister("model", "Plugin tab")


def test_a_broken_plugin_is_left_out_with_a_warning_and_the_pages_still_show(two_versions, tmp_path, monkeypatch,
                                                                             caplog) -> None:
    first, _ = two_versions
    info = tmp_path / "wb_broken_tabs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb_broken_tabs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[workbench.review_tabs]\nbroken = wb_broken_tabs_missing:TAB\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    review = ModelReview(model_name=first.name)
    assert review.param.section.objects[:2] == ["Overview", "Runs"]
    assert "review tabs of broken = wb_broken_tabs_missing:TAB left out: No module named 'wb_broken_tabs_missing'" \
        in caplog.text
