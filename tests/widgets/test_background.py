"""BackgroundTask: long work on a thread, its progress, result and errors handed back to the page."""

from __future__ import annotations

import threading

import panel as pn

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
