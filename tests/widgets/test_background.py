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
from pyviz_comms import Comm, CommManager

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


def _open(wire: _SlowWire) -> None:
    """The page opens the output's comm; wait for what was held for it to be sent."""
    wire._comm = True
    deadline = time.monotonic() + 10
    while not wire.fragments and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the rest of the patch's fragments


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
    _open(wire)  # the page drew the output and opened its comm
    added.object = "changed later"  # by id only: the page must know the pane by now

    assert _texts_after_replay(page, wire) == ["&lt;p&gt;changed later&lt;/p&gt;\n", "&lt;p&gt;start&lt;/p&gt;\n"]


class _ClosedWire(_SlowWire):
    """An output's comm as Panel makes it while drawing the output: closed until the page opens it."""

    made: list[_ClosedWire] = []

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - pyviz_comms' signature
        super().__init__()
        self._comm = None
        _ClosedWire.made.append(self)


class _Kernel(CommManager):
    server_comm = _ClosedWire
    client_comm = Comm


def _draw_in_a_notebook(monkeypatch, viewable: pn.viewable.Viewable) -> tuple[Document, _ClosedWire]:  # noqa: ANN001
    """Draw ``viewable`` as a notebook cell's output (``_repr_mimebundle_``): the document the page
    builds from it, and the output's comm."""
    from panel.config import panel_extension
    from panel.io import notebook
    from panel.io.state import state

    monkeypatch.setattr(panel_extension, "_loaded", True)
    monkeypatch.setattr(pn.config, "console_output", "disable")
    monkeypatch.setattr(state, "_comm_manager", _Kernel)
    drawn = []
    render = notebook.standalone_docs_json_and_render_items

    def kept(*args, **kwargs):  # noqa: ANN002, ANN003 - Bokeh's signature
        docs_json, items = render(*args, **kwargs)
        drawn.append(docs_json)
        return docs_json, items

    monkeypatch.setattr(notebook, "standalone_docs_json_and_render_items", kept)
    _ClosedWire.made.clear()
    viewable._repr_mimebundle_()
    (docs_json,), (wire,) = drawn, _ClosedWire.made
    return Document.from_json(next(iter(docs_json.values()))), wire


def test_a_change_made_while_the_kernel_draws_the_output_reaches_the_page(monkeypatch) -> None:
    """A background update lands while the kernel's thread draws the output: Bokeh serialises the
    document and then marks every model in it known to the page, so a pane added in between must
    wait for the drawing (else it is marked known unsent, and the patch that adds it names it by id
    only: "reference ... isn't known" in the browser, the monitor's update lost). The kernel's thread
    is held between the two steps."""
    from bokeh.document.models import DocumentModelManager

    column = pn.Column(pn.pane.Markdown("start"))
    added = pn.pane.Markdown("added")
    drawing, changed = threading.Event(), threading.Event()
    flush = DocumentModelManager.flush_synced

    def held_flush(self, is_still_new=None):  # noqa: ANN001 - Bokeh's signature
        if is_still_new is None and threading.current_thread() is threading.main_thread() and not drawing.is_set():
            drawing.set()
            changed.wait(1)  # with the fix the task waits for the drawing: give up soon
        return flush(self, is_still_new)

    def work(job) -> None:  # noqa: ANN001
        assert drawing.wait(10)
        job.ui(lambda: column.append(added))
        changed.set()

    monkeypatch.setattr(DocumentModelManager, "flush_synced", held_flush)
    task = BackgroundTask()
    task.start(work)
    page, wire = _draw_in_a_notebook(monkeypatch, column)
    assert task.wait(10)
    _open(wire)
    added.object = "changed later"  # by id only: the page must know the pane by now

    assert _texts_after_replay(page, wire) == ["&lt;p&gt;changed later&lt;/p&gt;\n", "&lt;p&gt;start&lt;/p&gt;\n"]


def test_a_message_from_the_browser_keeps_the_changes_waiting_for_the_comm(monkeypatch) -> None:
    """The browser sends a message (a widget's new value) while a background change waits for the
    output's comm to open: Panel's handling of the message releases the document's held events, and
    the waiting change must still reach the page, whole, once the comm is open."""
    from panel.io.state import state

    status = pn.pane.Markdown("start")
    toggle = pn.widgets.Checkbox(value=False)
    column = pn.Column(status, toggle)
    page, wire = _draw_in_a_notebook(monkeypatch, column)
    task = BackgroundTask()
    task.start(lambda job: job.ui(lambda: column.append(pn.pane.Markdown("added in the background"))))
    assert task.wait(10)

    (ref,) = [ref for ref, view in state._views.items() if view[3] is wire]
    checkbox = next(m for m in page.models if type(m).__name__ == "Checkbox")
    content = {"events": [{"kind": "ModelChanged", "model": {"id": checkbox.id}, "attr": "active", "new": True}]}
    message = {"header": {"msgid": "1", "msgtype": "PATCH-DOC"}, "metadata": {}, "content": content, "_buffers": {}}
    _, client = column._comms[ref]
    client._on_msg(message)  # as the kernel's comm thread hands it over
    assert toggle.value is True

    _open(wire)
    assert _texts_after_replay(page, wire) == ["&lt;p&gt;added in the background&lt;/p&gt;\n",
                                               "&lt;p&gt;start&lt;/p&gt;\n"]


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
