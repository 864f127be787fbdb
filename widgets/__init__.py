"""Panel components for the workbench, in a notebook cell or in the review app (``workbench review``).

Each component is a :class:`panel.viewable.Viewer` whose public API is its ``param`` parameters;
put one at the end of a cell, or several in a layout::

    import workbench.widgets as wbw
    wbw.extension()                                   # once per notebook: inline JS, works offline

    wbw.ExperimentBrowser(experiment="churn")
    wbw.ModelRegistry()
    wbw.PackageBuilder(model_uri="models:/churn@champion")
    wbw.Deployments()
    wbw.DriftMonitor(deployment="churn")
    wbw.Explanations(model_uri="models:/churn@champion")
    wbw.VersionComparison(model_name="churn")         # what changed from the version before
    wbw.ModelReview(model_name="churn")               # the whole page for one model
    wbw.RetrainProgress(loop=wb.retrain_on(...))      # a retrain loop's steps as they happen

Components: :class:`ExperimentBrowser`, :class:`ModelRegistry`, :class:`PackageBuilder`,
:class:`Deployments`, :class:`DriftMonitor`, :class:`Explanations`, :class:`VersionComparison`,
:class:`ModelReview`,
:class:`RetrainProgress`, and, when
:mod:`workbench.governance` is installed, :class:`Fairness` and :class:`ModelCard`. Pages for
``panel serve``: :mod:`workbench.widgets.apps`; the tabs of those pages and of ModelReview, where a
new tab registers: :mod:`workbench.widgets.tabs`. Progress bars for long calls from plain Python
(``tqdm``: a widget in notebooks, text in terminals): :mod:`workbench.widgets.progress`.

Offline
    Nothing is fetched from outside the machine. In notebooks call :func:`extension` (or
    ``pn.extension("tabulator", inline=True)``): Panel's default loads its JavaScript from a CDN, and
    the output stays blank where that cannot be reached. ``workbench lab`` sets ``PANEL_INLINE=true``
    for its kernels as well. The review app serves Panel's bundled resources from its own server.

Other notebook front ends (VS Code, classic Notebook 7, Colab-like hosts)
    JupyterLab shows Panel output through Panel's own comms. Front ends that only render
    ipywidgets show it through ``jupyter_bokeh`` (installed with the ``ui`` extra): call
    ``wbw.extension(comms="ipywidgets")`` once, or wrap one component with
    ``pn.ipywidget(component)`` to get an ipywidget you can also put in ipywidgets layouts.

Long work (loading runs, builds, deploys, drift over big windows, explanations) runs on background
threads with a progress bar on the component; the page never waits for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.lazy import attach_typed

# The components are listed once, as the imports of the TYPE_CHECKING block at the end; they load on
# first use so that ``import workbench.widgets`` (e.g. by ``workbench review`` to find its app files)
# does not import Panel.
__getattr__, __dir__, _components = attach_typed(__name__, __file__)
__all__ = sorted([*_components, "extension", "governance_available"])


def extension(*extra: str, comms: str | None = None, **config: Any) -> None:
    """Load Panel in a notebook the way the components need: Tabulator, JavaScript inline (offline).

    ``comms="ipywidgets"`` renders through ipywidgets (VS Code, classic Notebook and other front ends
    that only speak ipywidgets); other keyword arguments go to :func:`panel.extension`.
    """
    import panel as pn

    if comms is not None:
        config["comms"] = comms
    pn.extension("tabulator", *extra, inline=True, **config)


def governance_available() -> bool:
    """True when :mod:`workbench.governance` imports, so the Fairness and ModelCard panels can show.

    False only when a package it needs is not installed (the other panels still show, and a warning
    names the package). A broken import of the workbench's own code is a bug, and raises.
    """
    try:
        importlib.import_module("workbench.governance")
    except ImportError as exc:
        if not _missing_dependency(exc):
            raise
        import logging

        logging.getLogger(__name__).warning("governance panels are hidden: workbench.governance does not import (%s)", exc)
        return False
    return True


def _missing_dependency(exc: ImportError) -> bool:
    """Whether ``exc`` says a package from outside is not installed, rather than that our code is broken."""
    from workbench.errors import MissingDependencyError

    if isinstance(exc, MissingDependencyError):
        return True
    name = exc.name if isinstance(exc, ModuleNotFoundError) else None
    return bool(name) and str(name).split(".")[0] != "workbench"


if TYPE_CHECKING:  # the one list of components (read by attach_typed at run time)
    from workbench.widgets.background import BackgroundTask
    from workbench.widgets.deployments import Deployments
    from workbench.widgets.drift import DriftMonitor
    from workbench.widgets.experiments import ExperimentBrowser
    from workbench.widgets.explanations import Explanations
    from workbench.widgets.governance import Fairness, ModelCard
    from workbench.widgets.registry import ModelRegistry
    from workbench.widgets.review import ModelReview
    from workbench.widgets.packaging import PackageBuilder
    from workbench.widgets.retrain import RetrainProgress
    from workbench.widgets.runs import RunView
    from workbench.widgets.compare import VersionComparison
