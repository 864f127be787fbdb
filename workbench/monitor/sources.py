"""Where a live monitor reads predictions from: a log folder or a running server, page by page.

Each source returns pages of the prediction log after a cursor (``since``), so the monitor keeps one
cursor per source and never reads a record twice. A deployment with several replicas is several
sources (one per replica's log folder or URL)::

    LogFolderSource("/path/to/deployment/predictions")
    ServerSource("http://127.0.0.1:8080")           # GET /workbench/predictions?since=N&limit=M
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pandas as pd

from workbench.errors import MonitoringError, NotFoundError

if TYPE_CHECKING:
    from workbench.serving.predlog import PredictionPage

# The serving package is imported inside functions: importing it loads the whole ASGI server stack.

__all__ = [
    "LogFolderSource", "LogRows", "PredictionSource", "ServerSource", "as_source", "log_rows", "read_recent",
]

#: Columns every row read from a prediction log carries besides inputs and outputs.
META_COLUMNS = ("request_id", "ts", "model_version", "seq", "source")


@runtime_checkable
class PredictionSource(Protocol):
    """Anything that returns prediction-log pages after a cursor."""

    #: Identifies the source (its cursor is kept under this name).
    name: str

    def fetch(self, since: int, limit: int) -> PredictionPage:
        """Records with ``seq > since``, oldest first, at most ``limit``."""
        ...


class LogFolderSource:
    """A prediction log folder on this machine (``predictions.db`` inside)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.name = str(self.folder)

    def __repr__(self) -> str:
        return f"LogFolderSource({self.name!r})"

    def fetch(self, since: int, limit: int) -> PredictionPage:
        """A page read straight from the SQLite log (an empty page while the log does not exist yet)."""
        from workbench.serving.predlog import PredictionPage, read_predictions

        try:
            return read_predictions(self.folder, since=since, limit=limit)
        except NotFoundError:
            return PredictionPage(pd.DataFrame(), since)


class ServerSource:
    """A running inference server, read over HTTP (``GET /workbench/predictions``)."""

    def __init__(self, url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.name = self.url
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._client: Any = None

    def __repr__(self) -> str:
        return f"ServerSource({self.url!r})"

    def fetch(self, since: int, limit: int) -> PredictionPage:
        """One page from the server; connection problems become :class:`MonitoringError`."""
        import httpx

        from workbench.serving.predlog import PredictionPage

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, headers=self.headers)
        try:
            response = self._client.get(f"{self.url}/workbench/predictions",
                                        params={"since": since, "limit": min(limit, 10_000)})
        except httpx.HTTPError as exc:
            raise MonitoringError(
                f"cannot read predictions from {self.url} ({exc}): is the server running and the URL right?"
            ) from exc
        if response.status_code == 404 and "no prediction log" in response.text:
            return PredictionPage(pd.DataFrame(), since)
        if response.status_code != 200:
            raise MonitoringError(
                f"{self.url}/workbench/predictions answered {response.status_code}: {response.text[:200]}"
            )
        return PredictionPage.from_json(response.json())

    def close(self) -> None:
        """Close the HTTP connection."""
        if self._client is not None:
            self._client.close()
            self._client = None


def as_source(source: PredictionSource | str | Path) -> PredictionSource:
    """A source from a URL (``http://...``), a folder path, or a source object."""
    if isinstance(source, PredictionSource):
        return source
    text = str(source)
    if text.startswith(("http://", "https://")):
        return ServerSource(text)
    return LogFolderSource(text)


@dataclass(frozen=True)
class LogRows:
    """Rows of a prediction log: one row per predicted input row."""

    #: Input columns, then output columns, then ``request_id``, ``ts``, ``model_version``, ``seq``
    #: and ``source``.
    frame: pd.DataFrame
    #: Names of the input (feature) columns in ``frame``.
    inputs: tuple[str, ...]
    #: Names of the output columns in ``frame`` (``predict``, ``predict_proba``, ...).
    outputs: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.frame)


def log_rows(records: pd.DataFrame, source: str = "") -> LogRows:
    """One row per predicted input row of a page's records, tagged with the source they came from."""
    from workbench.serving.predlog import page_rows

    frame, inputs, outputs = page_rows(records)
    frame["source"] = source
    return LogRows(frame, inputs, outputs)


def read_recent(source: PredictionSource | str | Path, rows: int, *, page_size: int = 10_000) -> LogRows:
    """The newest ``rows`` rows of a source's log (paged through from the start, keeping the tail)."""
    src = as_source(source)
    if rows <= 0:
        raise MonitoringError(f"read_recent needs a positive number of rows, got {rows}")
    frames: list[pd.DataFrame] = []
    kept = 0
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    since = 0
    while True:
        page = src.fetch(since, page_size)
        if not len(page):
            break
        chunk = log_rows(page.records, source=src.name)
        inputs = tuple(dict.fromkeys((*inputs, *chunk.inputs)))
        outputs = tuple(dict.fromkeys((*outputs, *chunk.outputs)))
        frames.append(chunk.frame)
        kept += len(chunk)
        while frames and kept - len(frames[0]) >= rows:  # drop pages wholly older than the tail
            kept -= len(frames.pop(0))
        since = page.next_since
        if not page.more:  # a page is cut short by records or by bytes; the end is when none follow
            break
    if not frames:
        return LogRows(pd.DataFrame(columns=list(META_COLUMNS)), (), ())
    frame = pd.concat(frames, ignore_index=True).iloc[-rows:].reset_index(drop=True)
    return LogRows(frame, inputs, outputs)
