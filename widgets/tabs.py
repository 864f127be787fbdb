"""The tabs of the review pages, registered in one place.

A tab is a name, a builder, the page it belongs to, what it needs, and its order. The pages read the
registry: :class:`~workbench.widgets.ModelReview` (page ``"model"``), the review app's home and
deployment pages (:mod:`workbench.widgets.apps`, pages ``"home"`` and ``"deployment"``), and the
JupyterLab extension's main-area pages (a tab with ``lab_page`` is one). A new tab is one call::

    import panel as pn
    from workbench.widgets import tabs

    tabs.register(tabs.ReviewTab(
        "Latency", lambda ctx: pn.pane.Markdown(f"latency of {ctx.model_uri}"), page="model", order=65))

An installed package adds tabs to every page, ``workbench review``'s included, through the entry-point
group ``workbench.review_tabs`` (:data:`TAB_GROUP`): each entry point names a :class:`ReviewTab`, a
list of them, or a function returning either::

    [project.entry-points."workbench.review_tabs"]
    latency = "my_package.tabs:LATENCY_TAB"

Each tab is built the first time it is shown (:class:`TabSet`), from a :class:`TabContext` saying what
the page shows; ``follow`` points a tab already built at what the page shows now (another version).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from importlib.metadata import entry_points
from typing import Any

import panel as pn

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.widgets import governance_available

__all__ = ["NEEDS", "PAGES", "TAB_GROUP", "ReviewTab", "TabContext", "TabSet", "lab_pages", "register", "tabs_of", "unregister"]

#: The pages that show tabs: one model's review, the home page, one deployment's page.
PAGES = ("model", "home", "deployment")

#: The entry-point group of installed packages' review tabs.
TAB_GROUP = "workbench.review_tabs"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TabContext:
    """What a page shows, as a tab's builder sees it (fields the page does not know are ``None``)."""

    #: The registered model (model page).
    model_name: str | None = None
    #: The version reviewed (model page).
    version: str | None = None
    #: The deployment shown (deployment page).
    deployment: str | None = None
    #: The experiment and run the version came from, once the review's overview has loaded them.
    experiment: str | None = None
    run_id: str | None = None
    #: The deployments serving the model, once the overview has loaded them.
    serving: tuple[str, ...] = ()
    #: The :class:`~workbench.widgets.ModelReview` showing the tab (model page), e.g. to open another version.
    review: Any = None

    @property
    def model_uri(self) -> str:
        """``models:/<model_name>/<version>`` (empty unless both are known)."""
        return wb.format_model_uri(self.model_name, self.version) if self.model_name and self.version else ""


#: What a tab may need, and how a page knows it has it: a tab whose need is not met is not shown.
NEEDS: dict[str, Callable[[TabContext], bool]] = {
    "governance": lambda ctx: governance_available(),  # workbench.governance imports (fairness, cards)
    "deployment": lambda ctx: bool(ctx.deployment),  # the page is about one deployment
}


@dataclass(frozen=True)
class ReviewTab:
    """One tab of a review page."""

    #: The tab's title, unique on its page (also the ``?section=`` value that opens it).
    name: str
    #: Builds the tab's content (a Panel object) from what the page shows; called once, when first shown.
    build: Callable[[TabContext], Any]
    #: The page the tab is on: one of :data:`PAGES`.
    page: str = "model"
    #: Tabs show in ascending order (then by name).
    order: int = 100
    #: Names in :data:`NEEDS`; the tab shows only where each is met.
    needs: frozenset[str] = field(default_factory=frozenset)
    #: Points a built tab's content at what the page shows now (``follow(content, context)``), called
    #: when a field of the context named in ``follows`` changed since the tab was built or last followed.
    follow: Callable[[Any, TabContext], None] | None = None
    follows: frozenset[str] = frozenset({"model_name", "version"})
    #: The JupyterLab page that opens this tab (``<base_url>/workbench/apps/<lab_page>?...``), if any.
    lab_page: str | None = None

    def __post_init__(self) -> None:
        if self.page not in PAGES:
            raise InvalidInputError(f"tab {self.name!r}: page {self.page!r} is not one of {list(PAGES)}")
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise InvalidInputError(f"tab {self.name!r} needs {sorted(unknown)}: a tab may need {sorted(NEEDS)}")
        unknown = set(self.follows) - {f.name for f in fields(TabContext)}
        if unknown:
            raise InvalidInputError(f"tab {self.name!r} follows {sorted(unknown)}, which TabContext does not have")
        object.__setattr__(self, "needs", frozenset(self.needs))
        object.__setattr__(self, "follows", frozenset(self.follows))


_registry: dict[tuple[str, str], ReviewTab] = {}


def register(tab: ReviewTab, *, replace: bool = False) -> ReviewTab:
    """Add ``tab`` to its page (pages built from now on show it); returns it.

    A second tab of the same name on the same page is refused unless ``replace=True``.
    """
    key = (tab.page, tab.name)
    if key in _registry and not replace:
        raise InvalidInputError(f"the {tab.page} page already has a tab {tab.name!r}: pass replace=True to replace it")
    _registry[key] = tab
    return tab


def unregister(page: str, name: str) -> None:
    """Remove the tab ``name`` from ``page`` (pages built from now on do not show it)."""
    if _registry.pop((page, name), None) is None:
        raise InvalidInputError(f"the {page} page has no tab {name!r}; its tabs: {[t.name for t in tabs_of(page)]}")


@functools.cache
def _load_installed(path: tuple[str, ...]) -> None:
    """Register the tabs of the ``workbench.review_tabs`` entry points found on ``path`` (once per path).

    A plugin that fails to load or clashes with a tab already there is left out with a warning that
    names it: one broken package does not take the review pages down.
    """
    for ep in entry_points(group=TAB_GROUP):
        try:
            found = ep.load()
            if callable(found) and not isinstance(found, ReviewTab):
                found = found()
            for tab in [found] if isinstance(found, ReviewTab) else list(found):
                if not isinstance(tab, ReviewTab):
                    raise TypeError(f"{tab!r} is not a workbench.widgets.tabs.ReviewTab")
                if (tab.page, tab.name) not in _registry or _registry[(tab.page, tab.name)] is not tab:
                    register(tab)
        except Exception as exc:  # a plugin's bug: shown in the log, the other tabs still show
            _log.warning("review tabs of %s = %s left out: %s (fix or uninstall that package)", ep.name, ep.value, exc)


def tabs_of(page: str, context: TabContext | None = None) -> list[ReviewTab]:
    """The tabs of ``page`` in order, those whose needs ``context`` meets (all needs, without one)."""
    if page not in PAGES:
        raise InvalidInputError(f"no page {page!r}; pages: {list(PAGES)}")
    _load_installed(tuple(sys.path))
    found = sorted((t for (p, _), t in _registry.items() if p == page), key=lambda t: (t.order, t.name))
    if context is None:
        return found
    return [t for t in found if all(NEEDS[need](context) for need in t.needs)]


def lab_pages() -> dict[str, dict[str, str]]:
    """The JupyterLab pages that open one tab: page name -> the query arguments that show it."""
    return {t.lab_page: {"section": t.name} for page in PAGES for t in tabs_of(page) if t.lab_page}


class TabSet:
    """A page's tabs, each built the first time it is shown.

    ``context`` is called whenever a tab is built or followed, so tabs see what the page shows now.
    """

    def __init__(self, tabs: Iterable[ReviewTab], context: Callable[[], TabContext], first: str | None = None) -> None:
        self._tabs = {t.name: t for t in tabs}
        self._context = context
        self._built: dict[str, Any] = {}
        self._seen: dict[str, TabContext] = {}  # the context each built tab last saw
        self._slots = {name: pn.Column(sizing_mode="stretch_width") for name in self._tabs}
        self.panel = pn.Tabs(*self._slots.items(), sizing_mode="stretch_width")
        self.panel.param.watch(lambda event: self.component(self.names[event.new]), "active")
        if first is not None:
            self.show(first if first in self._tabs else self.names[0])

    @property
    def names(self) -> list[str]:
        """The tabs' names, in order."""
        return list(self._tabs)

    @property
    def built(self) -> dict[str, Any]:
        """The content of each tab built so far."""
        return dict(self._built)

    def component(self, name: str) -> Any:
        """The content of tab ``name`` (built now if it was not yet)."""
        if name not in self._tabs:
            raise InvalidInputError(f"no tab {name!r}; tabs: {self.names}")
        if name not in self._built:
            context = self._context()
            built = self._tabs[name].build(context)
            self._seen[name] = context
            self._built[name] = built
            self._slots[name][:] = [built]
            # What the page learnt while the tab was being built (a background load finishing) was
            # not followed by it: catch up now.
            self._follow(name, self._context())
        return self._built[name]

    def show(self, name: str) -> Any:
        """Bring tab ``name`` to the front (building it if needed); returns its content."""
        index = self.names.index(name) if name in self._tabs else -1
        component = self.component(name)
        if self.panel.active != index:
            self.panel.active = index
        return component

    def follow(self) -> None:
        """Point every built tab at what the page shows now: its ``follow``, if what it follows changed
        (so a choice made inside a tab stands until the page moves on)."""
        context = self._context()
        for name in list(self._built):  # a copy: a page's background work calls this while tabs are built
            self._follow(name, context)

    def _follow(self, name: str, context: TabContext) -> None:
        tab, seen = self._tabs[name], self._seen[name]
        self._seen[name] = context
        if tab.follow is not None and any(getattr(seen, f) != getattr(context, f) for f in tab.follows):
            tab.follow(self._built[name], context)


# -- the workbench's own tabs ---------------------------------------------------------------------
# Builders import the components when called: `import workbench.widgets` stays free of Panel.

def _widgets() -> Any:
    import workbench.widgets as wbw

    return wbw


def _runs(ctx: TabContext) -> Any:
    browser = _widgets().ExperimentBrowser(experiment=ctx.experiment)
    if ctx.run_id:
        browser.selected_runs = [ctx.run_id]
    return browser


def _follow_runs(browser: Any, ctx: TabContext) -> None:
    """Shown before the overview finished loading: point it at the run when it is known."""
    if ctx.experiment and browser.experiment != ctx.experiment:
        browser.experiment = ctx.experiment
    if ctx.run_id:
        browser.selected_runs = [ctx.run_id]


def _versions(ctx: TabContext) -> Any:
    registry = _widgets().ModelRegistry(model_name=ctx.model_name, version=ctx.version, navigate=False)
    review = ctx.review
    if review is not None:  # "open review" on another version switches this review to it
        def opened(event: Any) -> None:
            version = event.new.rsplit("/", 1)[-1]
            if version and version != review.version:
                review.version = version

        registry.param.watch(opened, "opened")
    return registry


def _follow_version(registry: Any, ctx: TabContext) -> None:
    registry.version = ctx.version


def _compare(ctx: TabContext) -> Any:
    return _widgets().VersionComparison(model_name=ctx.model_name, b=ctx.version)


def _follow_compare(comparison: Any, ctx: TabContext) -> None:
    a, b = comparison.pair_for(ctx.version)
    comparison.param.update(a=a, b=b)


def _follow_uri(component: Any, ctx: TabContext) -> None:
    component.model_uri = ctx.model_uri


def _model_drift(ctx: TabContext) -> Any:
    return _widgets().DriftMonitor(deployment=ctx.serving[0] if ctx.serving else None, model_name=ctx.model_name)


def _overview(ctx: TabContext) -> Any:
    return ctx.review.overview


for _tab in (
    # One model's review (ModelReview).
    ReviewTab("Overview", _overview, order=0),
    ReviewTab("Runs", _runs, order=10, follow=_follow_runs, follows=frozenset({"experiment", "run_id"})),
    ReviewTab("Versions", _versions, order=20, follow=_follow_version),
    ReviewTab("Compare versions", _compare, order=30, follow=_follow_compare),
    ReviewTab("Package", lambda ctx: _widgets().PackageBuilder(model_uri=ctx.model_uri, model_name=ctx.model_name),
              order=40, follow=_follow_uri),
    ReviewTab("Deployments", lambda ctx: _widgets().Deployments(model_uri=ctx.model_uri, model_name=ctx.model_name),
              order=50, follow=_follow_uri),
    ReviewTab("Drift", _model_drift, order=60),
    ReviewTab("Explanations", lambda ctx: _widgets().Explanations(model_uri=ctx.model_uri), order=70,
              follow=_follow_uri),
    ReviewTab("Fairness", lambda ctx: _widgets().Fairness(model_uri=ctx.model_uri), order=80,
              needs=frozenset({"governance"}), follow=_follow_uri),
    ReviewTab("Model card", lambda ctx: _widgets().ModelCard(model_uri=ctx.model_uri), order=90,
              needs=frozenset({"governance"}), follow=_follow_uri),
    # The review app's home page.
    ReviewTab("Models", lambda ctx: _widgets().ModelRegistry(), page="home", order=10),
    ReviewTab("Experiments", lambda ctx: _widgets().ExperimentBrowser(), page="home", order=20),
    ReviewTab("Deployments", lambda ctx: _widgets().Deployments(), page="home", order=30),
    ReviewTab("Drift", lambda ctx: _widgets().DriftMonitor(), page="home", order=40),
    # One deployment's page; its drift is also the JupyterLab's "drift" page.
    ReviewTab("Drift", lambda ctx: _widgets().DriftMonitor(deployment=ctx.deployment), page="deployment",
              order=10, needs=frozenset({"deployment"}), lab_page="drift"),
    ReviewTab("Explanations", lambda ctx: _widgets().Explanations(deployment=ctx.deployment), page="deployment",
              order=20, needs=frozenset({"deployment"})),
    ReviewTab("Status", lambda ctx: _widgets().Deployments(selected=ctx.deployment), page="deployment", order=30,
              needs=frozenset({"deployment"})),
):
    register(_tab)
del _tab
