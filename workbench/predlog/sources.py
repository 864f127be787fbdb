"""Where prediction logs are read from: a log folder or a running server, page by page.

Each source returns pages of the prediction log after a cursor (``since``), so the monitor keeps one
cursor per source and never reads a record twice. A deployment with several replicas is several
sources (one per replica's log folder or URL)::

    LogFolderSource("/path/to/deployment/predictions")
    ServerSource("http://127.0.0.1:8080")           # GET /workbench/predictions?since=N&limit=M
    StoreSource("postgresql://wb@db:5432/workbench?deployment=churn")   # every replica, one query

:func:`recent_rows` (and :func:`recent_records`) read "the newest rows" of one or several sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from workbench.errors import MonitoringError, NotFoundError
from workbench.predlog.feedback import FeedbackPage, latest_feedback, read_feedback
from workbench.predlog.reader import LogRows, PredictionPage, log_rows, read_predictions
from workbench.predlog.schema import META_COLUMNS, RECORD_COLUMNS
from workbench.predlog.store import StoreSource, is_store_url

__all__ = ["FeedbackSource", "LogFolderSource", "PredictionSource", "ServerSource", "as_source", "labelled_rows",
           "read_all_feedback", "recent_records", "recent_rows"]


@runtime_checkable
class PredictionSource(Protocol):
    """Anything that returns prediction-log pages after a cursor."""

    #: Identifies the source (its cursor is kept under this name).
    name: str

    def fetch(self, since: int, limit: int) -> PredictionPage:
        """Records with ``seq > since``, oldest first, at most ``limit``."""
        ...


@runtime_checkable
class FeedbackSource(Protocol):
    """A source that also returns the feedback (ground truth, rewards) recorded beside its log."""

    name: str

    def fetch_feedback(self, since: int, limit: int) -> FeedbackPage:
        """Feedback with ``seq > since``, oldest first, at most ``limit``."""
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

    def fetch_feedback(self, since: int, limit: int) -> FeedbackPage:
        """Feedback read straight from the log (an empty page while there is none)."""
        try:
            return read_feedback(self.folder, since=since, limit=limit)
        except NotFoundError:
            return FeedbackPage(pd.DataFrame(), since)


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
        body = self._get("predictions", since, limit)
        return PredictionPage.from_json(body) if body is not None else PredictionPage(pd.DataFrame(), since)

    def fetch_feedback(self, since: int, limit: int) -> FeedbackPage:
        """One page of the server's recorded feedback (``GET /workbench/feedback``)."""
        body = self._get("feedback", since, limit)
        return FeedbackPage.from_json(body) if body is not None else FeedbackPage(pd.DataFrame(), since)

    def _get(self, what: str, since: int, limit: int) -> Any:
        """The JSON body of ``/workbench/<what>``; ``None`` while the server has logged nothing."""
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, headers=self.headers)
        try:
            response = self._client.get(f"{self.url}/workbench/{what}",
                                        params={"since": since, "limit": min(limit, 10_000)})
        except httpx.HTTPError as exc:
            raise MonitoringError(
                f"cannot read {what} from {self.url} ({exc}): is the server running and the URL right?"
            ) from exc
        if response.status_code == 404 and "no prediction log" in response.text:
            return None
        if response.status_code != 200:
            raise MonitoringError(
                f"{self.url}/workbench/{what} answered {response.status_code}: {response.text[:200]}"
            )
        return response.json()

    def close(self) -> None:
        """Close the HTTP connection."""
        if self._client is not None:
            self._client.close()
            self._client = None


def as_source(source: PredictionSource | str | Path) -> PredictionSource:
    """A source from a URL (``http://...``: a server; ``postgresql://...?deployment=NAME``: the log
    store), a folder path, or a source object."""
    if isinstance(source, PredictionSource):
        return source
    text = str(source)
    if text.startswith(("http://", "https://")):
        return ServerSource(text)
    if is_store_url(text):
        return StoreSource(text)
    return LogFolderSource(text)


def _tail_pages(source: PredictionSource, keep: int, size: Any, page_size: int) -> Iterable[PredictionPage]:
    """Pages through ``source`` from the start and yields the last pages whose ``size(page)`` adds up
    to at least ``keep`` (pages wholly older than that tail are dropped as reading goes)."""
    pages: list[tuple[PredictionPage, int]] = []
    kept, since = 0, 0
    while True:
        page = source.fetch(since, page_size)
        if not len(page):
            break
        n = size(page)
        pages.append((page, n))
        kept += n
        while pages and kept - pages[0][1] >= keep:
            kept -= pages.pop(0)[1]
        since = page.next_since
        if not page.more:  # a page is cut short by records or by bytes; the end is when none follow
            break
    return [page for page, _ in pages]


def _sources(sources: PredictionSource | str | Path | Sequence[PredictionSource | str | Path]) -> list[PredictionSource]:
    if isinstance(sources, (str, Path)) or not isinstance(sources, Sequence):
        return [as_source(sources)]
    return [as_source(s) for s in sources]


def recent_rows(sources: PredictionSource | str | Path | Sequence[PredictionSource | str | Path], rows: int, *,
                page_size: int = 10_000, positions: bool = False) -> LogRows:
    """The newest ``rows`` rows over one or several logs (every replica of a deployment), oldest first.

    Each source is a log folder, a server URL or a :class:`~workbench.predlog.sources.PredictionSource`;
    rows of several sources are merged by time. ``positions=True`` adds ``row``, each row's position
    in its request (what feedback names). An empty result has the meta columns and no rows.
    """
    if rows <= 0:
        raise MonitoringError(f"reading recent rows needs a positive number of rows, got {rows}")
    chunks: list[LogRows] = []
    for src in _sources(sources):
        # The store selects the newest rows itself (one query); other sources are paged through.
        pages = [src.tail(rows)] if isinstance(src, StoreSource) else \
            _tail_pages(src, rows, lambda page: int(page.records["n_rows"].sum()), page_size)
        for page in pages:
            chunk = log_rows(page.records, source=src.name)
            chunks.append(_positioned(chunk) if positions else chunk)
    return _merged(chunks, rows)


def _positioned(chunk: LogRows) -> LogRows:
    """``chunk`` with ``row``, each row's position in its request (pages hold whole requests: the
    count restarts at each one)."""
    chunk.frame["row"] = chunk.frame.groupby("seq", sort=False).cumcount()
    return chunk


def _merged(chunks: list[LogRows], rows: int) -> LogRows:
    """The newest ``rows`` rows of several sources' chunks, merged by time."""
    if not chunks:
        return LogRows(pd.DataFrame(columns=list(META_COLUMNS)), (), ())
    inputs = tuple(dict.fromkeys(name for chunk in chunks for name in chunk.inputs))
    outputs = tuple(dict.fromkeys(name for chunk in chunks for name in chunk.outputs))
    frame = pd.concat([chunk.frame for chunk in chunks], ignore_index=True)
    if len(chunks) > 1:
        frame = frame.sort_values("ts", kind="stable")
    return LogRows(frame.iloc[-rows:].reset_index(drop=True), inputs, outputs)


def labelled_rows(sources: PredictionSource | str | Path | Sequence[PredictionSource | str | Path],
                  rows: int, *, page_size: int = 10_000) -> LogRows:
    """The newest ``rows`` rows (as :func:`recent_rows`, with ``row``) and the feedback each got:
    ``truth`` and ``reward`` columns, missing where none arrived.

    Each log's feedback labels that log's answers (the route records it on every server that
    answered the request: a shadow challenger's log has it too).
    """
    found = _sources(sources)
    stores = [src for src in found if isinstance(src, StoreSource)]
    others = [src for src in found if not isinstance(src, StoreSource)]
    # The store joins each of the newest records to its feedback in the database (one query).
    joined_in_store = [src.tail_labelled(rows) for src in stores]
    chunks = [_positioned(log_rows(page.records, source=src.name))
              for src, (page, _) in zip(stores, joined_in_store) if len(page)]
    if others:
        chunks.append(recent_rows(others, rows, page_size=page_size, positions=True))
    logged = _merged(chunks, rows)
    feedback = pd.concat([*(fb for _, fb in joined_in_store),
                          *(read_all_feedback(src, page_size).records for src in others)], ignore_index=True)
    frame = logged.frame
    if "row" not in frame.columns:
        frame = frame.assign(row=pd.Series(dtype="int64"))
    truths = feedback[["source", "prediction_seq", "row", "truth", "reward"]].rename(columns={"prediction_seq": "seq"})
    truths = truths.astype({"seq": "int64", "row": "int64"})
    joined = frame.merge(truths, on=["source", "seq", "row"], how="left", sort=False)
    return LogRows(joined, logged.inputs, logged.outputs)


def read_all_feedback(source: PredictionSource, page_size: int = 10_000, since: int = 0,
                      max_items: int | None = None) -> FeedbackPage:
    """The feedback ``source`` recorded after ``since`` (at most about ``max_items``), page by page:
    the newest of each answered row, with a ``source`` column (empty for sources that keep no
    feedback), and the cursor to continue from."""
    pages, taken, more = [], 0, False
    if isinstance(source, FeedbackSource):
        while max_items is None or taken < max_items:
            page = source.fetch_feedback(since, page_size)
            if not len(page):
                more = False
                break
            pages.append(page.records)
            taken += len(page)
            since, more = page.next_since, page.more
            if not page.more:
                break
    return FeedbackPage(latest_feedback(pages, source=source.name), since, more)


def recent_records(sources: PredictionSource | str | Path | Sequence[PredictionSource | str | Path],
                   requests: int, *, page_size: int = 10_000) -> pd.DataFrame:
    """The newest ``requests`` records (one per answered request) over one or several logs, oldest
    first, with a ``source`` column; empty when nothing was logged."""
    if requests <= 0:
        raise MonitoringError(f"reading recent records needs a positive number of requests, got {requests}")
    frames = [page.records.assign(source=src.name)
              for src in _sources(sources)
              for page in ([src.tail(requests=requests)] if isinstance(src, StoreSource)
                           else _tail_pages(src, requests, len, page_size))]
    if not frames:
        return pd.DataFrame(columns=[*RECORD_COLUMNS, "source"])
    frame = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        frame = frame.sort_values("ts", kind="stable")
    return frame.iloc[-requests:].reset_index(drop=True)
