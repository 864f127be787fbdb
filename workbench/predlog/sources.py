"""Where prediction logs are read from: a log folder or a running server, page by page.

Each source returns pages of the prediction log after a cursor (``since``), so the monitor keeps one
cursor per source and never reads a record twice. A deployment with several replicas is several
sources (one per replica's log folder or URL)::

    LogFolderSource("/path/to/deployment/predictions")
    ServerSource("http://127.0.0.1:8080")           # GET /workbench/predictions?since=N&limit=M
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from workbench.errors import MonitoringError, NotFoundError
from workbench.predlog.reader import PredictionPage, read_predictions

__all__ = ["LogFolderSource", "PredictionSource", "ServerSource", "as_source"]


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
