"""The background repeater behind LiveMonitor.start and RetrainLoop.start."""

from __future__ import annotations

import threading

from workbench._repeat import Repeater


def test_it_calls_again_after_a_failure_and_stops_when_told(caplog) -> None:
    calls: list[int] = []
    third = threading.Event()

    def work() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("a source hiccuped")
        if len(calls) >= 3:
            third.set()

    repeater = Repeater(work, name="test-repeater", what="test work")
    repeater.start(0.01)
    repeater.start(0.01)  # already running: no second thread
    assert third.wait(10)
    repeater.stop(10)
    assert not repeater.running
    stopped_at = len(calls)
    threading.Event().wait(0.1)
    assert len(calls) == stopped_at
    assert "test work failed: a source hiccuped" in caplog.text
    assert [t.name for t in threading.enumerate()].count("test-repeater") == 0
