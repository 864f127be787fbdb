"""ModelReview: the whole page for one registered model.

::

    from workbench.widgets import ModelReview
    ModelReview(model_name="churn")                 # the champion (or the newest version)
    ModelReview(model_name="churn", version="3")

Tabs (the ``"model"`` page of :mod:`workbench.widgets.tabs`, where a new one registers): an overview
(lineage, metrics and parameters of its run, the data profile, where it is deployed), the runs of its
experiment, its versions and aliases, what changed from the version before
(:class:`~workbench.widgets.VersionComparison`), packaging, deployments, live drift, explanations,
and, when :mod:`workbench.governance` is installed, fairness and the model card. Each tab is built the
first time it is shown, so opening the page costs only the overview.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.profile import PROFILE_COLUMNS
from workbench.widgets import runs, tabs, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["ModelReview"]


class ModelReview(ui.NotebookView, pn.viewable.Viewer):
    """Everything about one model version on one page: metrics, data profile, lineage, runs,
    versions, what changed from the version before, packaging, deployments, drift, explanations,
    fairness and the model card."""

    model_name = param.String(default=None, allow_None=True, doc="The registered model reviewed.")
    version = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The version reviewed (default: the one @champion points at, else the newest).""")
    section = param.Selector(default="Overview", objects=["Overview"], doc="""
        The tab shown: one of the ``"model"`` page's tabs in :mod:`workbench.widgets.tabs`.""")

    def __init__(self, **params: Any) -> None:
        if not params.get("model_name"):
            raise InvalidInputError("ModelReview needs model_name=, the name of a registered model")
        found = wb.versions(params["model_name"])  # a clear error naming the known models if there is none
        if params.get("version") is None and found:
            champion = next((v for v in found if "champion" in v.aliases), None)
            params["version"] = (champion or found[0]).version
        elif params.get("version") is not None:
            params["version"] = str(params["version"])
        section = params.pop("section", "Overview")
        super().__init__(**params)
        self._serving: list[str] = []
        self._experiment: str | None = None
        self._run_id: str | None = None
        self.param.version.objects = [v.version for v in found]
        sections = [t.name for t in tabs.tabs_of("model", self._context())]
        if section not in sections:
            raise InvalidInputError(f"ModelReview has no section {section!r}; sections: {sections}")
        self.param.section.objects = sections
        self._task = BackgroundTask()
        self._header = pn.pane.HTML("", sizing_mode="stretch_width")
        self._lineage = pn.pane.HTML("", sizing_mode="stretch_width")
        # Tables get their final columns now: see ui.table.
        self._metrics = ui.table(ui.run_values(), label="run metrics", selectable=False)
        self._profile = ui.table(pd.DataFrame(columns=list(PROFILE_COLUMNS)), label="data profile", selectable=False)
        self._profile_note = ui.markdown()
        self._deployed = pn.pane.HTML("", sizing_mode="stretch_width")
        #: The overview tab's content (built here: the page always opens with it loading).
        self.overview = pn.Column(
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            pn.Row(
                ui.card("Lineage", self._lineage, subtitle="Where this version came from."),
                ui.card("Metrics and parameters", self._metrics, subtitle="Logged on the run that trained it."),
                ui.card("Deployed as", self._deployed, subtitle="Deployments serving this model now."),
                sizing_mode="stretch_width",
            ),
            ui.header("Training data profile", "Per-feature summary of the data it was trained on, logged with the model."),
            self._profile_note,
            self._profile,
            sizing_mode="stretch_width",
        )
        self._tabs = tabs.TabSet(tabs.tabs_of("model", self._context()), self._context)
        self._tabs.panel.param.watch(self._on_tab, "active")
        self._layout = pn.Column(
            pn.Row(self._header,
                   pn.widgets.Select.from_param(self.param.version, label="Version", width=120),
                   sizing_mode="stretch_width"),
            self._tabs.panel,
            sizing_mode="stretch_width",
        )
        self._load_overview()
        self.section = section
        self._show_section()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @property
    def model_uri(self) -> str:
        """``models:/<model_name>/<version>``: the exact version reviewed (empty until both are chosen)."""
        return wb.format_model_uri(self.model_name, self.version) if self.model_name and self.version else ""

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until the overview and the built sections have loaded (for scripts and tests)."""
        waited = self._task.wait(timeout)
        for component in self._tabs.built.values():
            if hasattr(component, "wait"):
                waited = component.wait(timeout) and waited
        return waited

    def component(self, section: str) -> Any:
        """The component shown in ``section`` (built now if it was not yet; the overview's layout for
        ``"Overview"``)."""
        if section not in self._tabs.names:
            raise InvalidInputError(f"no section {section!r}; sections: {self._tabs.names}")
        return self._tabs.component(section)

    def _context(self) -> tabs.TabContext:
        """What the review shows, for its tabs (the experiment, run and deployments once loaded)."""
        return tabs.TabContext(model_name=self.model_name, version=self.version, experiment=self._experiment,
                               run_id=self._run_id, serving=tuple(self._serving), review=self)

    # -- overview --------------------------------------------------------------------------------

    def _title_html(self, aliases: str = "", line: str = "") -> str:
        return (f"<h2 style='margin:4px 0'>{html.escape(self.model_name or '')} <small>v{html.escape(str(self.version))}"
                f"</small> {aliases}</h2><div style='color:#57606a'>{line}</div>")

    @param.depends("version", watch=True)
    def _load_overview(self) -> None:
        name, version, uri = self.model_name, self.version, self.model_uri
        # The page's title shows at once; where the version came from follows when it has loaded.
        self._header.object = self._title_html(line="reading where this version came from...")
        self._tabs.follow()  # the tabs built so far show the version now reviewed

        def work(job: Job[dict[str, Any]]) -> dict[str, Any]:
            versions = {v.version: v for v in wb.versions(name or "")}
            lineage = wb.lineage(uri)
            experiment = next((e.name for e in wb.experiments() if e.experiment_id == lineage.experiment_id), None)
            job.update(None, "reading the data profile...")
            try:
                profile, note = wb.load_profile(uri).to_frame(), ""
            except WorkbenchError as exc:
                profile, note = pd.DataFrame(columns=list(PROFILE_COLUMNS)), str(exc)
            job.update(None, "looking for deployments of this model...")
            serving = [d for d in wb.deployments() if d.model_name == name]
            return {"version": versions.get(version), "lineage": lineage, "experiment": experiment,
                    "profile": profile, "profile_note": note,
                    "serving": serving}

        self._task.start(work, self._show_overview, message=f"loading {uri}...")

    def _show_overview(self, found: dict[str, Any]) -> None:
        version, lineage = found["version"], found["lineage"]
        self._experiment, self._run_id = found["experiment"], lineage.run_id
        self._serving = [d.name for d in found["serving"]]
        self._tabs.follow()  # e.g. the runs, shown before the overview finished loading: at the run now
        aliases = " ".join(ui.badge(f"@{a}", "info") for a in (version.aliases if version else ()))
        run = (runs.run_link(lineage.run_id, lineage.run_name or None) if lineage.run_id
               else html.escape(lineage.run_name or "-"))
        self._header.object = self._title_html(aliases, (
            f"Registered by {html.escape(lineage.registered_by or '-')} on {ui.when(lineage.registered_at)} from run {run}"
            + (f" of experiment {runs.experiment_link(found['experiment'])}" if found["experiment"] else "")))
        self._lineage.object = ui.facts({
            "model URI": self.model_uri, "source": lineage.source, "run id": lineage.run_id,
            # Hashes shortened as git does (the full ones are on the model card and in the lineage).
            "git commit": ui.short(lineage.git_commit, 12), "training data hash": ui.short(lineage.data_hash, 16),
            "description": (version.description if version else "") or "-",
            # A retrained version's gate verdict (workbench.retrain_on), e.g. "challenger accuracy 0.880 vs ..."
            **({"retrain gate": version.tags["workbench.gate"]} if version and "workbench.gate" in version.tags else {}),
        })
        self._metrics.value = ui.run_values(lineage)
        self._profile.value = found["profile"].round(4)
        self._profile_note.object = html.escape(found["profile_note"])
        serving = found["serving"]
        self._deployed.object = "".join(
            f"<div>{ui.badge(d.state, 'ok' if d.state == 'running' else 'warn')} <b>{runs.deployment_link(d.name)}</b> "
            f"serves v{html.escape(str(d.model_version))} on {html.escape(d.target)}"
            + (f", following @{html.escape(d.alias)}" if d.alias else "") + "</div>"
            for d in serving
        ) or ui.empty_state_html("Not deployed", "Deploy it from the <b>Deployments</b> tab; its deployments show here.")
        self._task.message = ""

    # -- sections --------------------------------------------------------------------------------

    def _on_tab(self, event: Any) -> None:
        self.section = self.param.section.objects[event.new]

    @param.depends("section", watch=True)
    def _show_section(self) -> None:
        if hasattr(self, "_tabs"):  # not while __init__ sets the section it was given
            self._tabs.show(self.section)
