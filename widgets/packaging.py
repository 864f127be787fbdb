"""PackageBuilder: build a model version into a container image, with a live log and progress bar.

::

    from workbench.widgets import PackageBuilder
    PackageBuilder(model_uri="models:/churn@champion")

The build runs on a background thread (:func:`workbench.package` streams :class:`BuildEvent`\\ s);
the progress bar follows the Dockerfile steps, the log shows the last lines, and the result (tag,
size, labels) or the error (failing step, log tail, what to do) appears when it ends.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.widgets import ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["PackageBuilder"]

#: Lines of the build log shown while building (the whole log is in the engine and the error).
LOG_LINES = 30
_FLUSH_SECONDS = 0.25


_LABEL_COLUMNS = ["label", "value"]

class PackageBuilder(ui.NotebookView, pn.viewable.Viewer):
    """Build an image from a model version: live log and progress; the image's tag, size and labels,
    or the error, when it ends."""

    model_uri = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The model to package (``models:/churn@champion``, ``models:/churn/3``, ...).""")
    tag = param.String(default="", doc="Image tag; empty: ``workbench/<model>:<version>``.")
    offline = param.Boolean(default=False, doc="""
        Download the wheels on this machine and build with no network at all.""")
    no_cache = param.Boolean(default=False, doc="Rebuild every layer instead of reusing the build cache.")
    explain = param.Boolean(default=False, doc="Add SHAP so the server's explain route works (larger image).")
    image = param.Parameter(default=None, constant=True, doc="""
        The :class:`~workbench.ImageRecord` of the last successful build (read only).""")
    model_name = param.String(default=None, allow_None=True, doc="""
        Offer only this registered model's versions in the picker (default: every model's).""")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ui.offer_models(self, self.model_name)
        self._task = BackgroundTask()
        self._lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._lines_lock = threading.Lock()
        self._log = pn.pane.Str("", sizing_mode="stretch_width", visible=False,
                                styles={"font-size": "85%", "background": "#f6f8fa", "padding": "6px"})
        self._empty = ui.empty_state("No image built yet",
                                     "Pick a model and press <b>Build image</b>: the build's steps stream here with a "
                                     "progress bar, then the image's tag, size and labels.")
        self._result = pn.pane.HTML("", sizing_mode="stretch_width")
        self._labels = ui.table(pd.DataFrame(columns=_LABEL_COLUMNS), label="labels", selectable=False, visible=False)
        build = ui.button("Build image", self.build, color="primary", disabled=self._task.param.running)
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.model_uri, label="Model", width=280),
                pn.widgets.TextInput.from_param(self.param.tag, label="Tag", placeholder="workbench/<model>:<version>",
                                                width=240),
                pn.Column(pn.widgets.Checkbox.from_param(self.param.offline, label="offline (no network)"),
                          pn.widgets.Checkbox.from_param(self.param.no_cache, label="no cache"),
                          pn.widgets.Checkbox.from_param(self.param.explain, label="with SHAP (explain route)")),
                build,
            ),
            ui.progress_row(self._task, width=320),
            ui.error_alert(self._task),
            self._empty,
            self._log,
            self._result,
            self._labels,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def build(self) -> bool:
        """Start building ``model_uri``; returns ``False`` if a build is running already."""
        if not self.model_uri:
            self._task.error = "pick a model to package first"
            return False
        uri, tag = self.model_uri, self.tag.strip() or None
        offline, no_cache, explain = self.offline, self.no_cache, self.explain
        with self._lines_lock:
            self._lines.clear()
        self._log.object = ""
        self._empty.visible = False
        self._result.object = ""
        self._labels.value = pd.DataFrame(columns=_LABEL_COLUMNS)

        def work(job: Job[Any]) -> Any:
            last_flush = 0.0

            def on_event(event: Any) -> None:
                nonlocal last_flush
                if event.kind in ("step", "error", "done", "context") or (event.kind == "log" and not event.layer):
                    prefix = f"[{event.step}/{event.total_steps}] " if event.kind == "step" else ""
                    with self._lines_lock:
                        self._lines.append(prefix + event.message.rstrip())
                what = f"step {event.step}/{event.total_steps}: {event.message[:60]}" if event.kind == "step" else None
                job.update(event.fraction, what, force=event.kind in ("step", "done"))
                now = time.monotonic()
                if now - last_flush >= _FLUSH_SECONDS or event.kind in ("done", "error"):
                    last_flush = now
                    job.ui(self._show_log)

            try:
                return wb.package(uri, tag=tag, on_event=on_event, offline=offline, no_cache=no_cache,
                                  explain=explain)
            finally:
                job.ui(self._show_log)

        return self._task.start(work, self._built, message=f"packaging {uri}...", exclusive=True)

    def wait(self, timeout: float | None = 600) -> bool:
        """Block until the running build ended (for scripts and tests)."""
        return self._task.wait(timeout)

    def _show_log(self) -> None:
        with self._lines_lock:
            self._log.object = "\n".join(self._lines)
        self._log.visible = bool(self._log.object)

    def _built(self, record: Any) -> None:
        with param.edit_constant(self):
            self.image = record
        data = record.to_dict()
        self._task.message = f"built {record.tag}"
        self._result.object = ui.facts({
            "tag": record.tag,
            "image id": ui.short(record.image_id.removeprefix("sha256:"), 12),
            "size": f"{record.size_bytes / 1e6:,.0f} MB",
            "built in": f"{record.build_seconds:.1f} s ({data['cached_steps']} of {record.total_steps} steps cached)",
            "base image": record.base_image,
            "model": record.model_uri,
            "build context": str(record.context_dir),
        })
        self._labels.value = pd.DataFrame(sorted(record.labels.items()), columns=_LABEL_COLUMNS)
        self._labels.visible = True
