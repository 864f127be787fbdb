"""Long work off the event loop: one thread per task, progress and results handed back to the page.

A served page (``workbench review``) has one Bokeh document per browser tab, changed only on the
server's event loop; a notebook has no such loop lock and Panel pushes changes over the comm from
any thread. :class:`BackgroundTask` hides the difference: the work runs on a daemon thread, and
everything that touches the page (progress, log lines, the result) goes through
:meth:`BackgroundTask.dispatch`, which hands it to the server's event loop (tornado's thread-safe
``IOLoop.add_callback``) and schedules it there with ``Document.add_next_tick_callback`` when the
task was started from a served page, and calls it at once otherwise (notebooks, scripts and tests).
``add_next_tick_callback`` called from the worker thread itself loses the update now and then: while
Panel holds the document, Bokeh queues the callback in a list that its ``unhold`` on the loop copies
and then empties, and a callback queued in between is dropped (the page then waits forever)::

    task = BackgroundTask()
    progress_bar = pn.indicators.Progress.from_param(task.param.progress)

    def work(job: Job) -> int:
        for i in range(10):
            job.update(fraction=i / 10, message=f"step {i}")
            ...
        return 42

    task.start(work, done=lambda result: print(result))
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import panel as pn
import param
from panel.io.state import set_curdoc
from tornado.ioloop import IOLoop

from workbench.errors import WorkbenchError

__all__ = ["BackgroundTask", "Job"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Progress updates reach the page at most this often (seconds); the last one always does.
_MIN_INTERVAL = 0.2

#: Seconds an update waits for a served page to be reported drawn before it is shown anyway.
_ONLOAD_FALLBACK = 5.0

#: Seconds a change to a notebook output waits for the page to open the output's comm (to draw it).
_COMM_OPEN_WAIT = 600.0

#: Held while a notebook page changes from Python, on any thread: by :meth:`BackgroundTask.dispatch`
#: around everything a task shows, by :meth:`BackgroundTask.start` and :meth:`BackgroundTask.cancel`,
#: and around each patch Panel sends over a notebook comm (see :func:`_lock_notebook_pages`).
_PAGE_LOCK = threading.RLock()


def _lock_notebook_pages() -> None:
    """Make Panel draw, patch and update notebook outputs under :data:`_PAGE_LOCK`, each in one go.

    In a notebook Panel changes an output's document from whichever thread made the change, and
    Panel 1.9 has no lock there. A task's result, the kernel's periodic callback and a message from
    the browser can come at once; what went wrong, and what each needs:

    - **Sending a patch.** Panel turns a change into a patch (``diff``: serialise the held events,
      then mark the models it carried as known to the page) and sends it as several comm messages
      (header, metadata, content, then each buffer). Two threads at once interleave their messages
      (the page reads a metadata message as the patch and drops it: ``TypeError: s is not
      iterable`` in the browser console), or one thread's patch carries a new model and marks it
      known while the other's refers to it by id only but is sent first (the page fails with
      ``reference ... isn't known`` and drops that patch). So ``push`` (diff then send) runs under
      the lock as a whole, as does a bare ``send``.
    - **A change before the page opened the output's comm** (the output is still being drawn).
      Panel makes the patch at once, marking its new models known, and hands it to
      ``IOLoop.current().call_later`` to retry; on a task's thread that is a new loop nobody runs,
      so the patch is lost and the page later fails on ``reference ... isn't known``. Such a change
      now stays in the document's held events, and one timer (per output) pushes everything held
      once the comm is open, in order.
    - **Drawing an output** (``_repr_mimebundle_``). Bokeh serialises the new document, then marks
      every model in it known to the page. A change made in between (a new stylesheet of a pane
      the task updates) is marked known without having been serialised, and its patch later names
      it by id only: ``reference ... isn't known`` again. So an output is drawn under the lock.
    - **A message from the browser** (``_on_msg``, on the kernel's comm thread). Bokeh applies it
      as it does on a server, where nothing is ever left unsent: it marks every model of the
      document known to the page, and Panel's release of the document afterwards throws away the
      held changes. Changes other threads made and had not sent yet (those waiting for the comm to
      open) were lost, and their new models marked known. So it runs under the lock, and what waits
      is sent first, or, while the comm is still closed, kept with its models still unknown.

    Panel's modules bind ``push`` by name at import; each binding is replaced once per process.
    """
    import sys

    from panel.io import notebook

    send, push = notebook.send, notebook.push
    if getattr(push, "__wrapped__", None) is not None:
        return

    @functools.wraps(send)
    def send_whole(comm: Any, msg: Any) -> None:
        with _PAGE_LOCK:
            send(comm, msg)

    waiting: set[tuple[int, int]] = set()  # (document, comm) pairs a timer will push: one timer each

    @functools.wraps(push)
    def push_whole(doc: Any, comm: Any, binary: bool = True, msg: Any = None) -> None:
        with _PAGE_LOCK:
            if msg is None and comm is not None and not getattr(comm, "_comm", True):
                _push_once_open(doc, comm, binary, time.monotonic() + _COMM_OPEN_WAIT)
                return
            push(doc, comm, binary, msg)

    def _push_once_open(doc: Any, comm: Any, binary: bool, give_up: float) -> None:
        key = (id(doc), id(comm))
        if key in waiting:
            return
        waiting.add(key)

        def retry() -> None:
            with _PAGE_LOCK:
                waiting.discard(key)
                if getattr(comm, "_comm", True):
                    push(doc, comm, binary)
                elif time.monotonic() < give_up:  # never drawn (a closed notebook): stop asking
                    _push_once_open(doc, comm, binary, give_up)

        timer = threading.Timer(0.1, retry)
        timer.daemon = True
        timer.start()

    from panel.io.state import state
    from panel.viewable import MimeRenderMixin, Viewable

    draw = Viewable._repr_mimebundle_

    @functools.wraps(draw)
    def draw_whole(self: Any, include: Any = None, exclude: Any = None) -> Any:
        with _PAGE_LOCK:
            return draw(self, include, exclude)

    on_msg = MimeRenderMixin._on_msg

    @functools.wraps(on_msg)
    def on_msg_whole(self: Any, ref: str, manager: Any, msg: Any) -> None:
        with _PAGE_LOCK:
            view = state._views.get(ref)
            if view is None:
                return on_msg(self, ref, manager, msg)
            doc, comm = view[2], view[3]
            if comm is not None and getattr(comm, "_comm", True):
                push(doc, comm)  # what other threads changed first, in order
            # The comm is still closed: keep the changes, and their models unknown to the page.
            held, unsent = doc.callbacks._held_events, set(doc.models._new_models)
            doc.callbacks._held_events = []
            try:
                on_msg(self, ref, manager, msg)
            finally:
                doc.callbacks._held_events[:0] = held
                doc.models._new_models |= unsent

    Viewable._repr_mimebundle_ = draw_whole  # type: ignore[method-assign]
    MimeRenderMixin._on_msg = on_msg_whole  # type: ignore[method-assign]
    notebook.send = send_whole
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("panel") and getattr(module, "push", None) is push:
            setattr(module, "push", push_whole)  # noqa: B010 - modules bound the name at import


_lock_notebook_pages()


class Job(Generic[T]):
    """What a task's work function gets: report progress, check for cancellation, touch the page."""

    def __init__(self, task: BackgroundTask, generation: int) -> None:
        self._task = task
        self._generation = generation
        self._last = 0.0

    @property
    def cancelled(self) -> bool:
        """True once a newer run of the same task started (or :meth:`BackgroundTask.cancel` was called):
        stop early, nothing this run reports reaches the page any more."""
        return self._generation != self._task._generation

    def update(self, fraction: float | None = None, message: str | None = None, *, force: bool = False) -> None:
        """Report progress: ``fraction`` from 0 to 1 (``None``: unknown), and what is happening."""
        now = time.monotonic()
        if not force and now - self._last < _MIN_INTERVAL:
            return
        self._last = now
        value = -1 if fraction is None else max(0, min(100, round(fraction * 100)))

        def show() -> None:
            changes: dict[str, Any] = {"progress": value}
            if message is not None:
                changes["message"] = message
            self._task.param.update(**changes)

        self.ui(show)

    def ui(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` where it may change the page, unless this run was cancelled."""
        def guarded() -> None:
            if not self.cancelled:
                fn()

        self._task.dispatch(guarded)


class BackgroundTask(param.Parameterized):
    """Runs one piece of long work at a time on a thread, with its state as parameters to show.

    ``running``, ``progress`` (-1 while unknown, else 0-100: what :class:`panel.indicators.Progress`
    shows), ``message`` and ``error`` change on the page's thread only.
    """

    running = param.Boolean(default=False, doc="True while the work runs.")
    progress = param.Integer(default=-1, bounds=(-1, 100), doc="Percent done; -1 while unknown.")
    message = param.String(default="", doc="What the work is doing now, or what it last did.")
    error = param.String(default="", doc="Why the last run failed; empty after a success.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()
        self._finished.set()
        self._doc: Any = None
        self._loop: IOLoop | None = None

    def dispatch(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` on the thread that owns the page this task was started from."""
        doc = self._doc
        if doc is not None and doc.session_context is not None:
            shown = False

            def once() -> None:
                nonlocal shown  # both calls below run on the page's event loop: no lock needed
                if not shown:
                    shown = True
                    with set_curdoc(doc):
                        _logged(fn)()

            def deliver() -> None:
                # Not before the browser has drawn the page: a Tabulator whose columns change while
                # it is still being built fails there (and stays empty).
                with set_curdoc(doc):
                    pn.state.onload(once)
                    if pn.state.loaded:
                        return
                # The browser reports a page drawn only once every view on it has settled; when
                # that report never comes, Panel keeps the update forever. Show it anyway, later.
                doc.add_timeout_callback(once, int(_ONLOAD_FALLBACK * 1000))

            def schedule() -> None:
                try:
                    doc.add_next_tick_callback(deliver)
                except Exception as exc:  # the browser tab closed: nobody is left to show it to
                    _log.debug("page gone, dropping an update: %s", exc)

            loop = self._loop
            if loop is None:
                schedule()
            else:  # on the loop's own thread, where the document is held and released (see above)
                loop.add_callback(schedule)
            return
        with _PAGE_LOCK:  # notebooks and scripts: one change at a time, from whichever thread
            _logged(fn)()

    def start(
        self,
        work: Callable[[Job[T]], T],
        done: Callable[[T], None] | None = None,
        *,
        message: str = "",
        exclusive: bool = False,
    ) -> bool:
        """Run ``work(job)`` on a new thread, then ``done(result)`` on the page's thread.

        A newer ``start`` cancels the older run (its results are dropped), unless ``exclusive``:
        then it returns ``False`` and leaves the running work alone (builds and deploys).
        A :class:`~workbench.errors.WorkbenchError` becomes ``error`` (its message says what to do);
        anything else also names its type.
        """
        if exclusive and self.running:
            return False
        self._doc = pn.state.curdoc
        served = self._doc is not None and self._doc.session_context is not None
        self._loop = IOLoop.current(instance=False) if served else None
        self._generation += 1
        job: Job[T] = Job(self, self._generation)
        finished = threading.Event()
        self._finished = finished
        with _PAGE_LOCK:
            self.param.update(running=True, progress=-1, message=message, error="")

        def finish(result: Any = None, error: str = "") -> None:
            if job.cancelled:
                return
            try:
                if not error and done is not None:
                    done(result)
            except Exception as exc:
                _log.exception("showing the result failed")
                error = _describe(exc)
            finally:
                self.param.update(running=False, progress=-1 if error else 100, error=error,
                                  message=self.message if not error else "failed")

        def run() -> None:
            try:
                result = work(job)
            except Exception as exc:
                if not isinstance(exc, WorkbenchError):
                    _log.warning("background work failed:\n%s", traceback.format_exc())
                message = _describe(exc)
                job.ui(lambda: finish(error=message))
            else:
                job.ui(lambda: finish(result))
            finally:
                # Set once the result is scheduled; in a notebook or script it has been shown already.
                finished.set()

        self._thread = threading.Thread(target=run, name=f"workbench-{type(self).__name__}", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Drop whatever the running work reports from now on (the thread itself runs to its end)."""
        self._generation += 1
        with _PAGE_LOCK:
            self.param.update(running=False, progress=-1)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ended and (outside a served page) its result is shown.

        For scripts and tests; never call it from a served page's callbacks. Returns ``False`` on
        timeout.
        """
        return self._finished.wait(timeout)


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"


def _logged(fn: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        try:
            fn()
        except Exception:
            _log.exception("updating the page failed")

    return call
