"""The Bokeh figures the components draw, and one way to change their data.

Each figure is made once with its ``ColumnDataSource``\\ s and updated in place with
:func:`show_data` (or :func:`show_lines`), which works on a served page (Bokeh syncs the change over
the websocket) and in a notebook (where Panel needs :func:`panel.io.push_notebook` for Bokeh objects
changed directly). Nothing here loads anything from outside the machine: Bokeh's JavaScript comes
with Panel's bundled resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, DatetimeTickFormatter, FactorRange, HoverTool, Range1d
from bokeh.models import LabelSet, Span  # type: ignore[attr-defined]  # re-exported at run time; the stubs miss them
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

__all__ = [
    "PALETTE",
    "Chart",
    "bars",
    "colors",
    "grouped_bars",
    "lines",
    "scatter",
    "show_data",
    "show_lines",
    "show_timeline",
    "timeline",
    "waterfall",
]

PALETTE: tuple[str, ...] = tuple(Category10_10)
REFERENCE_COLOR = "#8c8c8c"
CURRENT_COLOR = "#1f77b4"
POSITIVE_COLOR = "#d62728"
NEGATIVE_COLOR = "#1f77b4"

#: Tick labels of time axes at every zoom level (Bokeh's default shows microseconds for a few seconds).
#: Hours carry the weekday and days the date, so "accuracy fell on Tuesday" reads off the axis.
_TIME_FORMATS = {
    "microseconds": "%H:%M:%S", "milliseconds": "%H:%M:%S", "seconds": "%H:%M:%S", "minsec": "%H:%M:%S",
    "minutes": "%H:%M", "hourmin": "%a %H:%M", "hours": "%a %H:%M", "days": "%a %b %d", "months": "%b %Y",
    "years": "%Y",
}

#: Colour of audit events (deploys, promotions, ...) on a timeline, and of alert markers.
EVENT_COLOR = "#6a3d9a"
ALERT_COLOR = "#d62728"


@dataclass(frozen=True)
class Chart:
    """A figure, the sources it draws, and the Panel pane that shows it."""

    figure: Any
    sources: Mapping[str, ColumnDataSource]
    pane: pn.pane.Bokeh
    #: Optional reference lines (thresholds) the data updates may move.
    spans: Mapping[str, Span] = field(default_factory=dict)
    #: The categorical ranges, kept here so updates change these very objects.
    x_range: FactorRange | None = None
    y_range: FactorRange | None = None


def _figure(title: str, *, x_label: str = "", y_label: str = "", height: int = 300,
            x_range: FactorRange | None = None, y_range: FactorRange | None = None, datetime_x: bool = False,
            tooltips: Sequence[tuple[str, str]] = ()) -> Any:
    options: dict[str, Any] = {}
    if datetime_x:
        options["x_axis_type"] = "datetime"
    if x_range is not None:
        options["x_range"] = x_range
    if y_range is not None:
        options["y_range"] = y_range
    fig = figure(title=title, height=height, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                 toolbar_location="right", **options)
    fig.toolbar.logo = None
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.title.text_font_size = "12pt"  # type: ignore[union-attr]  # a Title: figure(title=str) made it
    fig.min_border_left = 50
    if datetime_x:
        # A new formatter per figure: a Bokeh model belongs to one document (one browser session).
        fig.xaxis.formatter = DatetimeTickFormatter(**_TIME_FORMATS)  # type: ignore[arg-type]
    if tooltips:
        fig.add_tools(HoverTool(tooltips=list(tooltips), formatters={"@x": "datetime"} if datetime_x else {}))
    return fig


def lines(title: str, *, x_label: str, y_label: str, height: int = 300, datetime_x: bool = False) -> Chart:
    """One line per series, with a marker on every point (a series of one point still shows).

    Fill it with :func:`show_lines`. ``datetime_x``: the x values are times. An optional
    ``threshold`` span marks a limit across the plot."""
    x_format = "@x{%H:%M:%S}" if datetime_x else "@x{0.[00]}"
    fig = _figure(title, x_label=x_label, y_label=y_label, height=height, datetime_x=datetime_x,
                  tooltips=[("", "@label"), ("x", x_format), ("y", "@y{0.[0000]}")])
    line_source = ColumnDataSource({"xs": [], "ys": [], "label": [], "color": []})
    point_source = ColumnDataSource({"x": [], "y": [], "label": [], "color": []})
    fig.multi_line("xs", "ys", source=line_source, color="color", line_width=2)
    fig.scatter("x", "y", source=point_source, color="color", size=6, legend_field="label")
    _legend_above(fig)
    fig.legend.click_policy = "hide"
    threshold = Span(location=0, dimension="width", line_color=POSITIVE_COLOR, line_dash="dashed",
                     line_width=1, visible=False)
    fig.add_layout(threshold)
    return Chart(fig, {"lines": line_source, "points": point_source}, _pane(fig), {"threshold": threshold})


def timeline(title: str, *, y_label: str, height: int = 300, name: str = "timeline") -> Chart:
    """A :func:`lines` chart over time with a fixed time range (the period shown, so one point
    still gets readable ticks), alert markers (source ``alerts``: ``x``, ``y``, ``label``) and
    audit events as labelled vertical bands (source ``events``: ``x``, ``label``, ``detail``).

    Fill it with :func:`show_timeline`. The sources are named ``{name}-lines``, ``{name}-points``,
    ``{name}-alerts`` and ``{name}-events``, the threshold ``{name}-threshold`` and the time axis
    ``{name}-time-axis`` (what a browser test reads)."""
    chart = lines(title, x_label="time (UTC)", y_label=y_label, height=height, datetime_x=True)
    fig = chart.figure
    fig.x_range = Range1d(start=0, end=1)
    alerts = ColumnDataSource({"x": [], "y": [], "label": []}, name=f"{name}-alerts")
    events = ColumnDataSource({"x": [], "label": [], "detail": [], "shift": []}, name=f"{name}-events")
    fig.vspan(x="x", source=events, line_color=EVENT_COLOR, line_width=2, line_dash="dotted", line_alpha=0.8)
    fig.add_layout(LabelSet(x="x", y=4, y_units="screen", text="label", source=events, angle=1.5708,
                            x_offset="shift", text_font_size="8pt", text_color=EVENT_COLOR))
    marker = fig.scatter("x", "y", source=alerts, marker="inverted_triangle", size=13, color=ALERT_COLOR,
                         line_color="white", legend_label="alert")
    fig.add_tools(HoverTool(renderers=[marker], tooltips=[("alert", "@label"), ("at", "@x{%a %d %b %H:%M}")],
                            formatters={"@x": "datetime"}))
    chart.sources["lines"].name = f"{name}-lines"
    chart.sources["points"].name = f"{name}-points"
    chart.spans["threshold"].name = f"{name}-threshold"
    fig.xaxis.name = f"{name}-time-axis"
    return Chart(fig, {**chart.sources, "alerts": alerts, "events": events}, chart.pane, chart.spans)


def show_timeline(chart: Chart, series: Sequence[tuple[str, Any, Any]], *, start: Any, end: Any,
                  alerts: Mapping[str, Sequence[Any]] | None = None, events: Mapping[str, Sequence[Any]] | None = None,
                  title: str | None = None, colors_: Sequence[str] | None = None,
                  spans: Mapping[str, float | None] | None = None) -> None:
    """Draw ``series`` on a :func:`timeline` over ``start`` to ``end`` (datetimes, UTC), with its
    alert markers and event bands."""
    first, last = _millis(start), _millis(end)
    chart.sources["alerts"].data = dict(alerts or {"x": [], "y": [], "label": []})
    shown = dict(events or {"x": [], "label": [], "detail": []})
    # Labels of events close in time side by side, not over each other (11 px apart).
    shift, previous = [], None
    for x in shown["x"]:
        at = _millis(x)
        shift.append(shift[-1] + 11.0 if previous is not None and at - previous < (last - first) * 0.02 else -3.0)
        previous = at
    chart.sources["events"].data = {**shown, "shift": shift}
    x_range = chart.figure.x_range
    pad = (last - first) * 0.03  # the newest point (and its band) clear of the plot's edge
    x_range.start, x_range.end = first - pad / 3, last + pad
    show_lines(chart, series, title=title, colors_=colors_, spans=spans)


def _millis(value: Any) -> float:
    """Bokeh's time unit: milliseconds since the epoch."""
    return float(np.datetime64(value, "ms").astype(np.int64))


def scatter(title: str, *, x_label: str, y_label: str, height: int = 300) -> Chart:
    """Points: source ``points`` with columns ``x``, ``y``, ``label``, ``color``."""
    fig = _figure(title, x_label=x_label, y_label=y_label, height=height,
                  tooltips=[("", "@label"), ("x", "@x{0.[000]}"), ("y", "@y{0.[0000]}")])
    source = ColumnDataSource({"x": [], "y": [], "label": [], "color": []})
    fig.scatter("x", "y", source=source, color="color", size=7, alpha=0.7)
    return Chart(fig, {"points": source}, _pane(fig))


def bars(title: str, *, x_label: str = "", height: int = 300) -> Chart:
    """Horizontal bars (the first factor at the bottom): source ``bars`` with ``label``, ``value``,
    ``color``."""
    y_range = FactorRange()
    fig = _figure(title, x_label=x_label, height=height, y_range=y_range,
                  tooltips=[("", "@label"), ("value", "@value{0.[0000]}")])
    source = ColumnDataSource({"label": [], "value": [], "color": []})
    fig.hbar(y="label", right="value", height=0.7, source=source, color="color")
    fig.ygrid.grid_line_color = None
    return Chart(fig, {"bars": source}, _pane(fig), y_range=y_range)


def grouped_bars(title: str, *, y_label: str = "", height: int = 300) -> Chart:
    """Vertical bars side by side per category: source ``bars`` with ``x`` (``(category, group)``
    tuples), ``value``, ``group``, ``color``, ``category``. The axis names the categories; the legend
    the groups (used for reference vs current histograms and rates per group)."""
    x_range = FactorRange(range_padding=0.05, factor_padding=0.05, group_padding=0.6)
    fig = _figure(title, y_label=y_label, height=height, x_range=x_range,
                  tooltips=[("", "@category"), ("", "@group"), ("value", "@value{0.000}")])
    source = ColumnDataSource({"x": [], "value": [], "group": [], "color": [], "category": []})
    fig.vbar(x="x", top="value", width=0.9, source=source, color="color", legend_field="group")
    # Nested factors: the inner level (the group) is in the legend already, the outer level on the axis.
    fig.xaxis.major_label_text_font_size = "0pt"
    fig.xaxis.major_tick_line_color = None
    fig.xaxis.group_label_orientation = 0.6
    fig.xaxis.group_text_font_size = "9pt"
    fig.xaxis.group_text_color = "#444444"
    fig.xgrid.grid_line_color = None
    fig.y_range.start = 0
    _legend_above(fig)
    return Chart(fig, {"bars": source}, _pane(fig), x_range=x_range)


def waterfall(title: str, *, height: int = 320) -> Chart:
    """A SHAP waterfall: from the base value, one bar per feature to the prediction. Source ``steps``
    with ``label``, ``start``, ``end``, ``value``, ``color``."""
    y_range = FactorRange()
    fig = _figure(title, x_label="model output", height=height, y_range=y_range,
                  tooltips=[("", "@label"), ("contribution", "@value{+0.[0000]}"), ("to", "@end{0.[0000]}")])
    source = ColumnDataSource({"label": [], "start": [], "end": [], "value": [], "color": []})
    fig.hbar(y="label", left="start", right="end", height=0.7, source=source, color="color")
    fig.ygrid.grid_line_color = None
    return Chart(fig, {"steps": source}, _pane(fig), y_range=y_range)


def _legend_above(fig: Any) -> None:
    """Put the legend in a row above the plot, where it never hides data."""
    legend = fig.legend[0]
    legend.orientation = "horizontal"
    legend.location = "top_left"
    legend.border_line_alpha = 0
    fig.center.remove(legend)
    fig.add_layout(legend, "above")


def _pane(fig: Any) -> pn.pane.Bokeh:
    return pn.pane.Bokeh(fig, sizing_mode="stretch_width")


def show_data(chart: Chart, data: Mapping[str, Mapping[str, Any]], *, x_factors: Sequence[Any] | None = None,
              y_factors: Sequence[Any] | None = None, title: str | None = None,
              spans: Mapping[str, float | None] | None = None) -> None:
    """Replace the data of ``chart``'s sources (by name), its factors, title and spans, and show it."""
    # Factors before data: the browser maps new data through the range as soon as it arrives, and
    # nested (group, bar) data against a range still holding flat factors is an error there.
    if x_factors is not None and chart.x_range is not None:
        chart.x_range.factors = list(x_factors)
    if y_factors is not None and chart.y_range is not None:
        chart.y_range.factors = list(y_factors)
    for name, columns in data.items():
        chart.sources[name].data = {k: list(v) if isinstance(v, np.ndarray) else v for k, v in columns.items()}
    if title is not None:
        chart.figure.title.text = title
    for name, location in (spans or {}).items():
        span = chart.spans[name]
        span.visible = location is not None and bool(np.isfinite(location))
        if span.visible:
            span.location = float(location)  # type: ignore[arg-type]
    pn.io.push_notebook(chart.pane)  # a no-op on served pages; required for notebooks


def show_lines(chart: Chart, series: Sequence[tuple[str, Any, Any]], *, title: str | None = None,
               colors_: Sequence[str] | None = None, spans: Mapping[str, float | None] | None = None) -> None:
    """Draw ``series`` (``(label, x values, y values)`` each) on a :func:`lines` chart."""
    palette = list(colors_) if colors_ is not None else colors(len(series))
    xs = [np.asarray(x) for _, x, _ in series]
    ys = [np.asarray(y, dtype=float) for _, _, y in series]
    points = {
        "x": np.concatenate(xs) if xs else [],
        "y": np.concatenate(ys) if ys else [],
        "label": [label for (label, x, _) in series for _ in range(len(x))],
        "color": [palette[i] for i, (_, x, _) in enumerate(series) for _ in range(len(x))],
    }
    lines_data = {"xs": xs, "ys": ys, "label": [label for label, _, _ in series], "color": palette[: len(series)]}
    show_data(chart, {"lines": lines_data, "points": points}, title=title, spans=spans)


def colors(n: int) -> list[str]:
    """``n`` distinguishable colours (repeating after ten)."""
    return [PALETTE[i % len(PALETTE)] for i in range(n)]
