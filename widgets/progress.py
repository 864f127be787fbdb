"""Progress bars for long calls made from plain Python: ``tqdm.auto`` draws a widget in a notebook and
text in a terminal.

::

    from workbench.widgets import progress
    image = progress.package("models:/churn@champion")          # a bar over the Dockerfile steps
    dep = progress.deploy("models:/churn@champion", target="local")
    runs = progress.load_runs("churn")                            # a counter while MLflow pages in

Or feed any ``on_event`` argument of the core: ``wb.package(uri, on_event=BuildProgress("building"))``.
The widgets show their own progress on the page; these are for code in cells and scripts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any

import pandas as pd
from tqdm.auto import tqdm

import workbench as wb
from workbench.tracking import iter_runs

__all__ = ["BuildProgress", "deploy", "load_runs", "package"]


class BuildProgress:
    """An ``on_event`` callback drawing image build events (:class:`~workbench.packaging.BuildEvent`)
    as a bar over the Dockerfile's steps; also a context manager that closes the bar.

    Before the first step is known (sending the context, waiting for a server to become ready) the
    bar shows the elapsed time, refreshed every half second.
    """

    def __init__(self, description: str = "building", *, file: IO[str] | None = None) -> None:
        self.description = description
        self._bar = tqdm(total=None, desc=description, unit="step", file=file, leave=True,
                         bar_format="{desc}: {n_fmt}/{total_fmt} steps |{bar}| {elapsed}")
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="workbench-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._bar.refresh()

    def __call__(self, event: Any) -> None:
        """Take one build event."""
        if event.kind == "step" and event.total_steps:
            self._bar.total = event.total_steps
            self._bar.n = max(0, (event.step or 1) - 1)
            self._bar.set_description_str(f"{self.description}: {event.message[:40]}", refresh=False)
            self._bar.refresh()
        elif event.kind == "done":
            if self._bar.total is None:
                self._bar.total = event.total_steps or 1
            self._bar.n = self._bar.total
            self._bar.set_description_str(self.description, refresh=False)
            self._bar.refresh()

    def note(self, text: str) -> None:
        """Show what is happening besides build steps."""
        self._bar.set_description_str(f"{self.description}: {text}")

    def close(self) -> None:
        """Stop refreshing and close the bar."""
        self._stop.set()
        self._ticker.join(timeout=2)
        self._bar.close()

    def __enter__(self) -> BuildProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def package(model_uri: str, *, file: IO[str] | None = None, **kwargs: Any) -> Any:
    """:func:`workbench.package` with a progress bar; returns its :class:`~workbench.ImageRecord`."""
    with BuildProgress(f"packaging {model_uri}", file=file) as bar:
        return wb.package(model_uri, on_event=bar, **kwargs)


def deploy(model_uri: str, *, target: str = "local", file: IO[str] | None = None, **kwargs: Any) -> Any:
    """:func:`workbench.deploy` with a progress bar (image build steps for Docker, elapsed time while
    the server starts); returns the :class:`~workbench.Deployment`."""
    with BuildProgress(f"deploying {model_uri} to {target}", file=file) as bar:
        bar.note("starting the server...")
        deployment = wb.deploy(model_uri, target=target, on_event=bar, **kwargs)
        bar.note(f"ready at {deployment.url}")
        return deployment


def load_runs(experiment: str, *, filter_string: str = "", order_by: Sequence[str] | None = None,
              page_size: int = 1000, file: IO[str] | None = None) -> pd.DataFrame:
    """:func:`workbench.runs` page by page with a counter of the runs loaded (useful for thousands)."""
    pages = []
    with tqdm(desc=f"runs of {experiment}", unit="run", file=file) as bar:
        for page in iter_runs(experiment, filter_string=filter_string, order_by=order_by, page_size=page_size):
            pages.append(page)
            bar.update(len(page))
    return pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]
