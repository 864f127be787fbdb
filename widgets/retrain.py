"""RetrainProgress: a retrain loop's steps as they happen, and the loop driven from the page.

::

    import workbench as wb
    from workbench.widgets import RetrainProgress

    loop = wb.retrain_on("credit", train=train, when={"accuracy": 0.85})
    RetrainProgress(loop=loop)            # checks every 5 s while shown; each step appears as it happens

Each check runs on a background thread with a progress bar (training and starting the challenger
take seconds); the stage badge, the gate's last comparison and the table of steps update in place.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from workbench.widgets import ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["RetrainProgress"]

_STAGE_KINDS = {"watching": "ok", "training": "warn", "challenging": "warn"}
_STEP_KINDS = {"triggered": "warn", "trained": "info", "challenging": "info", "waiting": "muted",
               "promoted": "ok", "aborted": "drift", "failed": "drift"}


class RetrainProgress(ui.NotebookView, pn.viewable.Viewer):
    """The steps of a :class:`workbench.RetrainLoop` (triggered, trained, challenging, promoted or
    aborted) with its stage, checked live from the page."""

    loop = param.Parameter(default=None, doc="The :class:`workbench.RetrainLoop` shown and driven.")
    live = param.Boolean(default=True, doc="Check the loop every ``interval`` seconds while shown.")
    interval = param.Number(default=5.0, bounds=(0.5, None), doc="Seconds between checks.")
    steps = param.Integer(default=0, constant=True, doc="Steps the loop has taken (read only).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._task = BackgroundTask()
        self._summary = ui.markdown("")
        self._table = pn.pane.HTML("", sizing_mode="stretch_width")
        check = ui.button("Check now", self.check, disabled=self._task.param.running)
        self._layout = pn.Column(
            pn.Row(pn.widgets.Checkbox.from_param(self.param.live, label="live", align="end"), check),
            ui.progress_row(self._task),
            ui.error_alert(self._task),
            self._summary,
            self._table,
            sizing_mode="stretch_width",
        )
        self._poller = pn.state.add_periodic_callback(self._poll, period=int(self.interval * 1000), start=self.live)
        self._show()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def check(self) -> bool:
        """Move the loop on by one step, off the event loop; ``False`` while a check still runs."""
        loop = self.loop
        if loop is None:
            return False

        def work(job: Job[None]) -> None:
            job.update(None, f"checking {loop.name} ({loop.stage})...", force=True)
            loop.check()

        return self._task.start(work, lambda _: self._show(), message="checking...", exclusive=True)

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the running check is done (for scripts and tests)."""
        return self._task.wait(timeout)

    def _poll(self) -> None:
        if not self._task.running:
            self.check()

    @param.depends("live", "interval", watch=True)
    def _restart_polling(self) -> None:
        ui.set_polling(self._poller, self.live, self.interval)

    @param.depends("loop", watch=True)
    def _show(self) -> None:
        loop = self.loop
        if loop is None:
            self._summary.object = "No retrain loop: pass `loop=wb.retrain_on(...)`."
            self._table.object = ""
            return
        steps = list(loop.steps)
        with param.edit_constant(self):
            self.steps = len(steps)
        gate = loop.gate
        self._summary.object = (
            f"**{loop.name}** {ui.badge(loop.stage, _STAGE_KINDS.get(loop.stage, 'info'))} · gate: "
            f"{gate.metric} better by {gate.margin} on {gate.min_rows}+ rows both versions answered"
            + (f" · challenger version {loop.challenger_version}" if loop.challenger_version else "")
        )
        frame = pd.DataFrame({
            "time": [f"{s.time:%H:%M:%S}" for s in reversed(steps)],
            "step": [ui.badge(s.kind, _STEP_KINDS.get(s.kind, "info")) for s in reversed(steps)],
            "version": [s.version or "-" for s in reversed(steps)],
            "what happened": [s.message for s in reversed(steps)],
        })
        self._table.object = ui.html_table(frame, html_columns=("step",),
                                           empty="Watching: nothing has happened yet.")
