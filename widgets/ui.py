"""Small building blocks the components share: text, badges, tables, progress and error rows.

Everything renders from Panel's bundled resources: no web fonts, no math renderer, no CDN.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import panel as pn

from workbench.widgets.background import BackgroundTask

__all__ = [
    "BADGE_COLORS",
    "ChartArea",
    "NotebookView",
    "badge",
    "button",
    "card",
    "empty_state",
    "header",
    "legend",
    "plural",
    "status_line",
    "when",
    "error_alert",
    "facts",
    "html_table",
    "markdown",
    "model_uris",
    "offer_models",
    "progress_row",
    "RUN_VALUE_COLUMNS",
    "run_values",
    "set_polling",
    "short",
    "table",
]

#: Background colours of status badges, by kind.
BADGE_COLORS: Mapping[str, str] = {
    "ok": "#1a7f37",
    "drift": "#cf222e",
    "warn": "#9a6700",
    "info": "#0969da",
    "muted": "#6e7781",
}


def _jupyter_dist_url() -> str:
    """Where the Jupyter server serves Panel's own stylesheets (Panel's server extension, enabled when
    Panel is installed, serves its dist folder at ``<base_url>panel_dist/``)."""
    return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/").rstrip("/") + "/panel_dist/"


class NotebookView:
    """Mix in before ``pn.viewable.Viewer``: in a notebook, the stylesheets Panel adds after the first
    render (a live update, a new table, the theme) come from the Jupyter server, not Panel's CDN.

    ``wbw.extension()`` inlines what the first render needs; Panel points anything it sends later at
    its CDN unless the document names another place, which offline leaves parts unstyled and online
    tells a third party that the page was opened. The document of each render names the server.
    """

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        view = self._create_view()  # type: ignore[attr-defined]
        bundle = view._repr_mimebundle_(include, exclude)
        for model, _ in list(view._models.values()):
            if model.document is not None:
                model.document._template_variables["dist_url"] = _jupyter_dist_url()
        return bundle


def markdown(text: str = "", **params: Any) -> pn.pane.Markdown:
    """A Markdown pane with math rendering off (``$`` in model names is text, and MathJax would be
    one more script to load)."""
    params.setdefault("sizing_mode", "stretch_width")
    return pn.pane.Markdown(text, disable_math=True, **params)


def badge(text: str, kind: str = "info") -> str:
    """HTML for a small coloured status label."""
    color = BADGE_COLORS.get(kind, BADGE_COLORS["info"])
    return (f'<span style="background:{color};color:#fff;border-radius:10px;padding:1px 8px;'
            f'font-size:85%;white-space:nowrap">{html.escape(text)}</span>')


def short(value: Any, length: int = 8) -> str:
    """The first ``length`` characters of ids and hashes, ``-`` for nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)[:length]


def facts(items: Mapping[str, Any]) -> str:
    """HTML for a two-column list of labels and values."""
    rows = "".join(
        f"<tr><th style='text-align:left;padding:2px 12px 2px 0;color:#57606a;font-weight:600'>{html.escape(k)}</th>"
        f"<td style='padding:2px 0'>{v if isinstance(v, _Html) else html.escape(_text(v))}</td></tr>"
        for k, v in items.items()
    )
    return f"<table style='border-collapse:collapse'>{rows}</table>"


class _Html(str):
    """A string that is HTML already (not escaped again by :func:`facts`)."""


def raw_html(text: str) -> str:
    """Mark ``text`` as HTML for :func:`facts`."""
    return _Html(text)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return when(value)
    return str(value)


# -- the review app's finish: one look for headers, empty states, status lines and cards ------------
# Every tab builds its headings, "nothing here yet" boxes, status lines and fact cards with these, so
# the pages share one finish (spacing, colours, words).

_MUTED = "#57606a"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,200 rows``: a count and the word that agrees with it."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def when(value: Any) -> str:
    """The one way the review app writes a time: ``2026-12-06 12:59:22 UTC`` (naive times are taken as UTC)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return "-"
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def header(title: str, subtitle: str = "", *, badges: tuple[tuple[str, str], ...] = (), level: int = 3) -> pn.pane.HTML:
    """A section heading with an optional line below it saying what the section shows, and badges
    (``(text, kind)`` as :func:`badge`)."""
    marks = " ".join(badge(text, kind) for text, kind in badges)
    sub = f"<div class='wb-sub' style='color:{_MUTED};font-size:90%;margin-top:2px'>{html.escape(subtitle)}</div>" if subtitle else ""
    return pn.pane.HTML(
        f"<div class='wb-header' style='margin:6px 0 4px'><h{level} style='margin:0;font-weight:600'>{html.escape(title)} "
        f"{marks}</h{level}>{sub}</div>", sizing_mode="stretch_width", margin=(4, 10))


def empty_state_html(what: str, how: str = "") -> str:
    """HTML of :func:`empty_state`."""
    hint = f"<div style='margin-top:4px'>{how}</div>" if how else ""
    return (f"<div class='wb-empty' style='border:1px dashed #d0d7de;border-radius:6px;padding:18px 20px;"
            f"color:{_MUTED};background:#f6f8fa'><div style='font-weight:600;color:#24292f'>{html.escape(what)}</div>"
            f"{hint}</div>")


def empty_state(what: str, how: str = "", **params: Any) -> pn.pane.HTML:
    """A box that says what will appear here (``what``) and how to get it (``how``, HTML allowed:
    a code snippet, a tab's name), shown in place of an empty plot or table."""
    params.setdefault("sizing_mode", "stretch_width")
    return pn.pane.HTML(empty_state_html(what, how), **params)


def status_line(text: str = "", **params: Any) -> pn.pane.HTML:
    """A quiet line of status in words (``12 runs loaded``); set ``.object`` with :func:`status_html`."""
    params.setdefault("sizing_mode", "stretch_width")
    params.setdefault("margin", (2, 10))
    return pn.pane.HTML(status_html(text), **params)


def status_html(text: str) -> str:
    """HTML of a status line (escaped), empty for no text."""
    return f"<span class='wb-status' style='color:{_MUTED}'>{html.escape(text, quote=False)}</span>" if text else ""


def card(title: str, *objects: Any, subtitle: str = "", **params: Any) -> pn.Column:
    """A bordered card: a :func:`header` and its content."""
    params.setdefault("sizing_mode", "stretch_width")
    params.setdefault("styles", {"border": "1px solid #d0d7de", "border-radius": "6px", "background": "#ffffff"})
    params.setdefault("margin", (6, 8))
    return pn.Column(header(title, subtitle, level=4), *objects, **params)


def legend(items: Mapping[str, str]) -> str:
    """HTML of a one-line legend: colour -> what it means."""
    keys = "".join(f"<span style='margin-right:14px;white-space:nowrap'><span style='display:inline-block;width:11px;"
                   f"height:11px;background:{color};border-radius:2px;margin-right:5px;vertical-align:-1px'></span>"
                   f"{html.escape(label)}</span>" for color, label in items.items())
    return f"<div class='wb-legend' style='font-size:90%;color:#24292f'>{keys}</div>"


class ChartArea:
    """A chart's place on a page: an :func:`empty_state` until the chart has something to draw, then
    the chart. A Bokeh figure without data draws an empty frame with a full toolbar and makes the
    browser log "could not set initial ranges"; this keeps it off the page until it has data."""

    def __init__(self, chart: Any, what: str, how: str = "", **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        self.chart = chart
        self._empty = empty_state(what, how, min_height=120)
        self.panel = pn.Column(self._empty, **params)
        self.showing = False

    def show(self, has_data: bool, what: str | None = None, how: str = "") -> None:
        """Show the chart (``has_data``) or the empty state (with new words, if given)."""
        if what is not None:
            self._empty.object = empty_state_html(what, how)
        if has_data != self.showing:
            self.panel[:] = [self.chart.pane if has_data else self._empty]
            self.showing = has_data


def button(label: str, action: Callable[[], object], **params: Any) -> pn.widgets.Button:
    """A button (aligned with the inputs beside it) that calls ``action()`` when pressed."""
    params.setdefault("align", "end")
    widget = pn.widgets.Button(label=label, **params)

    def pressed(event: Any) -> None:
        action()  # what it returns (e.g. False: busy) is for callers from code, not for the page

    widget.on_click(pressed)
    return widget


def table(value: pd.DataFrame | None = None, *, page_size: int | None = None, **params: Any) -> pn.widgets.Tabulator:
    """A read-only, sortable table; with ``page_size``, paged on the server (only the rows shown are
    sent to the browser, whatever the table's length), else scrolling within ``max_height``.

    Create it with its final columns (an empty frame that has them) when its rows come later:
    Panel's Tabulator fails in the browser when its columns change before it has drawn itself.
    """
    params.setdefault("sizing_mode", "stretch_width")
    params.setdefault("show_index", False)
    params.setdefault("disabled", True)
    params.setdefault("layout", "fit_data_table")
    params.setdefault("selectable", 1)
    if page_size is not None:
        params.update(pagination="remote", page_size=page_size)
    else:
        params.setdefault("max_height", 420)
    return pn.widgets.Tabulator(value if value is not None else pd.DataFrame(), **params)


#: Columns of :func:`run_values`.
RUN_VALUE_COLUMNS = ["kind", "key", "value"]


def run_values(lineage: Any | None = None) -> pd.DataFrame:
    """The metrics and parameters of a version's run (a :class:`~workbench.Lineage`) as one table;
    empty, with the same columns, for ``None``."""
    rows: list[dict[str, str]] = []
    if lineage is not None:
        rows = [{"kind": "metric", "key": k, "value": f"{v:.4g}"} for k, v in sorted(lineage.metrics.items())]
        rows += [{"kind": "param", "key": k, "value": str(v)} for k, v in sorted(lineage.params.items())]
    return pd.DataFrame(rows, columns=RUN_VALUE_COLUMNS)


def html_table(frame: pd.DataFrame, *, html_columns: tuple[str, ...] = (), highlight: int | None = None,
               max_height: int = 420, empty: str = "nothing to show") -> str:
    """A plain HTML table (cells escaped except ``html_columns``; row ``highlight`` shaded).

    Used for the tables a periodic callback refreshes (drift, deployment status): Panel 1.9's
    Tabulator can lock up the browser when its data changes while it is resizing, and a plain table
    redraws in one go.
    """
    if frame is None or not len(frame):
        return empty_state_html(empty)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, record in enumerate(frame.itertuples(index=False)):
        cells = "".join(
            f"<td>{value if column in html_columns else html.escape(_text(value))}</td>"
            for column, value in zip(frame.columns, record, strict=True)
        )
        shade = " style='background:#ddf4ff'" if i == highlight else ""
        rows.append(f"<tr{shade}>{cells}</tr>")
    style = ("<style>.wb-table{border-collapse:collapse;font-size:90%;width:100%}"
             ".wb-table th{position:sticky;top:0;background:#f6f8fa;text-align:left;border-bottom:1px solid #d0d7de;"
             "padding:4px 8px}.wb-table td{padding:3px 8px;border-bottom:1px solid #eaeef2;white-space:nowrap}</style>")
    return (f"{style}<div style='max-height:{max_height}px;overflow:auto'><table class='wb-table'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def progress_row(task: BackgroundTask, *, width: int = 220) -> pn.Row:
    """A progress bar and the task's message, shown while the task runs (the bar moves even while
    the amount done is unknown)."""
    bar = pn.indicators.Progress(value=task.param.progress, active=task.param.running, width=width,
                                 visible=task.param.running, bar_color="primary", margin=(12, 10))
    # A status line in words (not a monospace log line), hidden while there is nothing to say.
    message = pn.pane.HTML(task.param.message.rx.pipe(status_html), margin=(6, 10),
                           visible=task.param.message.rx.pipe(bool))
    return pn.Row(bar, message, sizing_mode="stretch_width")


def error_alert(task: BackgroundTask) -> pn.pane.Alert:
    """A red box with the task's last error, hidden while there is none."""
    return pn.pane.Alert(task.param.error.rx.pipe(_alert_text), alert_type="danger",
                         visible=task.param.error.rx.pipe(bool), sizing_mode="stretch_width", disable_math=True)


def _alert_text(error: str) -> str:
    # The first line says what went wrong and what to do; what follows (a build log) keeps its lines.
    first, _, rest = error.partition("\n")
    return first + (f"\n\n```\n{rest}\n```" if rest.strip() else "")


def model_uris(model_name: str | None = None) -> list[str]:
    """Model URIs to offer in pickers: each alias (``models:/churn@champion``), then each version,
    newest first, of ``model_name`` or of every registered model."""
    import workbench as wb

    names = [model_name] if model_name else [m.name for m in wb.models()]
    uris: list[str] = []
    for name in names:
        found = wb.versions(name)
        uris += [wb.format_model_uri(name, alias=alias) for v in found for alias in v.aliases]
        uris += [v.uri for v in found]
    return uris


def offer_models(component: Any, model_name: str | None = None) -> None:
    """Fill ``component``'s ``model_uri`` picker with :func:`model_uris` (of ``model_name``) and pick
    the first when none is set."""
    choices = model_uris(model_name)
    component.param.model_uri.objects = choices
    if component.model_uri is None and choices:
        component.model_uri = choices[0]


def set_polling(poller: Any, live: bool, interval: float) -> None:
    """Apply a component's ``live`` and ``interval`` to its periodic callback (``pn.state.add_periodic_callback``)."""
    if poller.running:
        poller.stop()
    poller.period = int(interval * 1000)
    if live:
        poller.start()
