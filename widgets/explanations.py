"""Explanations: why a model version, or what a deployment serves, answers as it does (SHAP).

::

    from workbench.widgets import Explanations
    Explanations(model_uri="models:/churn@champion")   # rows of the reference sample
    Explanations(deployment="churn")                   # the deployment's latest predictions

Local: a waterfall (base value, one bar per feature, the prediction) or a bar chart of one row's
contributions; pick the row in the table. Global: mean |contribution| per feature, and a feature's
dependence (its values against its contributions). For a deployment, also how importance on live
traffic differs from the reference data. Explaining runs on a background thread; the explainer is
fitted once per model version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import BasicTicker

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.widgets import charts, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["Explanations", "importance_bars", "waterfall_steps"]

#: Features drawn one by one in a waterfall; the rest are summed into one bar.
WATERFALL_FEATURES = 10
#: Height of one bar of a horizontal bar chart, in pixels (labels stay readable, never overlap).
BAR_PX = 24


@dataclass(frozen=True)
class _Result:
    model_uri: str
    source: str
    local: Any
    global_: Any
    shift: Any


class Explanations(ui.NotebookView, pn.viewable.Viewer):
    """SHAP explanations of a model version or of a deployment's live traffic: local (waterfall or bar
    for one prediction) and global (importance, dependence)."""

    model_uri = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The model version explained (ignored when ``deployment`` is set).""")
    deployment = param.String(default=None, allow_None=True, doc="""
        Explain what this deployment serves, on its latest logged predictions.""")
    n_rows = param.Integer(default=50, bounds=(1, 5000), doc="""
        Rows explained one by one: the deployment's latest predictions, or the reference sample's first.""")
    max_rows = param.Integer(default=500, bounds=(10, 10_000), doc="Reference rows the global importance averages.")
    top_features = param.Integer(default=15, bounds=(1, 200), doc="""
        Features drawn one by one in the global importance chart; the rest are summed into one bar.""")
    row = param.Integer(default=0, bounds=(0, None), doc="Position of the row drawn in the local chart.")
    plot = param.Selector(default="waterfall", objects=["waterfall", "bar"], doc="How one row is drawn.")
    feature = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Feature whose dependence is drawn (default: the most important).""")
    local_explanation = param.Parameter(default=None, constant=True, doc="""
        :class:`~workbench.LocalExplanation` of the explained rows (read only).""")
    global_explanation = param.Parameter(default=None, constant=True, doc="""
        :class:`~workbench.GlobalExplanation` on the reference sample (read only).""")
    shift = param.Parameter(default=None, constant=True, doc="""
        :class:`~workbench.ImportanceShift` of live traffic against the reference (deployments only).""")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.deployment is None:
            ui.offer_models(self)
        self._task = BackgroundTask()
        self._explainers: dict[str, Any] = {}
        self._summary = ui.markdown()
        self._legend = pn.pane.HTML(ui.legend({charts.POSITIVE_COLOR: "raises the output", charts.NEGATIVE_COLOR: "lowers the output"}),
                                    sizing_mode="stretch_width", margin=(0, 10))
        self._base_note = ui.status_line()
        self._rows = ui.table(pd.DataFrame(), page_size=8, label="explained rows")
        self._rows.param.watch(self._on_row, "selection")
        self._local = charts.waterfall("One prediction")
        self._local_bars = charts.bars("One prediction", x_label="contribution")
        # Shown and hidden through wrappers: a Bokeh pane set back to visible re-reads its figure's
        # (hidden) state and stays hidden.
        # Each pane joins its wrapper once it has data (a figure drawn empty logs a browser warning).
        self._waterfall_box = pn.Column(sizing_mode="stretch_width")
        self._bars_box = pn.Column(sizing_mode="stretch_width", visible=False)
        self._importance = charts.bars("Global importance", x_label="mean |contribution|")
        self._dependence = charts.scatter("Dependence", x_label="value", y_label="contribution")
        self._shift = ui.table(pd.DataFrame(), label="importance shift", selectable=False, visible=False)
        explain = ui.button("Explain", self.explain, color="primary", disabled=self._task.param.running)
        target = (pn.widgets.StaticText(label="Deployment", value=self.deployment) if self.deployment
                  else pn.widgets.Select.from_param(self.param.model_uri, label="Model", width=280))
        self._importance_area = ui.ChartArea(self._importance, "Feature importance appears here",
                                             "once the model is explained: press <b>Explain</b>.")
        self._dependence_area = ui.ChartArea(self._dependence, "A feature's dependence appears here",
                                             "once the model is explained: pick a feature in <b>Dependence on</b>.")
        self._local_area = pn.Column(ui.empty_state("One prediction's explanation appears here",
                                                    "once the model is explained: pick a row in the table."),
                                     sizing_mode="stretch_width")
        self._local_charts = pn.Column(self._legend, self._waterfall_box, self._bars_box, self._base_note,
                                       sizing_mode="stretch_width")
        self._layout = pn.Column(
            pn.Row(
                target,
                pn.widgets.IntInput.from_param(self.param.n_rows, label="Rows to explain", width=120),
                pn.widgets.RadioButtonGroup.from_param(self.param.plot, align="end"),
                pn.widgets.Select.from_param(self.param.feature, label="Dependence on", width=180),
                explain,
            ),
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            self._summary,
            self._rows,
            pn.Row(self._local_area, self._importance_area.panel, sizing_mode="stretch_width"),
            pn.Row(self._dependence_area.panel, pn.Column(ui.markdown("#### Importance: live vs reference"), self._shift,
                                                    sizing_mode="stretch_width", visible=bool(self.deployment)),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.explain()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- explaining ------------------------------------------------------------------------------

    @param.depends("model_uri", "deployment", watch=True)
    def explain(self) -> bool:
        """Explain the rows and the reference sample again (off the event loop)."""
        uri, deployment, n_rows, max_rows = self.model_uri, self.deployment, self.n_rows, self.max_rows

        def work(job: Job[_Result]) -> _Result:
            rows = None
            source = "the reference sample"
            if deployment:
                dep = wb.get_deployment(deployment)
                model_uri = dep.model_uri
                job.update(0.05, f"reading the latest predictions of {deployment}...", force=True)
                logged = dep.recent_rows(n_rows).frame
                if len(logged):
                    rows = logged
                    source = f"the latest {len(rows):,} predictions of {deployment}"
                else:
                    source = f"the reference sample ({deployment} has logged no predictions yet)"
            elif uri:
                model_uri = uri
            else:
                raise InvalidInputError("pick a model version (or give a deployment) to explain")
            explainer = self._explainers.get(model_uri)
            if explainer is None:
                job.update(0.1, f"loading {model_uri} and building its explainer...", force=True)
                explainer = wb.Explainer().fit(model_uri)
                self._explainers[model_uri] = explainer
            if rows is None:
                if explainer.reference_ is None:
                    raise InvalidInputError(f"{model_uri} has no reference sample to explain: log it with "
                                            "workbench.log_model(model, training_data=X)")
                rows = explainer.reference_.head(n_rows)
            job.update(0.3, f"explaining {ui.plural(len(rows), 'row')}...", force=True)
            local = explainer.explain(rows)
            job.update(0.6, "averaging over the reference sample...", force=True)
            global_ = explainer.explain_global(max_rows=max_rows)
            shift = wb.ImportanceShift.compare(global_, local.global_importance()) if deployment else None
            return _Result(model_uri, source, local, global_, shift)

        return self._task.start(work, self._show, message="explaining...")

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until the running explanation is done (for scripts and tests)."""
        return self._task.wait(timeout)

    def _show(self, result: _Result) -> None:
        local, global_ = result.local, result.global_
        with param.edit_constant(self):
            self.param.update(local_explanation=local, global_explanation=global_, shift=result.shift)
        explained = _output_words(local)
        self._summary.object = (
            f"`{result.model_uri}` explained with SHAP ({local.method}); each bar is a feature's contribution "
            f"to the **{explained}**. Rows: {result.source}. Global importance over {global_.n_rows:,} reference rows."
        )
        self._legend.object = ui.legend({charts.POSITIVE_COLOR: f"raises the {explained.replace('each ', 'the ')}",
                                         charts.NEGATIVE_COLOR: f"lowers the {explained.replace('each ', 'the ')}"})
        self._task.message = f"{ui.plural(len(local), 'row')} explained"
        table = local.to_frame()[[c for c in ("target", "prediction", "base_value") if c in local.to_frame()]]
        self._rows.value = pd.concat([table, local.data.reset_index(drop=True)], axis=1).round(4)
        self.param.row.bounds = (0, max(0, len(local) - 1))
        bars = importance_bars(global_.importance, self.top_features)
        self._importance.figure.height = 90 + BAR_PX * len(bars["label"])
        self._importance.pane.height = self._importance.figure.height
        charts.show_data(self._importance, {"bars": bars}, y_factors=bars["label"],
                         title=f"Global importance: mean |contribution| over {global_.n_rows:,} rows")
        self._importance_area.show(bool(len(bars["label"])))
        if self._local_area.objects[0] is not self._local_charts:
            self._local_area[:] = [self._local_charts]
        self.param.feature.objects = global_.ranking
        if result.shift is not None:
            self._shift.value = result.shift.to_frame().round(4)
            self._shift.visible = True
        if self.feature not in global_.ranking:
            self.feature = global_.ranking[0] if global_.ranking else None
        else:
            self._show_dependence()
        if self.row >= len(local):
            self.row = 0
        else:
            self._show_row()

    @param.depends("row", "plot", watch=True)
    def _show_row(self) -> None:
        local = self.local_explanation
        if local is None or not len(local):
            return
        i = min(self.row, len(local) - 1)
        self._rows.selection = [i]
        row = local.row(i)
        base, prediction = float(local.base_values[i]), float(local.predictions[i])
        title = f"Row {i}: from the base value {base:.4g} to {_output_words(local, i)} {prediction:.4g}"
        self._base_note.object = ui.status_html(
            f"Base value {base:.4g}: the model's average {_output_words(local, i)} over the reference sample, "
            f"before any feature is known; the bars add up from it to this row's {prediction:.4g}.")
        waterfall = self.plot == "waterfall"
        self._waterfall_box.visible, self._bars_box.visible = waterfall, not waterfall
        if waterfall:
            steps = waterfall_steps(row, base)
            self._local.figure.height = self._local.pane.height = 90 + BAR_PX * len(steps["label"])
            charts.show_data(self._local, {"steps": steps}, y_factors=steps["label"], title=title)
            if not self._waterfall_box.objects:
                self._waterfall_box[:] = [self._local.pane]
        else:
            shown = row.iloc[::-1]
            labels = [f"{f} = {_value(v)}" for f, v in zip(shown["feature"], shown["value"], strict=True)]
            contributions = shown["contribution"].to_numpy(dtype=float)
            charts.show_data(
                self._local_bars,
                {"bars": {"label": labels, "value": contributions,
                          "color": [charts.POSITIVE_COLOR if c > 0 else charts.NEGATIVE_COLOR for c in contributions]}},
                y_factors=labels, title=title,
            )
            if not self._bars_box.objects:
                self._bars_box[:] = [self._local_bars.pane]

    @param.depends("feature", watch=True)
    def _show_dependence(self) -> None:
        global_ = self.global_explanation
        if global_ is None or not self.feature or global_.local is None:
            return
        frame = global_.dependence(self.feature).to_frame()
        numeric = pd.to_numeric(frame["value"], errors="coerce")
        axis = self._dependence.figure.xaxis[0]
        if numeric.isna().any():
            categories = sorted(frame["value"].astype(str).unique())
            codes = frame["value"].astype(str).map({c: i for i, c in enumerate(categories)}).to_numpy()
            x = codes + np.random.default_rng(0).uniform(-0.2, 0.2, len(codes))
            axis.ticker = list(range(len(categories)))
            axis.major_label_overrides = {i: c for i, c in enumerate(categories)}
        else:
            x = numeric.to_numpy()
            axis.ticker = BasicTicker()
            axis.major_label_overrides = {}
        contributions = frame["contribution"].to_numpy(dtype=float)
        self._dependence.figure.xaxis.axis_label = self.feature
        charts.show_data(
            self._dependence,
            {"points": {"x": x, "y": contributions, "label": frame["value"].astype(str).tolist(),
                        "color": [charts.POSITIVE_COLOR if c > 0 else charts.NEGATIVE_COLOR for c in contributions]}},
            title=f"Dependence on {self.feature} ({ui.plural(len(frame), 'reference row')})",
        )
        self._dependence_area.show(bool(len(frame)))

    def _on_row(self, event: Any) -> None:
        if event.new:
            self.row = int(event.new[0])


def waterfall_steps(row: pd.DataFrame, base_value: float, *, top: int = WATERFALL_FEATURES) -> dict[str, list[Any]]:
    """The bars of a waterfall for one row (as :meth:`LocalExplanation.row` gives it): the ``top``
    largest contributions one by one from ``base_value``, the rest summed, largest at the top."""
    shown = row.head(top)
    rest = row.iloc[top:]
    labels = [f"{f} = {_value(v)}" for f, v in zip(shown["feature"], shown["value"], strict=True)]
    values = shown["contribution"].astype(float).tolist()
    if len(rest):
        labels.append(f"{len(rest)} other features")
        values.append(float(rest["contribution"].astype(float).sum()))
    # Drawn from the bottom (the rest) up to the largest, so the eye follows base -> prediction upwards.
    labels, values = labels[::-1], values[::-1]
    starts, ends = [], []
    position = base_value
    for value in values:
        starts.append(position)
        position += value
        ends.append(position)
    return {"label": labels, "start": starts, "end": ends, "value": values,
            "color": [charts.POSITIVE_COLOR if v > 0 else charts.NEGATIVE_COLOR for v in values]}


def importance_bars(importance: pd.DataFrame, top: int) -> dict[str, list[Any]]:
    """The bars of the global importance chart: the ``top`` features by mean |contribution| one by
    one, the rest summed into one bar ("N other features"), largest at the top."""
    ranked = importance.sort_values("mean_abs_contribution", ascending=False, kind="stable")
    shown, rest = ranked.head(top), ranked.iloc[top:]
    labels = shown["feature"].astype(str).tolist()
    values = shown["mean_abs_contribution"].astype(float).tolist()
    colors = [charts.CURRENT_COLOR] * len(labels)
    if len(rest):
        labels.append(f"{len(rest)} other features (summed)")
        values.append(float(rest["mean_abs_contribution"].astype(float).sum()))
        colors.append(charts.REFERENCE_COLOR)
    return {"label": labels[::-1], "value": values[::-1], "color": colors[::-1]}


def _output_words(local: Any, row: int | None = None) -> str:
    """What the contributions add up to, with the class named: ``probability of class 1``."""
    output = str(local.output).replace("_", " ")
    if local.targets is None:
        return output
    if row is not None:
        return f"{output} of class {local.targets[row]}"
    classes = {str(t) for t in local.targets}
    # Each row explains the class in its "target" column (the class it predicts) when they differ.
    return f"{output} of class {classes.pop()}" if len(classes) == 1 else f"{output} of each row's target class"


def _value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)
