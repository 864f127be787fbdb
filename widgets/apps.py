"""Pages of the review app, built from URL query arguments, for ``panel serve`` and other hosts.

``workbench review`` serves :mod:`workbench.widgets.app.review`, which calls :func:`serve_page`;
each page is also a plain function returning a Panel object, for other hosts (the JupyterLab
extension, ``pn.serve``)::

    /review                          home: models, experiments, deployments, drift
    /review?model=churn[&version=3]  ModelReview of a model (optionally &section=Drift)
    /review?deployment=churn         one deployment: live drift, explanations, status
    /review?experiment=churn         ExperimentBrowser of one experiment
    /review?run=<run id>             RunView of one run (params, metrics, tags, artifacts, its models)

The tabs of each page are those registered for it in :mod:`workbench.widgets.tabs` (pages
``"home"``, ``"model"`` and ``"deployment"``). Layouts are plain Panel columns and tabs: no template,
so no web font or stylesheet is fetched from outside the machine.
"""

from __future__ import annotations

import gc
import html
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

import panel as pn

from workbench.errors import WorkbenchError
from workbench.widgets import tabs, ui
from workbench.widgets.app import DEFAULT_MODEL_ENV

__all__ = [
    "DEFAULT_MODEL_ENV",
    "deployment_page",
    "experiments_page",
    "home_page",
    "page",
    "query_args",
    "review_page",
    "run_page",
    "serve_page",
]

TITLE = "Workbench review"


def _frame(title: str, body: Any, *, subtitle: str = "") -> pn.Column:
    """The page around ``body``: a title bar with links home and to the deployments."""
    links = " · ".join(f'<a href="{href}" style="color:#fff">{html.escape(label)}</a>'
                       for label, href in (("Home", "review"), ("Deployments", "review?section=Deployments")))
    bar = pn.pane.HTML(
        f"<div style='display:flex;justify-content:space-between;align-items:center'>"
        f"<span style='font-size:1.3em;font-weight:600'>{html.escape(title)}</span>"
        f"<span>{html.escape(subtitle)}&nbsp;&nbsp;{links}</span></div>",
        sizing_mode="stretch_width",
        styles={"background": "#24292f", "color": "#ffffff", "padding": "8px 16px", "border-radius": "4px"},
    )
    return pn.Column(bar, body, sizing_mode="stretch_width", margin=(0, 10))


def home_page(section: str | None = None) -> pn.viewable.Viewable:
    """Every registered model (open one's review from there), experiment runs, deployments and drift."""
    return _frame(TITLE, _tabs("home", tabs.TabContext(), section))


def review_page(model: str, version: str | None = None, section: str | None = None) -> pn.viewable.Viewable:
    """The :class:`~workbench.widgets.ModelReview` of ``model`` (its champion or newest version by default)."""
    from workbench.widgets import ModelReview

    review = ModelReview(model_name=model, version=version, **({"section": section} if section else {}))
    return _frame(f"{TITLE}: {model}", review)


def deployment_page(deployment: str, section: str | None = None) -> pn.viewable.Viewable:
    """One deployment: its live drift, explanations of its latest predictions, and its status."""
    return _frame(f"{TITLE}: deployment {deployment}", _tabs("deployment", tabs.TabContext(deployment=deployment),
                                                               section))


def experiments_page(experiment: str | None = None) -> pn.viewable.Viewable:
    """The runs of ``experiment`` (default: the newest experiment)."""
    from workbench.widgets import ExperimentBrowser

    return _frame(f"{TITLE}: runs", ExperimentBrowser(experiment=experiment))


def run_page(run_id: str) -> pn.viewable.Viewable:
    """One run: its params, metrics, tags, artifacts and the models it logged."""
    from workbench.widgets import RunView

    return _frame(f"{TITLE}: run", RunView(run_id=run_id))


def page(args: Mapping[str, Any]) -> pn.viewable.Viewable:
    """The page the query arguments ask for (see the module docstring); errors become a message page.

    ``args`` maps names to a value or a list of values (str or bytes, as ``pn.state.session_args``
    gives them).
    """
    query = query_args(args)
    try:
        if query.get("model"):
            return review_page(query["model"], query.get("version"), query.get("section"))
        if query.get("deployment"):
            return deployment_page(query["deployment"], query.get("section"))
        if query.get("experiment"):
            return experiments_page(query["experiment"])
        if query.get("run"):
            return run_page(query["run"])
        return home_page(query.get("section"))
    except WorkbenchError as exc:
        message = pn.pane.Alert(f"{exc}", alert_type="danger", disable_math=True, sizing_mode="stretch_width")
        return _frame(TITLE, pn.Column(message, ui.markdown("[Back to all models](review)")))


def query_args(args: Mapping[str, Any]) -> dict[str, str]:
    """The first value of each query argument, decoded to text."""
    out = {}
    for key, value in args.items():
        if isinstance(value, (list, tuple)):
            value = value[0] if value else ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        out[str(key)] = urllib.parse.unquote(str(value)).strip()
    return out


def serve_page() -> pn.viewable.Viewable:
    """Build the page for the current session's URL and mark it servable (called by the app file).

    Without a ``model``/``deployment``/``experiment`` argument, ``WORKBENCH_REVIEW_MODEL`` (set by
    ``workbench review --model``) picks the model shown.
    """
    pn.extension("tabulator")
    _freeze_loaded_modules()
    args = dict(pn.state.session_args or {})
    default_model = os.environ.get(DEFAULT_MODEL_ENV)
    if default_model and not {"model", "deployment", "experiment", "run", "section"} & set(args):
        args["model"] = [default_model.encode()]
    built = page(args)
    built.servable(title=TITLE)
    return built


_frozen = False


def _freeze_loaded_modules() -> None:
    """Once per server: keep what the first page loaded (Panel, Bokeh, MLflow, pandas: some 400,000
    objects that live as long as the server) out of the garbage collector's full collections, which
    otherwise stop the event loop, and every page with it, for 300-500 ms each (benchmarks/widgets)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _tabs(page: str, context: tabs.TabContext, section: str | None) -> pn.Tabs:
    """The registered tabs of ``page``, ``section`` in front (else the first), each built when first shown."""
    found = tabs.tabs_of(page, context)
    return tabs.TabSet(found, lambda: context, first=section or found[0].name).panel
