"""BackgroundTask: long work on a thread, its progress, result and errors handed back to the page."""

from __future__ import annotations

import asyncio
import threading
import time

import panel as pn
from bokeh.document import Document
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver
from panel.io.model import add_to_doc
from pyviz_comms import Comm

from workbench.errors import ModelNotFoundError
from workbench.widgets import BackgroundTask
from workbench.widgets import ui


def test_work_runs_off_the_calling_thread_and_its_result_and_progress_arrive() -> None:
    task = BackgroundTask()
    seen: dict[str, object] = {}
    release = threading.Event()

    def work(job):
        seen["thread"] = threading.current_thread()
        job.update(0.5, "half way", force=True)
        release.wait(10)
        return 42

    task.start(work, lambda result: seen.setdefault("result", result), message="working")
    # The caller is free while the work waits: that is what keeps a page responsive.
    assert task.running and task.message in ("working", "half way")
    release.set()
    assert task.wait(10)
    assert seen["thread"] is not threading.main_thread()
    assert seen["result"] == 42
    assert (task.running, task.progress, task.error) == (False, 100, "")


def test_a_workbench_error_shows_its_own_message_in_the_error_box() -> None:
    task = BackgroundTask()
    alert = ui.error_alert(task)
    assert not alert.visible

    def work(job):
        raise ModelNotFoundError("no registered model named 'x': register one first")

    task.start(work)
    task.wait(10)
    assert task.error == "no registered model named 'x': register one first"
    assert alert.visible and "register one first" in alert.object
    assert not task.running


def test_other_errors_name_their_type() -> None:
    task = BackgroundTask()
    task.start(lambda job: 1 / 0)
    task.wait(10)
    assert task.error.startswith("ZeroDivisionError")


def test_a_newer_start_drops_what_the_older_run_reports() -> None:
    task = BackgroundTask()
    first_may_finish = threading.Event()
    results: list[str] = []

    def slow(job):
        first_may_finish.wait(10)
        job.update(0.9, "stale")
        return "old"

    task.start(slow, results.append)
    task.start(lambda job: "new", results.append)
    task.wait(10)
    first_may_finish.set()
    # The old thread ends too; what it hands back is dropped.
    for thread in threading.enumerate():
        if thread.name.startswith("workbench-") and thread is not threading.current_thread():
            thread.join(10)
    assert results == ["new"]
    assert task.message != "stale"


def test_exclusive_work_is_not_started_twice() -> None:
    task = BackgroundTask()
    release = threading.Event()
    assert task.start(lambda job: release.wait(10), exclusive=True)
    assert not task.start(lambda job: None, exclusive=True)
    release.set()
    task.wait(10)
    assert task.start(lambda job: None, exclusive=True)
    task.wait(10)


def test_the_progress_row_follows_the_task() -> None:
    task = BackgroundTask()
    row = ui.progress_row(task)
    bar = row.select(pn.indicators.Progress)[0]
    assert not bar.visible
    release = threading.Event()
    task.start(lambda job: (job.update(0.25, "a quarter", force=True), release.wait(10)))
    for _ in range(100):
        if task.progress == 25:
            break
        release.wait(0.05)
    assert bar.visible and bar.value == 25
    release.set()
    task.wait(10)
    assert not bar.visible


class _SlowWire(Comm):
    """A notebook comm whose transport is a list: each fragment Panel sends is kept in order, with a
    pause after it, as a busy kernel's IOPub gives other threads time to send in between."""

    def __init__(self) -> None:
        super().__init__()
        self._comm = True  # open: Panel sends at once instead of rescheduling
        self.fragments: list[str | bytes] = []

    def send(self, data=None, metadata=None, buffers=()):  # noqa: ANN001 - pyviz_comms' signature
        self.fragments.append(buffers[0] if buffers else data)
        time.sleep(0.002)


def test_changes_made_from_two_threads_reach_the_notebook_as_whole_patches() -> None:
    """A background update and the kernel's own change to one output at the same moment: Panel sends
    each patch as several comm messages, and BokehJS puts them together in order per output. Every
    patch must arrive whole (interleaved, the page drops them: "TypeError: s is not iterable")."""
    wire = _SlowWire()
    status, progress = pn.pane.Markdown("start"), pn.indicators.Progress(value=0)
    doc = Document()
    add_to_doc(pn.Column(status, progress).get_root(doc, comm=wire), doc, hold=True)  # as a notebook output
    task = BackgroundTask()
    go = threading.Barrier(2)

    def work(job):
        go.wait(10)
        for i in range(20):
            job.ui(lambda i=i: status.param.update(object=f"background {i}"))
        return None

    task.start(work)
    go.wait(10)
    for i in range(20):  # the kernel's thread, e.g. a periodic callback or a click
        progress.value = i
    assert task.wait(10)

    receiver = Receiver(Protocol())
    shown: dict[str, list[object]] = {"text": [], "value": []}
    for fragment in wire.fragments:
        message = asyncio.run(receiver.consume(fragment))
        if message is not None:
            assert message.msgtype == "PATCH-DOC"
            assert isinstance(message.content.get("events"), list), f"a patch arrived in pieces: {message.content}"
            for event in message.content["events"]:
                shown[event["attr"]].append(event["new"])
    # Nothing is lost on the way: every change each thread made reached the page.
    assert sorted(shown["text"]) == sorted(f"&lt;p&gt;background {i}&lt;/p&gt;\n" for i in range(20))
    assert sorted(shown["value"]) == list(range(1, 20))  # 0 was the value already


def _texts_after_replay(page: Document, wire: _SlowWire) -> list[str]:
    """Apply what went over the wire to the browser's copy of the document, in order (a patch naming
    a model the page does not hold fails here, as in the browser); the texts it then shows, sorted."""
    receiver = Receiver(Protocol())
    for fragment in wire.fragments:
        message = asyncio.run(receiver.consume(fragment))
        if message is not None:
            page.apply_json_patch(message.content)
    return sorted(m.text for m in page.models if type(m).__name__ == "HTML")


def test_a_model_a_patch_brings_is_known_to_the_page_before_another_patch_refers_to_it(monkeypatch) -> None:
    """A background update adds a pane to an output and then changes it, while the kernel's thread
    changes another pane of that output: the patch that brings the new pane must reach the page
    before any patch that refers to it by id (else the page fails with "reference ... isn't known" and
    drops the change). The background thread is held just before it makes its patch, the moment the
    kernel's thread used to make it instead and send it late."""
    from panel.io import notebook

    wire = _SlowWire()
    other = pn.pane.Markdown("start")
    column = pn.Column(other)
    doc = Document()
    add_to_doc(column.get_root(doc, comm=wire), doc, hold=True)  # as a notebook output
    page = Document.from_json(doc.to_json())  # what the browser holds once the output is drawn
    added = pn.pane.Markdown("added")
    diffing, kernel_done = threading.Event(), threading.Event()
    diff = notebook.diff

    def held_diff(*args, **kwargs):  # noqa: ANN002, ANN003 - Panel's signature
        if threading.current_thread() is not threading.main_thread() and not diffing.is_set():
            diffing.set()
            kernel_done.wait(1)  # with the fix the kernel's thread waits for this patch: give up soon
        return diff(*args, **kwargs)

    def work(job) -> None:  # noqa: ANN001
        def show() -> None:
            column.append(added)
            added.object = "changed in the background"
        job.ui(show)

    monkeypatch.setattr(notebook, "diff", held_diff)
    task = BackgroundTask()
    task.start(work)
    assert diffing.wait(10)
    other.object = "changed by the kernel"  # the kernel's thread, e.g. a periodic callback or a click
    kernel_done.set()
    assert task.wait(10)

    assert _texts_after_replay(page, wire) == ["&lt;p&gt;changed by the kernel&lt;/p&gt;\n", "&lt;p&gt;changed in the background&lt;/p&gt;\n"]


def test_a_change_made_before_the_page_opened_the_output_reaches_it_once_open() -> None:
    """A background result lands while the output is still being drawn (the page has not opened its
    comm yet): nothing is sent then, and once the comm is open the page gets the change whole, so a
    later patch that refers to the new pane by id finds it."""
    wire = _SlowWire()
    wire._comm = None  # the page has not drawn the output yet
    column = pn.Column(pn.pane.Markdown("start"))
    doc = Document()
    add_to_doc(column.get_root(doc, comm=wire), doc, hold=True)  # as a notebook output
    page = Document.from_json(doc.to_json())  # what the browser draws
    added = pn.pane.Markdown("added")
    task = BackgroundTask()
    task.start(lambda job: job.ui(lambda: column.append(added)))
    assert task.wait(10)
    time.sleep(0.3)
    assert wire.fragments == []  # a comm that is not open is not written to
    wire._comm = True  # the page drew the output and opened its comm
    deadline = time.monotonic() + 10
    while not wire.fragments and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the rest of the patch's fragments
    added.object = "changed later"  # by id only: the page must know the pane by now

    assert _texts_after_replay(page, wire) == ["&lt;p&gt;changed later&lt;/p&gt;\n", "&lt;p&gt;start&lt;/p&gt;\n"]


def test_a_result_reaches_a_served_page_whose_browser_never_reports_it_drawn() -> None:
    """A served page's update waits for the browser's "document ready"; when that never comes (here,
    no browser ever connects to the session the page request created), it is shown anyway."""
    import httpx

    from support import free_port
    from workbench.widgets import background

    shown: list[int] = []

    def page() -> pn.viewable.Viewable:
        task = BackgroundTask()
        task.start(lambda job: 42, done=shown.append)
        return pn.pane.Markdown("a page")

    port = free_port()
    server = pn.serve({"page": page}, port=port, threaded=True, show=False, start=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/page", timeout=10).status_code == 200
                break
            except httpx.TransportError:
                time.sleep(0.1)
        asked = time.monotonic()
        while not shown and time.monotonic() < asked + background._ONLOAD_FALLBACK + 10:
            time.sleep(0.05)
        assert shown == [42]
    finally:
        server.stop()
