"""RunView: one run as people browse it in MLflow's run page: its params, metrics (with their curves),
tags, artifacts, and the models it logged, linked to its experiment and to the versions registered
from it.

::

    from workbench.widgets import RunView
    RunView(run_id="3f2a...")                     # in a notebook cell; the review app: review?run=<id>
"""

from __future__ import annotations

import html
import urllib.parse
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.widgets import charts, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["RunView", "run_link", "experiment_link", "version_link"]


def run_link(run_id: str, label: str | None = None) -> str:
    """HTML link to a run's page in the review app."""
    return f"<a href='review?run={urllib.parse.quote(run_id)}'>{html.escape(label or run_id[:8])}</a>"


def experiment_link(name: str) -> str:
    """HTML link to an experiment's runs in the review app."""
    return f"<a href='review?experiment={urllib.parse.quote(name)}'>{html.escape(name)}</a>"


def version_link(name: str, version: str) -> str:
    """HTML link to a model version's review."""
    return (f"<a href='review?model={urllib.parse.quote(name)}&version={urllib.parse.quote(str(version))}'>"
            f"{html.escape(name)} v{html.escape(str(version))}</a>")


def deployment_link(name: str) -> str:
    """HTML link to a deployment's page in the review app."""
    return f"<a href='review?deployment={urllib.parse.quote(name)}'>{html.escape(name)}</a>"


class RunView(ui.NotebookView, pn.viewable.Viewer):
    """One run: header (status, experiment, times, who), the models it logged and the versions
    registered from it, params, metrics with a chart of the one picked, tags, artifacts."""

    run_id = param.String(default="", doc="The run shown.")
    metric = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The metric whose values over steps are drawn.""")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._task = BackgroundTask()
        self._header = pn.pane.HTML("", sizing_mode="stretch_width")
        self._models = pn.pane.HTML("", sizing_mode="stretch_width")
        self._params = ui.table(pd.DataFrame(columns=["parameter", "value"]), label="params", selectable=False)
        self._metrics = ui.table(pd.DataFrame(columns=["metric", "value"]), label="metrics", selectable=False)
        self._tags = ui.table(pd.DataFrame(columns=["tag", "value"]), label="tags", selectable=False)
        self._artifacts = ui.table(pd.DataFrame(columns=["path", "size"]), label="artifacts", selectable=False)
        self._no_artifacts = ui.empty_state("No files logged on this run",
                                            "Files logged with <code>mlflow.log_artifact</code> list here; a model's "
                                            "files are kept with the model (see <b>Models it logged</b>).",
                                            visible=False)
        self._curve = charts.lines("Metric over steps", x_label="step", y_label="value")
        self._curve_area = ui.ChartArea(self._curve, "A metric's values over steps appear here",
                                        "for a metric logged at several steps (<code>mlflow.log_metric(key, value, step=i)</code>).")
        self._layout = pn.Column(
            self._header,
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            pn.Row(
                pn.Column(ui.header("Parameters"), self._params, ui.header("Metrics"), self._metrics,
                          sizing_mode="stretch_width"),
                pn.Column(ui.header("Models it logged"), self._models,
                          pn.widgets.Select.from_param(self.param.metric, label="Metric", width=240),
                          self._curve_area.panel, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            pn.Row(pn.Column(ui.header("Tags"), self._tags, sizing_mode="stretch_width"),
                   pn.Column(ui.header("Artifacts"), self._no_artifacts, self._artifacts, sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.load()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the run has loaded (for scripts and tests)."""
        return self._task.wait(timeout)

    @param.depends("run_id", watch=True)
    def load(self) -> None:
        """Read the run again (off the event loop)."""
        run_id = self.run_id
        if not run_id:
            self._header.object = ui.empty_state_html("No run picked", "Open a run from an experiment's runs table.")
            return

        def work(job: Job[dict[str, Any]]) -> dict[str, Any]:
            run = wb.get_run(run_id)
            experiment = next((e.name for e in wb.experiments() if e.experiment_id == run.experiment_id), None)
            job.update(None, "reading its models and artifacts...")
            original = run.tags.get("workbench.reproduction_of")
            return {"run": run, "experiment": experiment, "versions": wb.versions_of_run(run_id),
                    "models": wb.run_models(run_id), "artifacts": wb.run_artifacts(run_id),
                    "original": wb.get_run(original) if original and len(original) == 32 else None}

        self._task.start(work, self._show, message="reading the run...")

    def _show(self, found: dict[str, Any]) -> None:
        run = found["run"]
        took = (run.end_time - run.start_time) if run.end_time is not None and run.start_time is not None else None
        facts = [f"run {html.escape(run.run_id)}"]
        if found["experiment"]:
            facts.append(f"experiment {experiment_link(found['experiment'])}")
        facts.append(f"started {ui.when(run.start_time)}")
        if took is not None:
            facts.append(f"took {took.total_seconds():.1f} s")
        facts.append(f"by {html.escape(run.user or '-')}")
        original = found["original"]
        reproduces = (f"<div>{ui.badge('reproduction', 'info')} of {run_link(original.run_id, original.name)}</div>"
                      if original is not None else "")
        kind = "ok" if run.status == "FINISHED" else ("drift" if run.status == "FAILED" else "warn")
        self._header.object = (f"<h2 style='margin:4px 0'>{html.escape(run.name or run.run_id[:8])} "
                               f"{ui.badge(run.status.lower(), kind)}</h2>"
                               f"<div style='color:#57606a'>{' · '.join(facts)}</div>{reproduces}")
        versions = found["versions"]
        items = [f"<li>{version_link(v.name, v.version)} {' '.join(ui.badge('@' + a) for a in v.aliases)}</li>"
                 for v in versions]
        registered = {v.source for v in versions}
        items += [f"<li><code>{html.escape(uri)}</code> (not registered)</li>" for uri in found["models"]
                  if uri not in registered]
        self._models.object = (f"<ul style='margin:0;padding-left:18px'>{''.join(items)}</ul>" if items else
                               ui.empty_state_html("No model logged by this run",
                                                   "A run that calls <code>workbench.log_model</code> lists it here."))
        self._params.value = pd.DataFrame(sorted(run.params.items()), columns=["parameter", "value"])
        self._metrics.value = pd.DataFrame([(k, _number(v)) for k, v in sorted(run.metrics.items())],
                                           columns=["metric", "value"])
        self._tags.value = pd.DataFrame(sorted(run.tags.items()), columns=["tag", "value"])
        self._artifacts.value = pd.DataFrame([(a.path, _size(a.size)) for a in found["artifacts"]],
                                             columns=["path", "size"])
        self._artifacts.visible = bool(found["artifacts"])
        self._no_artifacts.visible = not found["artifacts"]
        self.param.metric.objects = sorted(run.metrics)
        if self.metric not in run.metrics:
            self.metric = next(iter(sorted(run.metrics)), None)
        else:
            self._draw()
        self._task.message = ""

    @param.depends("metric", watch=True)
    def _draw(self) -> None:
        if not self.metric or not self.run_id:
            self._curve_area.show(False)
            return
        history = wb.metric_history(self.run_id, self.metric)
        if len(history) < 2:
            self._curve_area.show(False, f"{self.metric} was logged once ({_number(history['value'].iloc[0]) if len(history) else '-'})",
                                  "A metric logged at several steps draws a curve here.")
            return
        charts.show_lines(self._curve, [(self.metric, history["step"].to_numpy(), history["value"].to_numpy())],
                          title=f"{self.metric} over {ui.plural(len(history), 'step')}")
        self._curve_area.show(True)


def _number(value: Any) -> str:
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return "-"
