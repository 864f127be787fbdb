"""ModelRegistry: registered models, their versions, aliases and lineage; set an alias, open a review.

::

    from workbench.widgets import ModelRegistry
    ModelRegistry(model_name="churn")

"Open review" opens the version's :class:`~workbench.widgets.ModelReview`: on a page served by
``workbench review`` it goes to ``review?model=NAME&version=V``; in a notebook the review appears
below the registry. Others (the JupyterLab extension) watch the ``opened`` parameter instead.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.widgets import runs, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["ModelRegistry"]


class ModelRegistry(ui.NotebookView, pn.viewable.Viewer):
    """Registered models and their versions with aliases and lineage; set or remove an alias, open a
    version's review."""

    model_name = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The registered model whose versions are listed (default: the first by name).""")
    version = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The version whose lineage is shown and that actions apply to (default: the newest).""")
    alias = param.String(default="champion", doc="""
        Alias that "Set alias" points at ``version`` (or "Remove alias" removes).""")
    review_url = param.String(default="review?model={model}&version={version}", doc="""
        Where "Open review" goes on a served page; ``{model}`` and ``{version}`` are filled in.""")
    opened = param.String(default="", constant=True, doc="""
        URI of the version whose review was last opened (``models:/name/3``; read only).""")
    search = param.String(default="", doc="""
        Only models whose name or description contains this text (any case) are listed.""")
    navigate = param.Boolean(default=True, doc="""
        "Open review" goes to the review (served page) or shows it below (notebook); ``False``: it only
        sets ``opened``, for a container that shows the review itself.""")

    def __init__(self, **params: Any) -> None:
        names = [m.name for m in wb.models()]
        if params.get("model_name") is None and names:
            params["model_name"] = names[0]
        super().__init__(**params)
        self.param.model_name.objects = names
        self._task = BackgroundTask()
        self._models = ui.table(pd.DataFrame(), label="models")
        self._models.param.watch(self._on_model_row, "selection")
        # A version's run links to its page in the review app (the full id rides along, hidden).
        self._versions = ui.table(pd.DataFrame(), label="versions", hidden_columns=["run_id"], formatters={
            "run": {"type": "link", "urlPrefix": "review?run=", "urlField": "run_id", "target": "_self"}})
        self._versions.param.watch(self._on_version_row, "selection")
        self._lineage = pn.pane.HTML("", sizing_mode="stretch_width")
        self._metrics = ui.table(ui.run_values(), label="lineage metrics", selectable=False)
        set_button = ui.button("Set alias", self.set_alias, color="primary")
        remove_button = ui.button("Remove alias", self.remove_alias, color="default")
        open_button = ui.button("Open review", self.open_review, color="success")
        for button in (set_button, remove_button, open_button):
            button.disabled = self._task.param.running
        self._review_slot = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(
            ui.header("Registered models", "Pick a model to see its versions; open a version's review."),
            pn.widgets.TextInput.from_param(self.param.search, label="Search models", placeholder="name or description",
                                            width=320, onkeyup=True),
            self._models,
            pn.Row(
                pn.widgets.Select.from_param(self.param.model_name, label="Model", width=240),
                pn.widgets.Select.from_param(self.param.version, label="Version", width=120),
                pn.widgets.TextInput.from_param(self.param.alias, label="Alias", width=160),
                set_button, remove_button, open_button,
            ),
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            ui.header("Versions"),
            self._versions,
            pn.Row(
                ui.card("Lineage", self._lineage),
                ui.card("Metrics and parameters of its run", self._metrics),
                sizing_mode="stretch_width",
            ),
            self._review_slot,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- reading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read models, versions and the selected version's lineage again."""
        self._show_models()
        self._show_versions()

    @param.depends("search", watch=True)
    def _show_models(self) -> None:
        wanted = self.search.strip().lower()
        found = [m for m in wb.models() if not wanted or wanted in m.name.lower() or wanted in (m.description or "").lower()]
        self.param.model_name.objects = [m.name for m in found]
        frame = pd.DataFrame(
            [{"name": m.name, "latest": m.latest_version or "-",
              "aliases": ", ".join(f"@{a}={v}" for a, v in sorted(m.aliases.items())) or "-",
              "updated": ui.when(m.updated), "description": m.description}
             for m in found],
            columns=["name", "latest", "aliases", "updated", "description"],
        )
        self._models.value = frame
        self._models.selection = [i for i, name in enumerate(frame["name"]) if name == self.model_name]

    @param.depends("model_name", watch=True)
    def _show_versions(self) -> None:
        if not self.model_name:
            self._versions.value = pd.DataFrame()
            self._lineage.object = "<p>No model is registered yet: register one with <code>workbench.register</code>.</p>"
            return
        found = wb.versions(self.model_name)
        numbers = [v.version for v in found]
        self.param.version.objects = numbers
        frame = pd.DataFrame(
            [{"version": v.version, "aliases": ", ".join(f"@{a}" for a in v.aliases) or "-", "status": v.status,
              "registered": ui.when(v.created), "by": v.user, "run": ui.short(v.run_id), "run_id": v.run_id or "",
              "commit": ui.short(v.git_commit), "data": ui.short(v.data_hash), "description": v.description}
             for v in found],
            columns=["version", "aliases", "status", "registered", "by", "run", "run_id", "commit", "data", "description"],
        )
        self._versions.value = frame
        if self.version not in numbers:
            self.version = numbers[0] if numbers else None
        else:
            self._show_lineage()

    @param.depends("version", watch=True)
    def _show_lineage(self) -> None:
        frame = self._versions.value
        if frame is not None and "version" in frame:
            self._versions.selection = [i for i, v in enumerate(frame["version"]) if v == self.version]
        if not self.model_name or not self.version:
            self._lineage.object = ""
            self._metrics.value = ui.run_values()
            return
        found = wb.lineage(wb.format_model_uri(self.model_name, self.version))
        version = next((v for v in wb.versions(self.model_name) if v.version == self.version), None)
        experiment = next((e.name for e in wb.experiments() if e.experiment_id == found.experiment_id), None)
        self._lineage.object = ui.facts({
            "version": ui.raw_html(runs.version_link(found.name, found.version)),
            "aliases": ", ".join(f"@{a}" for a in (version.aliases if version else ())) or "-",
            "run": ui.raw_html(runs.run_link(found.run_id, found.run_name or None)) if found.run_id else "-",
            "experiment": ui.raw_html(runs.experiment_link(experiment)) if experiment else found.experiment_id,
            "git commit": found.git_commit,
            "training data hash": found.data_hash,
            "registered by": found.registered_by,
            "registered at": found.registered_at,
            "source": found.source,
        })
        self._metrics.value = ui.run_values(found)

    def _on_model_row(self, event: Any) -> None:
        if event.new and self._models.value is not None and len(self._models.value):
            self.model_name = str(self._models.value["name"].iloc[event.new[0]])

    def _on_version_row(self, event: Any) -> None:
        if event.new and self._versions.value is not None and len(self._versions.value):
            self.version = str(self._versions.value["version"].iloc[event.new[0]])

    # -- actions ---------------------------------------------------------------------------------

    def set_alias(self) -> None:
        """Point ``alias`` of ``model_name`` at ``version`` (in the background; errors show on the widget)."""
        name, alias, version = self.model_name, self.alias.strip(), self.version

        def work(job: Job[Any]) -> Any:
            if not name or not version:
                raise InvalidInputError("pick a model and a version first")
            return wb.set_alias(name, alias, version)

        self._task.start(work, lambda _: self._done(f"@{alias} now points at {name} v{version}"),
                         message=f"setting @{alias}...", exclusive=True)

    def remove_alias(self) -> None:
        """Remove ``alias`` from ``model_name``."""
        name, alias = self.model_name, self.alias.strip()

        def work(job: Job[None]) -> None:
            if not name:
                raise InvalidInputError("pick a model first")
            wb.delete_alias(name, alias)

        self._task.start(work, lambda _: self._done(f"@{alias} removed from {name}"),
                         message=f"removing @{alias}...", exclusive=True)

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the running action is done (for scripts and tests)."""
        return self._task.wait(timeout)

    def _done(self, message: str) -> None:
        self.refresh()
        self._task.message = message

    def open_review(self) -> Any:
        """Open the review of ``version``: navigate there on a served page, show it below otherwise.

        Returns the :class:`~workbench.widgets.ModelReview` when it is shown here, else ``None``.
        """
        if not self.model_name or not self.version:
            return None
        with param.edit_constant(self):
            self.opened = wb.format_model_uri(self.model_name, self.version)
        if not self.navigate:
            return None
        url = self.review_url.format(model=urllib.parse.quote(self.model_name),
                                     version=urllib.parse.quote(self.version))
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self._review_slot[:] = [pn.pane.HTML(
                f'<a href="{url}">Open the review of {self.model_name} v{self.version}</a>')]
            if pn.state.location is not None:
                pn.state.location.param.update(**_location(url))
            return None
        from workbench.widgets.review import ModelReview

        review = ModelReview(model_name=self.model_name, version=self.version)
        self._review_slot[:] = [review]
        return review


def _location(url: str) -> dict[str, Any]:
    """The ``pn.state.location`` changes that navigate to a relative ``url`` (path and query)."""
    path, _, query = url.partition("?")
    changes: dict[str, Any] = {"search": f"?{query}" if query else "", "reload": True}
    if path:
        current = (pn.state.location.pathname if pn.state.location is not None else None) or "/"
        changes["pathname"] = current.rsplit("/", 1)[0] + "/" + path.lstrip("/")
    return changes

