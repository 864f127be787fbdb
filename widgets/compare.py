"""VersionComparison: what changed between two versions of a model (:func:`workbench.diff`), on a page.

::

    from workbench.widgets import VersionComparison
    VersionComparison(model_name="churn")              # the newest version against the one before it
    VersionComparison(model_name="churn", a="1", b="3")

Shows the summary line, the differences grouped by kind (the kinds shown are picked with buttons),
how many answers of the two models differ on the same rows, what could not be compared and why,
and the captured code's unified diff with added and removed lines coloured. The comparison runs on
a background thread (it loads both models and predicts with each: a second or two) and runs again
whenever version A or B changes. ModelReview shows it as its "Compare versions" tab.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.widgets import ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["VersionComparison", "default_pair", "unified_diff_html"]

#: Colours of the code diff's lines: added, removed, hunk headers, file headers.
_ADDED, _REMOVED, _HUNK, _FILE = "#dafbe1", "#ffebe9", "#0969da", "#57606a"


def default_pair(versions: Sequence[str], reviewed: str | None = None) -> tuple[str | None, str | None]:
    """The two versions compared first: the one before ``reviewed`` (A) and ``reviewed`` (B).

    ``versions`` are version numbers in any order; ``reviewed`` defaults to the newest. When
    ``reviewed`` is the oldest, B is the version after it. ``(None, None)`` with fewer than two versions.
    """
    ordered = sorted({str(v) for v in versions}, key=_number)
    if len(ordered) < 2:
        return None, None
    b = str(reviewed) if reviewed is not None and str(reviewed) in ordered else ordered[-1]
    i = ordered.index(b)
    return (ordered[i - 1], b) if i > 0 else (b, ordered[1])


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def unified_diff_html(text: str, *, max_height: int = 520) -> str:
    """A unified diff as HTML: every line escaped, added lines green, removed lines red, hunk headers blue."""
    if not text:
        return ""
    rows = []
    for line in text.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = f"color:{_FILE};font-weight:600"
        elif line.startswith("@@"):
            style = f"color:{_HUNK}"
        elif line.startswith("+"):
            style = f"background:{_ADDED}"
        elif line.startswith("-"):
            style = f"background:{_REMOVED}"
        rows.append(f"<div style='{style}'>{html.escape(line) or '&nbsp;'}</div>" if style
                    else f"<div>{html.escape(line) or '&nbsp;'}</div>")
    return (f"<pre class='wb-code-diff' style='margin:0;padding:6px 0;max-height:{max_height}px;overflow:auto;"
            "font-size:85%;line-height:1.4;border:1px solid #d0d7de;border-radius:6px;white-space:pre'>"
            f"{''.join(rows)}</pre>")


def _shown(value: Any) -> str:
    """A cell of the differences table: ``-`` for nothing, floats to 6 significant digits."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(result: Any, kinds: Sequence[str]) -> pd.DataFrame:
    rows = [(d.kind, d.name, _shown(d.a), _shown(d.b), d.detail) for d in result.differences if d.kind in kinds]
    return pd.DataFrame(rows, columns=list(wb.DIFF_COLUMNS))


class VersionComparison(ui.NotebookView, pn.viewable.Viewer):
    """Two versions of one model side by side: every difference :func:`workbench.diff` finds (params,
    metrics, code, signature, environment, training data, predictions), grouped by kind."""

    model_name = param.String(default=None, allow_None=True, doc="The registered model whose versions are compared.")
    a = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Version A, the side changes are read from (default: the version before B; see :func:`default_pair`).""")
    b = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        Version B, the side changes are read to (default: the newest version, or the newest but A).""")
    kinds = param.ListSelector(default=list(wb.DIFFERENCE_KINDS), objects=list(wb.DIFFERENCE_KINDS), doc="""
        The kinds of differences the table lists.""")
    result = param.Parameter(default=None, constant=True, doc="""
        The :class:`~workbench.VersionDiff` shown (read only; ``None`` until a comparison finished).""")

    def __init__(self, **params: Any) -> None:
        if not params.get("model_name"):
            raise InvalidInputError("VersionComparison needs model_name=, the name of a registered model")
        found = wb.versions(params["model_name"])  # a clear error naming the known models if there is none
        numbers = sorted((v.version for v in found), key=_number, reverse=True)
        a, b = (None if params.get(side) is None else str(params[side]) for side in ("a", "b"))
        if a is None:  # b alone is the version reviewed: compare it with its neighbour
            a, b = default_pair(numbers, b)
        elif b is None:
            b = next((v for v in numbers if v != a), None)
        params.update(a=a, b=b)
        super().__init__(**params)
        labels = {f"v{v.version}" + "".join(f" @{alias}" for alias in v.aliases): v.version
                  for v in sorted(found, key=lambda v: _number(v.version), reverse=True)}
        self.param.a.objects = labels
        self.param.b.objects = labels
        self._versions = numbers
        self._task = BackgroundTask()
        has = f"has only one version (v{numbers[0]})" if numbers else "has no versions"
        self._only_one = pn.pane.HTML(
            ui.empty_state_html(f"{self.model_name or ''} {has}",
                                "Register another version of it to compare two versions here: what changed in "
                                "params, metrics, data, code and answers."),
            visible=len(numbers) < 2, sizing_mode="stretch_width")
        self._summary = pn.pane.HTML("", sizing_mode="stretch_width")
        self._predictions = pn.pane.HTML("", sizing_mode="stretch_width")
        self._notes = pn.pane.HTML("", sizing_mode="stretch_width")
        self._code = pn.pane.HTML("", sizing_mode="stretch_width")
        self._code_title = ui.markdown("#### Code that trained them (unified diff, A to B)", visible=False)
        # Final columns now (see ui.table); grouped by kind, each group headed with its kind and count.
        self._table = ui.table(pd.DataFrame(columns=list(wb.DIFF_COLUMNS)), label="differences", selectable=False,
                               groupby=["kind"], hidden_columns=["kind"], visible=False)
        self._kind_buttons = pn.widgets.CheckButtonGroup.from_param(
            self.param.kinds, name="Show", button_type="primary", button_style="outline")
        self._kind_picker = pn.Row(pn.pane.HTML("<b>Show</b>", margin=(12, 6, 0, 10)), self._kind_buttons,
                                   visible=False)
        pickers = len(numbers) >= 2
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.a, label="Version A", width=180, disabled=not pickers),
                pn.widgets.Select.from_param(self.param.b, label="Version B", width=180, disabled=not pickers),
                sizing_mode="stretch_width",
            ),
            self._only_one,
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            self._summary,
            self._predictions,
            self._kind_picker,
            self._table,
            self._notes,
            self._code_title,
            self._code,
            sizing_mode="stretch_width",
        )
        self.compare()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until the comparison running now has finished and is shown (for scripts and tests)."""
        return self._task.wait(timeout)

    def pair_for(self, reviewed: str | None) -> tuple[str | None, str | None]:
        """Versions A and B to compare when ``reviewed`` is the version under review (:func:`default_pair`)."""
        return default_pair(self._versions, reviewed)

    @property
    def uris(self) -> tuple[str, str] | None:
        """``models:/<name>/<a>`` and ``models:/<name>/<b>``; ``None`` until both sides are picked."""
        if not (self.model_name and self.a and self.b):
            return None
        return wb.format_model_uri(self.model_name, self.a), wb.format_model_uri(self.model_name, self.b)

    @param.depends("a", "b", watch=True)
    def compare(self) -> bool:
        """Compare version A with version B again (off the event loop); ``False`` when there is nothing to
        compare (fewer than two versions)."""
        self._show(None)
        uris = self.uris
        if uris is None:
            self._task.cancel()
            return False
        uri_a, uri_b = uris
        what = f"comparing v{self.a} with v{self.b}"

        def work(job: Job[Any]) -> Any:
            job.update(None, f"{what}: loading both models and predicting...", force=True)
            return wb.diff(uri_a, uri_b)

        return self._task.start(work, self._show, message=f"{what}...")

    @param.depends("kinds", watch=True)
    def _filter(self) -> None:
        if self.result is not None:
            self._table.value = _table(self.result, self.kinds)

    def _show(self, result: Any) -> None:
        """Show ``result`` (a :class:`~workbench.VersionDiff`), or clear the view for ``None``."""
        with param.edit_constant(self):
            self.result = result
        shown = result is not None
        for pane in (self._table, self._kind_picker):
            pane.visible = shown and bool(result.differences)
        self._table.value = _table(result, self.kinds) if shown else pd.DataFrame(columns=list(wb.DIFF_COLUMNS))
        if not shown:
            for pane in (self._summary, self._predictions, self._notes, self._code):
                pane.object = ""
            self._code_title.visible = False
            return
        counts = {kind: len(result.of_kind(kind)) for kind in wb.DIFFERENCE_KINDS}
        self._kind_buttons.options = {f"{kind} ({n})": kind for kind, n in counts.items()}
        tone = "warn" if result.differences else "ok"
        self._summary.object = (f"<p style='font-size:1.1em;margin:4px 0'>{ui.badge(f'v{self.a} → v{self.b}', tone)} "
                                f"{html.escape(result.summary())}</p>")
        if result.rows_compared:
            self._predictions.object = (
                f"<p><b>Predictions:</b> {result.rows_differing:,} of {result.rows_compared:,} answers differ "
                f"({result.rows_differing / result.rows_compared:.1%}) on version A's reference sample.</p>")
        else:
            self._predictions.object = "<p><b>Predictions:</b> not compared (see below).</p>"
        self._notes.object = ("<p><b>Not compared</b></p><ul>"
                              + "".join(f"<li>{html.escape(note)}</li>" for note in result.notes) + "</ul>"
                              if result.notes else "")
        self._code_title.visible = bool(result.code_diff)
        self._code.object = unified_diff_html(result.code_diff)
        self._task.message = ""
