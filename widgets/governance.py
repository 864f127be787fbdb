"""Fairness and ModelCard: the governance views of a model version (needs :mod:`workbench.governance`).

::

    from workbench.widgets import Fairness, ModelCard
    Fairness(model_uri="models:/credit/3")          # reports logged with fairness_report(..., log=True)
    Fairness(reports=[wb.fairness_report(y, y_hat, sensitive_features=people["sex"])])
    ModelCard(model_uri="models:/credit/3")          # the card, and buttons to download it

The review app shows these panels only when :func:`workbench.widgets.governance_available` is true.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.governance import logged_fairness
from workbench.widgets import charts, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["Fairness", "ModelCard"]

#: Per-group rates drawn side by side.
RATES = ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")


class Fairness(ui.NotebookView, pn.viewable.Viewer):
    """Group fairness of a model version: per-group rates and the disparities between groups."""

    model_uri = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The model version whose logged fairness reports are shown.""")
    reports = param.List(default=None, allow_None=True, doc="""
        :class:`~workbench.FairnessReport` objects to show; ``None``: those logged on the version's run
        (``workbench.fairness_report(..., model_uri=..., log=True)``).""")
    attribute = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Sensitive attribute whose report is drawn (when there are several).""")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.reports is None:
            ui.offer_models(self)
        self._task = BackgroundTask()
        self._shown: list[Any] = []
        self._summary = ui.markdown()
        self._groups = ui.table(pd.DataFrame(), label="groups", selectable=False)
        self._rates = charts.grouped_bars("Rates per group", y_label="rate")
        self._rates_area = ui.ChartArea(self._rates, "Rates per group appear here",
                                        "once a fairness report is logged for this version.")
        self._layout = pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.model_uri, label="Model", width=280,
                                                visible=self.reports is None),
                   pn.widgets.Select.from_param(self.param.attribute, label="Sensitive attribute", width=200)),
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            self._summary,
            self._groups,
            self._rates_area.panel,
            sizing_mode="stretch_width",
        )
        self.load()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("model_uri", "reports", watch=True)
    def load(self) -> None:
        """Read the reports (the logged ones unless ``reports`` is given) and show them."""
        given, uri = self.reports, self.model_uri

        def work(job: Job[list[Any]]) -> list[Any]:
            if given is not None:
                return list(given)
            return logged_fairness(uri) if uri else []

        self._task.start(work, self._show, message="reading fairness reports...")

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the reports are read and shown (for scripts and tests)."""
        return self._task.wait(timeout)

    def _show(self, reports: list[Any]) -> None:
        self._shown = reports
        self._task.message = ""
        attributes = [r.attribute for r in reports]
        self.param.attribute.objects = attributes
        if not reports:
            self._summary.object = ui.empty_state_html(
                f"No fairness report for {self.model_uri} yet",
                "Evaluate one in a notebook with <code>wb.fairness_report(y_true, y_pred, sensitive_features=..., "
                "model_uri=..., log=True)</code>: its groups, rates and gaps appear here.")
            self._groups.value = pd.DataFrame()
            self._groups.visible = False
            self._rates_area.show(False)
            return
        self._groups.visible = True
        if self.attribute not in attributes:
            self.attribute = attributes[0]
        else:
            self._draw()

    @param.depends("attribute", watch=True)
    def _draw(self) -> None:
        report = next((r for r in self._shown if r.attribute == self.attribute), None)
        if report is None:
            return
        disparities = report.disparities()
        flagged = disparities["demographic_parity_difference"] > 0.1 or disparities["equalized_odds_difference"] > 0.1
        verdict = ui.badge("gap above 0.1", "warn") if flagged else ui.badge("gaps within 0.1", "ok")
        self._summary.object = (
            f"**{report.attribute}**: {len(report.by_group)} groups over {report.n_rows:,} rows {verdict}  \n"
            f"demographic parity difference **{disparities['demographic_parity_difference']:.3f}** "
            f"(ratio {disparities['demographic_parity_ratio']:.3f}) · equalized odds difference "
            f"**{disparities['equalized_odds_difference']:.3f}** (ratio {disparities['equalized_odds_ratio']:.3f})"
        )
        self._groups.value = report.to_frame().round(4)
        groups = report.groups
        x = [(group, rate) for group in groups for rate in RATES]
        values = [float(row[rate]) for _, row in report.by_group.iterrows() for rate in RATES]
        palette = charts.colors(len(RATES))
        charts.show_data(
            self._rates,
            {"bars": {"x": x, "value": values, "group": [rate for _ in groups for rate in RATES],
                      "color": [palette[i] for _ in groups for i in range(len(RATES))],
                      "category": [group for group in groups for _ in RATES]}},
            x_factors=x, title=f"Rates per {report.attribute} group",
        )
        self._rates_area.show(True)


class ModelCard(ui.NotebookView, pn.viewable.Viewer):
    """The model card of a version (:func:`workbench.model_card`), with HTML and Markdown downloads."""

    model_uri = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The model version whose card is shown (an alias is resolved when the card is made).""")
    card = param.Parameter(default=None, constant=True, doc="The :class:`workbench.ModelCard` shown (read only).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ui.offer_models(self)
        self._task = BackgroundTask()
        self._html = pn.pane.HTML("", sizing_mode="stretch_width")
        html_download = pn.widgets.FileDownload(callback=lambda: self._download("html"), filename="model-card.html",
                                                label="Download HTML", color="default", embed=False)
        md_download = pn.widgets.FileDownload(callback=lambda: self._download("md"), filename="model-card.md",
                                              label="Download Markdown", color="default", embed=False)
        self._downloads = (html_download, md_download)
        refresh = ui.button("Make the card again", self.make, disabled=self._task.param.running)
        self._layout = pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.model_uri, label="Model", width=280), refresh,
                   html_download, md_download),
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            self._html,
            sizing_mode="stretch_width",
        )
        self.make()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("model_uri", watch=True)
    def make(self) -> None:
        """Make the card afresh (policy checks, fairness, lineage, deployments, audit trail)."""
        uri = self.model_uri
        if not uri:
            self._html.object = "<p>No model version to describe yet.</p>"
            return
        self._task.start(lambda job: wb.model_card(uri), self._show, message=f"making the card of {uri}...")

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the card is made and shown (for scripts and tests)."""
        return self._task.wait(timeout)

    def _show(self, card: Any) -> None:
        with param.edit_constant(self):
            self.card = card
        stem = f"model-card-{card.model_name}-{card.model_version or 'model'}"
        self._downloads[0].filename, self._downloads[1].filename = f"{stem}.html", f"{stem}.md"
        self._html.object = card.to_html()
        self._task.message = ""  # the card's own title says what it is

    def _download(self, kind: str) -> io.BytesIO:
        card = self.card
        text = "" if card is None else card.to_html() if kind == "html" else card.to_markdown()
        return io.BytesIO(text.encode("utf-8"))
