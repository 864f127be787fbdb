"""Call a function every few seconds on a daemon thread until stopped: how a live monitor and a
retrain loop keep working in the background of a notebook."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Repeater"]

_log = logging.getLogger(__name__)


class Repeater:
    """Runs ``fn`` every ``interval`` seconds on a thread named ``name``; a failing call is logged
    (``what`` names it) and the next one runs as usual."""

    def __init__(self, fn: Callable[[], object], *, name: str, what: str) -> None:
        self.fn = fn
        self.name = name
        self.what = what
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, interval: float) -> None:
        """Start calling (a no-op while already running)."""
        if self.running:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.fn()
                except Exception as exc:  # keep going through a hiccup
                    _log.warning("%s failed: %s", self.what, exc)
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop calling; waits up to ``timeout`` seconds for a running call to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
