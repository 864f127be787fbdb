"""Opening a server's prediction log: the embedded SQLite file, or the shared PostgreSQL store.

:func:`open_log` is the one place that chooses: ``open_log(folder)`` is the SQLite log in
``folder`` (the default, one machine); ``open_log(folder, url="postgresql://...", deployment=NAME)``
writes to the store, spooling in ``folder`` while it is away. Both are a :class:`LogWriter`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from workbench.predlog.feedback import FeedbackItem, FeedbackPage, FeedbackResult
from workbench.predlog.log import PredictionLog
from workbench.predlog.reader import PredictionPage
from workbench.predlog.schema import LogHealth, LogRecord
from workbench.predlog.store import is_store_url

__all__ = ["LogWriter", "log_store_env", "log_store_source", "open_log"]


class LogWriter(Protocol):
    """What a server writes its records and feedback through (and reads its routes' pages from)."""

    #: The replica's identity, recorded with each record.
    replica: str
    #: The local folder (the SQLite log's, or the store's spool).
    folder: Path

    @property
    def where(self) -> str:
        """Where records go, for messages."""
        ...

    def submit(self, records: Sequence[LogRecord], done: Callable[[BaseException | None], None], *,
               taken: Callable[[], None] | None = None) -> None:
        """Queue records; ``done`` is called once they are committed (or could not be), ``taken``
        (when given) as the writer starts on them."""
        ...

    def submit_feedback(self, items: Sequence[FeedbackItem],
                        done: Callable[[list[FeedbackResult], BaseException | None], None], *,
                        model_version: str | None) -> None:
        """Queue feedback; ``done`` is called once it is committed (or could not be)."""
        ...

    def health(self) -> LogHealth:
        """Whether records can be committed now, and where they go."""
        ...

    def read(self, since: int = 0, limit: int | None = 1000, *, max_bytes: int | None = None) -> PredictionPage:
        """Records after cursor ``since``."""
        ...

    def read_feedback(self, since: int = 0, limit: int = 10_000) -> FeedbackPage:
        """Feedback after cursor ``since``."""
        ...

    def close(self) -> None:
        """Commit what is queued and stop."""
        ...


def open_log(folder: str | Path, *, url: str | None = None, deployment: str | None = None,
             replica: str | None = None) -> LogWriter:
    """The log a server writes: the SQLite log in ``folder``, or with ``url`` (``postgresql://...``)
    the shared store under ``deployment``, spooling to ``folder`` while the store is away."""
    if url:
        if not is_store_url(url):
            from workbench.errors import ConfigurationError

            raise ConfigurationError(f"the log URL must start with postgresql://, not {url.split('://')[0]}://: "
                                     "set WORKBENCH_LOG_URL (or --log-url) to a PostgreSQL URL, or unset it for "
                                     "the embedded log")
        from workbench.predlog.storelog import StoreLog

        return StoreLog(url, folder, deployment=deployment, replica=replica)
    return PredictionLog(folder, replica=replica)


def log_store_env(url: str, deployment: str) -> dict[str, str]:
    """The environment that makes a model server (``workbench serve``, a model image) write its log
    to the store ``url`` under ``deployment``: what a deploy target sets on every replica's process,
    container or pod (the same as ``--log-url URL --deployment NAME``)."""
    from workbench.predlog.store import StoreURL

    StoreURL.parse(url)  # a bad URL fails at deploy time, not in every replica
    return {"WORKBENCH_LOG_URL": url, "WORKBENCH_DEPLOYMENT": deployment}


def log_store_source(url: str, deployment: str) -> str:
    """The one ``log_sources`` entry of a deployment whose replicas write the store ``url``:
    ``postgresql://user@host:port/db?deployment=NAME``, its password left out (readers take it from
    ``PGPASSWORD`` or ``~/.pgpass``, or from ``WORKBENCH_LOG_URL`` when it names the same database)."""
    from workbench.predlog.store import StoreURL, replace_password

    parsed = StoreURL.parse(url)
    return StoreURL(replace_password(parsed.dsn, None), deployment).name
