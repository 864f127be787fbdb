"""ExperimentBrowser: the runs of an experiment as a table, with comparison and plots.

::

    from workbench.widgets import ExperimentBrowser
    ExperimentBrowser(experiment="churn")           # in a notebook cell

Runs load from MLflow in pages on a background thread (:func:`workbench.tracking.iter_runs`): the
first page shows at once, the rest streams in while the table stays usable. The table pages on the
server, so only the rows on screen reach the browser, whatever the number of runs (10,000 runs stay
responsive; see ``benchmarks/widgets``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import BasicTicker
from bokeh.models.widgets.tables import NumberFormatter

import workbench as wb
from workbench.tracking import iter_runs
from workbench.widgets import charts, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["ExperimentBrowser"]

#: At most this many picked runs get metric curves (more lines would be unreadable).
MAX_CURVES = 10
_BASE_COLUMNS = ["name", "reproduces", "status", "user", "start_time"]


#: Runs in the first request: what MLflow's own UI asks for, so the first rows show as fast as there.
FIRST_PAGE = 100


class ExperimentBrowser(ui.NotebookView, pn.viewable.Viewer):
    """Runs of one experiment: a sortable, filterable table; tick runs to compare them side by side
    and draw their metric curves over steps; a scatter of a parameter against a metric over all runs.
    """

    experiment = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Name of the experiment shown (default: the most recently created one).""")
    filter_string = param.String(default="", doc="""
        MLflow search filter applied when loading, e.g. ``metrics.accuracy > 0.9 and params.depth = '6'``.""")
    page_size = param.Integer(default=1000, bounds=(10, 50_000), doc="""
        Runs fetched from MLflow per request while loading.""")
    selected_runs = param.List(default=[], item_type=str, doc="""
        Run ids picked for comparison (the ticked rows); set it to pick runs from code.""")
    metric = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Metric drawn over steps for the picked runs and on the scatter's y axis.""")
    x_param = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Parameter on the scatter's x axis.""")
    runs = param.DataFrame(default=None, constant=True, doc="""
        Every run loaded so far: one row per run, ``metrics.*`` and ``params.*`` columns (read only).""")
    loaded = param.Integer(default=0, constant=True, doc="Number of runs loaded so far (read only).")
    columns = param.ListSelector(default=[], objects=[], doc="""
        The ``metrics.*`` and ``params.*`` columns the runs table shows (default: every metric, then
        every param; the user picks them in "Columns").""")
    run_url = param.String(default="review?run=", doc="""
        Where a run's name links to (its id is appended): the review app's run page; empty for no links.""")
    show_internal = param.Boolean(default=False, doc="""
        Offer the workbench's own bookkeeping experiments (training data snapshots) too.""")

    def __init__(self, **params: Any) -> None:
        found = wb.experiments()
        names = [e.name for e in found if params.get("show_internal") or not e.internal]
        if params.get("experiment") is None and names:
            params["experiment"] = names[0]
        elif params.get("experiment") is not None and params["experiment"] not in names:
            names.append(params["experiment"])  # asked for by name: shown, even the internal one
        super().__init__(**params)
        self.param.experiment.objects = names
        self._picked_columns = False  # the user chose columns: new ones stay hidden until chosen
        self._loader = BackgroundTask()
        self._details = BackgroundTask()
        self._frames: list[pd.DataFrame] = []
        self._syncing = False

        self._links: dict[str, Any] = (
            {"name": {"type": "link", "urlPrefix": self.run_url, "urlField": "run_id", "target": "_self"}}
            if self.run_url else {})
        self._table = ui.table(page_size=20, selectable="checkbox", header_filters=True,
                               hidden_columns=["run_id"], label="runs", formatters=dict(self._links))
        self._table.param.watch(self._on_ticked, "selection")
        reload = ui.button("Reload", self.load, color="default")
        self._summary = ui.status_line()
        self._curves = charts.lines("Metric over steps", x_label="step", y_label="value")
        self._scatter = charts.scatter("Parameter vs metric", x_label="", y_label="")
        self._curves_area = ui.ChartArea(
            self._curves, "Metric curves appear here",
            "Tick runs in the table (the box at the start of each row) to draw the picked metric over steps.")
        self._scatter_area = ui.ChartArea(
            self._scatter, "A parameter against a metric appears here",
            "once runs of this experiment logged both (<code>mlflow.log_param</code>, <code>mlflow.log_metric</code>).")
        self._comparison = ui.table(label="comparison", show_index=True, selectable=False, visible=False)
        self._comparison_empty = ui.empty_state("Picked runs side by side",
                                                "Tick two or more runs in the table to compare their metrics and parameters.")
        # A plain multiple select: Bokeh's MultiChoice (Choices.js) logs a deprecation warning in the browser.
        choose = pn.widgets.MultiSelect.from_param(self.param.columns, label="Columns (ctrl-click to pick)",
                                                   width=360, size=4)
        choose.param.watch(self._on_choose, "value")
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.experiment, label="Experiment", width=260),
                pn.widgets.TextInput.from_param(self.param.filter_string, label="Filter (MLflow search syntax)",
                                                placeholder="metrics.accuracy > 0.9", width=380),
                reload,
                choose,
                pn.widgets.Checkbox.from_param(self.param.show_internal, label="internal experiments", align="end"),
            ),
            ui.progress_row(self._loader),
            ui.error_alert(self._loader),
            self._summary,
            self._table,
            pn.Row(
                pn.widgets.Select.from_param(self.param.metric, label="Metric", width=220),
                pn.widgets.Select.from_param(self.param.x_param, label="Parameter (scatter x axis)", width=220),
                ui.progress_row(self._details),
            ),
            ui.error_alert(self._details),
            pn.Row(self._curves_area.panel, self._scatter_area.panel, sizing_mode="stretch_width"),
            ui.header("Picked runs side by side", "Metrics and parameters of the ticked runs, one column per run."),
            self._comparison_empty,
            self._comparison,
            sizing_mode="stretch_width",
        )
        self.load()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- loading -----------------------------------------------------------------------------------

    @param.depends("experiment", "filter_string", watch=True)
    def load(self) -> None:
        """(Re)load the runs of ``experiment`` matching ``filter_string``, page by page, off the
        event loop; an earlier load still running is abandoned."""
        self._frames = []
        self._show_runs(pd.DataFrame(columns=["run_id", *_BASE_COLUMNS]))
        if not self.experiment:
            self._summary.object = ui.empty_state_html(
                "No experiment yet", "Start a run with <code>workbench.start_run(experiment=...)</code>; its runs appear here.")
            return
        experiment, filter_string, page_size = self.experiment, self.filter_string, self.page_size

        def work(job: Job[int]) -> int:
            total = 0
            pages = iter_runs(experiment, filter_string=filter_string, page_size=page_size,
                              first_page=min(FIRST_PAGE, page_size))
            for page in pages:
                if job.cancelled:
                    break
                total += len(page)
                job.ui(lambda page=page: self._append(page))
                job.update(None, force=True)  # the count shows in the summary, as the rows arrive
            return total

        self._loader.start(work, self._loaded, message=f"loading runs of {experiment}...")

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until loading and the picked runs' details are done (for scripts and tests)."""
        return self._loader.wait(timeout) and self._details.wait(timeout)

    def _append(self, page: pd.DataFrame) -> None:
        self._frames.append(_display_frame(page))
        frame = pd.concat(self._frames, ignore_index=True) if len(self._frames) > 1 else self._frames[0]
        columns = ["run_id", *_BASE_COLUMNS]
        columns += sorted(c for c in frame.columns if c.startswith("metrics."))
        columns += sorted(c for c in frame.columns if c.startswith("params."))
        self._show_runs(frame[columns])

    @param.depends("show_internal", watch=True)
    def _offer_experiments(self) -> None:
        names = [e.name for e in wb.experiments() if self.show_internal or not e.internal]
        if self.experiment and self.experiment not in names:
            names.append(self.experiment)
        self.param.experiment.objects = names

    def _on_choose(self, event: Any) -> None:
        if not self._syncing:
            self._picked_columns = True
        self._hide_columns()

    def _hide_columns(self) -> None:
        frame = self._table.value
        if frame is None:
            return
        shown = set(self.columns)
        # A reproduction says so in its own column, shown once the experiment has one.
        quiet = ["reproduces"] if "reproduces" in frame and not frame["reproduces"].astype(bool).any() else []
        self._table.hidden_columns = ["run_id", *quiet, *(c for c in frame.columns
                                                          if c.startswith(("metrics.", "params.")) and c not in shown)]
        # Headers as MLflow's runs table has them: the key under its group (Metrics, Parameters).
        self._table.titles = {c: c.split(".", 1)[1] for c in frame.columns if c.startswith(("metrics.", "params."))}
        # Metrics as numbers are read: thousands grouped, at most four decimals (0.948333 shows as 0.9483).
        self._table.formatters = {**self._links, **{c: NumberFormatter(format="0,0.[0000]") for c in frame.columns
                                                    if c.startswith("metrics.")}}
        self._table.groups = {group: [c for c in frame.columns if c.startswith(prefix)]
                              for group, prefix in (("Metrics", "metrics."), ("Parameters", "params."))
                              if any(c.startswith(prefix) for c in frame.columns)}

    def _show_runs(self, frame: pd.DataFrame) -> None:
        with param.edit_constant(self):
            self.param.update(runs=frame, loaded=len(frame))
        self._syncing = True
        try:
            optional = [c for c in frame.columns if c.startswith(("metrics.", "params."))]
            chosen = [c for c in self.columns if c in optional] if self._picked_columns else optional
            self.param.columns.objects = optional
            self.columns = chosen
            self._table.value = frame
            self._hide_columns()
            self._table.selection = _positions(frame, self.selected_runs)
        finally:
            self._syncing = False
        metrics = [c.removeprefix("metrics.") for c in frame.columns if c.startswith("metrics.")]
        params = [c.removeprefix("params.") for c in frame.columns if c.startswith("params.")]
        self.param.metric.objects = metrics
        self.param.x_param.objects = params
        if metrics and self.metric not in metrics:
            self.metric = metrics[0]
        if params and self.x_param not in params:
            self.x_param = params[0]
        self._summary.object = ui.status_html(f"{ui.plural(len(frame), 'run')} of {self.experiment}") if self.experiment else ""

    def _loaded(self, total: int) -> None:
        self._loader.message = ""  # the summary above the table counts them
        self._draw_scatter()

    # -- picking and comparing -------------------------------------------------------------------

    def _on_ticked(self, event: Any) -> None:
        if self._syncing or self.runs is None:
            return
        ids = self.runs["run_id"].iloc[list(event.new)].tolist() if len(event.new) else []
        self.selected_runs = ids

    @param.depends("selected_runs", "metric", watch=True)
    def _show_picked(self) -> None:
        if self.runs is not None and not self._syncing:
            wanted = _positions(self.runs, self.selected_runs)
            if sorted(wanted) != sorted(self._table.selection):
                self._syncing = True
                try:
                    self._table.selection = wanted
                finally:
                    self._syncing = False
        run_ids, metric = list(self.selected_runs), self.metric

        def work(job: Job[tuple[pd.DataFrame, list[tuple[str, pd.DataFrame]]]]) -> Any:
            comparison = wb.compare_runs(run_ids) if run_ids else pd.DataFrame()
            curves = []
            for run_id in run_ids[:MAX_CURVES]:
                if metric:
                    curves.append((run_id, wb.metric_history(run_id, metric)))
            return comparison, curves

        self._details.start(work, self._show_details, message="reading the picked runs...")

    def _show_details(self, result: tuple[pd.DataFrame, list[tuple[str, pd.DataFrame]]]) -> None:
        comparison, curves = result
        self._comparison.value = comparison.astype(str).replace({"nan": "-", "None": "-"}) if len(comparison) else comparison
        self._comparison.visible = bool(len(comparison))
        self._comparison_empty.visible = not len(comparison)
        names = self._names()
        charts.show_lines(
            self._curves,
            [(names.get(run_id, run_id[:8]), history["step"].to_numpy(), history["value"].to_numpy())
             for run_id, history in curves],
            title=f"{self.metric} over steps" if self.metric else "Metric over steps",
        )
        self._curves_area.show(bool(curves) and any(len(h) for _, h in curves),
                               None if not curves else f"No {self.metric} logged over steps by the picked runs",
                               "Runs that log a metric at several steps (<code>mlflow.log_metric(key, value, step=i)</code>) draw a curve here.")
        self._details.message = f"{ui.plural(len(self.selected_runs), 'run')} picked" if self.selected_runs else ""
        self._draw_scatter()

    @param.depends("x_param", watch=True)
    def _draw_scatter(self) -> None:
        frame = self.runs
        if frame is None or not self.metric or not self.x_param:
            return
        y_col, x_col = f"metrics.{self.metric}", f"params.{self.x_param}"
        if y_col not in frame or x_col not in frame:
            return
        # Runs that did not log the parameter (another model family) are left out of the scatter.
        data = frame[["run_id", "name", x_col, y_col]].dropna(subset=[y_col, x_col])
        if not len(data):
            self._scatter_area.show(False)
            return
        numeric = pd.to_numeric(data[x_col], errors="coerce")
        axis = self._scatter.figure.xaxis[0]
        if numeric.isna().any():
            # Text parameters: one column of points per value, spread a little so they do not overlap.
            text = data[x_col].astype(str)
            categories = sorted(text.unique())
            codes = text.map({c: i for i, c in enumerate(categories)}).to_numpy()
            x = codes + np.random.default_rng(0).uniform(-0.2, 0.2, len(codes))
            axis.ticker = list(range(len(categories)))
            axis.major_label_overrides = {i: c for i, c in enumerate(categories)}
        else:
            x = numeric.to_numpy()
            axis.ticker = BasicTicker()
            axis.major_label_overrides = {}
        picked = set(self.selected_runs)
        self._scatter.figure.xaxis.axis_label = self.x_param
        self._scatter.figure.yaxis.axis_label = self.metric
        charts.show_data(
            self._scatter,
            {"points": {
                "x": x, "y": data[y_col].to_numpy(),
                "label": data["name"].astype(str).to_numpy(),
                "color": np.where(data["run_id"].isin(picked), charts.POSITIVE_COLOR, charts.CURRENT_COLOR),
            }},
            title=f"{self.metric} vs {self.x_param} ({ui.plural(len(data), 'run')})",
        )
        self._scatter_area.show(True)  # after its data: a figure drawn empty logs a warning in the browser

    def _names(self) -> dict[str, str]:
        if self.runs is None or not len(self.runs):
            return {}
        picked = self.runs[self.runs["run_id"].isin(self.selected_runs)]
        return {r: (n or r[:8]) for r, n in zip(picked["run_id"], picked["name"], strict=True)}


def _display_frame(page: pd.DataFrame) -> pd.DataFrame:
    """Times as sortable text (the table shows them in the browser's locale otherwise, and time
    zones vary), the rest as MLflow gave it."""
    frame = page.drop(columns=["end_time"], errors="ignore").copy()
    if "reproduction_of" in frame:
        # A reproduction (workbench.reproduce) says so, next to its name: it is not a second original.
        names = dict(zip(frame["run_id"], frame["name"], strict=True))
        frame["reproduces"] = frame.pop("reproduction_of").map(
            lambda r: f"reproduction of {names.get(r) or ui.short(r)}" if isinstance(r, str) and r else "")
    if "start_time" in frame:
        frame["start_time"] = frame["start_time"].map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if pd.notna(t) else "")
    return frame


def _positions(frame: pd.DataFrame, run_ids: list[str]) -> list[int]:
    if not run_ids or frame is None or not len(frame):
        return []
    mask = frame["run_id"].isin(run_ids).to_numpy()
    return [int(i) for i in np.flatnonzero(mask)]
