"""The writer of one replica into the shared PostgreSQL log store, spooling while the store is away.

A :class:`StoreLog` takes the same jobs as the embedded :class:`~workbench.predlog.log.PredictionLog`
(prediction records, feedback) and keeps the same promise: a job's ``done`` is called once its
records are committed, and the server answers only then. One writer thread commits what arrived
together in one transaction (a multi-row ``INSERT``) under the deployment's lock.

When the store cannot be reached, the same group is committed to the replica's spool instead
(:mod:`workbench.predlog.spool`, on local disk), and the server keeps answering; feedback sent
meanwhile is answered ``spooled``. Every second the writer tries the store again; when it answers,
the spool is drained oldest first (predictions before the feedback that may label them), and new
records keep going to the spool until it is empty, so their order holds. Each record carries the
idempotency key it got when it was answered: written twice, it is in the store once.

When neither the store nor the spool can be written, the job fails (the server answers 503) and
:meth:`StoreLog.health` says why; the server is ready again once either can be written.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from workbench._ids import new_id
from workbench.errors import InvalidInputError, MonitoringError, StoreUnavailableError
from workbench.predlog.feedback import FeedbackPage, FeedbackResult, classify_feedback, parse_feedback
from workbench.predlog.log import QueuedLog, WriteJob, tell_taken
from workbench.predlog.reader import PredictionPage
from workbench.predlog.schema import LogHealth
from workbench.predlog.spool import SPOOL_FILE, Spool
from workbench.predlog.store import (
    PostgresBook,
    StoreSource,
    StoreURL,
    commit_predictions,
    connect,
    insert_predictions,
    is_unreachable,
    lock_deployment,
)

__all__ = ["StoreLog"]

_log = logging.getLogger("workbench.predlog")

#: Seconds a spooled feedback item whose prediction the store does not know yet is retried: the
#: replica that answered may still be draining its own spool. After that it is refused (logged).
DEFER_UNKNOWN_FEEDBACK = 300.0


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


class StoreLog(QueuedLog):
    """Appends a replica's records to the PostgreSQL store ``url`` under ``deployment``, spooling to
    ``folder`` while the store is away. Call :meth:`close` to flush and stop the writer thread."""

    def __init__(self, url: str | StoreURL, folder: str | Path, *, deployment: str | None = None,
                 replica: str | None = None, max_group: int = 512, retry_every: float = 1.0,
                 drain_chunk: int = 2000) -> None:
        self.url = url if isinstance(url, StoreURL) else StoreURL.parse(url)
        chosen = deployment or self.url.deployment
        if not chosen:
            raise InvalidInputError("a replica writing to the log store needs its deployment's name: "
                                    "pass --deployment NAME (or ?deployment=NAME in the URL)")
        self.deployment = chosen
        self.folder = Path(folder)
        self.path = self.folder / SPOOL_FILE
        self.replica = replica or uuid.uuid4().hex[:12]
        self._max_group = max_group
        self._retry_every = retry_every
        self._drain_chunk = drain_chunk
        self._spool = Spool(self.folder)
        self._conn: Any = None
        self._reader = StoreSource(StoreURL(self.url.dsn, self.deployment))
        # Written by the writer thread only; read by health() from any thread.
        self._spooling = False
        #: Spooled feedback waits for its prediction to reach the store (see DEFER_UNKNOWN_FEEDBACK).
        self._deferred = False
        self._store_problem = ""
        self._spool_problem = ""
        self._spooled = 0
        try:
            self._connection()
        except StoreUnavailableError as exc:  # start anyway: answers are spooled until it returns
            self._spooling, self._store_problem = True, str(exc)
        if self._spool.exists():
            with contextlib.suppress(Exception):
                self._spooled = sum(self._spool.counts())
            self._spooling = self._spooling or self._spooled > 0
        self._queue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log-store", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"StoreLog({self.url.name!r}, deployment={self.deployment!r}, replica={self.replica!r})"

    @property
    def where(self) -> str:
        """Where records go, for messages."""
        return f"the log store {self.url.name} (spool {self.path})"

    def health(self) -> LogHealth:
        """Where records go now: the store, the spool, or nowhere (then the server is not ready)."""
        if self._closed:
            return LogHealth(False, "store", "the prediction log is closed: the server is stopping")
        if self._spool_problem:
            return LogHealth(False, "failing", f"records can be written neither to the log store ({self._store_problem}) "
                             f"nor to the spool {self.path} ({self._spool_problem}): requests are refused with "
                             "503 until either works; start PostgreSQL or free the disk", self._spooled)
        if self._spooling:
            return LogHealth(True, "spool", f"records wait in {self.path} and go to the log store once it answers "
                             f"({self._store_problem or 'draining'})", self._spooled)
        return LogHealth(True, "store", f"writing to the log store {self.url.name}", self._spooled)

    # -- the writer thread ----------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
            # Transactions are spelled out (or one statement string is one): see _write_store.
            self._conn.autocommit = True
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    @property
    def _retrying(self) -> bool:
        """Whether the writer tries the store on a timer: records spooled, a spool problem, or
        feedback deferred until its prediction arrives."""
        return bool(self._spooling or self._spool_problem or self._deferred)

    def _run(self) -> None:
        next_try = time.monotonic()
        try:
            while True:
                timeout = max(0.0, next_try - time.monotonic()) if self._retrying else None
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    item = WriteJob((), (), lambda error: None)  # nothing came: time to try the store
                if item is None:
                    self._final_drain()
                    return
                group = [item] if item.records or item.feedback else []
                stop = False
                while len(group) < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    group.append(nxt)
                if group:
                    self._write(group)
                if stop:
                    self._final_drain()
                    return
                if self._retrying and time.monotonic() >= next_try:
                    more = self._drain_step()
                    next_try = time.monotonic() + (0 if more else self._retry_every)
        finally:
            self._drop_connection()
            self._spool.close()
            self._reader.close()

    def _write(self, group: list[WriteJob]) -> None:
        tell_taken(group)
        now = time.time()
        # Keys first: a group whose commit's answer was lost goes to the spool with the same keys.
        predictions = [
            (self.deployment, self.replica, new_id(), r.request_id, r.ts, r.model_name, r.model_version,
             r.protocol, r.n_rows, r.latency_ms, _dumps(r.inputs), _dumps(r.outputs))
            for job in group for r in job.records
        ]
        feedback = [(job, [(new_id(), item) for item in job.feedback]) for job in group if job.feedback]
        error: BaseException | None = None
        if not self._spooling:
            try:
                self._write_store(predictions, feedback, now)
                self._store_problem = self._spool_problem = ""
            except Exception as exc:  # noqa: BLE001 - told to each job below
                if is_unreachable(exc) or isinstance(exc, StoreUnavailableError):
                    self._drop_connection()
                    self._spooling, self._store_problem = True, _short(exc)
                    _log.warning("the log store is unreachable (%s): spooling to %s", _short(exc), self.path)
                else:
                    error = StoreUnavailableError(f"the log store refused the records ({_short(exc)})")
        if self._spooling and error is None:
            error = self._write_spool(predictions, feedback, now)
        for job in group:
            with contextlib.suppress(Exception):
                job.done(error)

    def _write_store(self, predictions: list[tuple[Any, ...]],
                     feedback: list[tuple[WriteJob, list[tuple[str, Any]]]], now: float) -> None:
        conn = self._connection()
        with conn.cursor() as cur:
            if not feedback:  # the common case: one round trip
                commit_predictions(cur, predictions)
                return
            cur.execute("BEGIN")
            try:
                lock_deployment(cur, self.deployment)
                insert_predictions(cur, predictions)
                book = PostgresBook(cur, self.deployment, self.replica)
                results = []
                for job, keyed in feedback:  # after the predictions: feedback may label one of them
                    book.keys = {id(item): key for key, item in keyed}
                    results.append(classify_feedback(book, job.feedback, now=now, model_version=job.version))
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
        for (job, _), found in zip(feedback, results):
            job.results = found

    def _write_spool(self, predictions: list[tuple[Any, ...]],
                     feedback: list[tuple[WriteJob, list[tuple[str, Any]]]], now: float) -> BaseException | None:
        rows = [(self.deployment, self.replica, key, orjson.dumps(item.to_json()), job.version, now)
                for job, keyed in feedback for key, item in keyed]
        try:
            self._spool.write(predictions, rows)
        except Exception as exc:  # noqa: BLE001 - the disk refused: the requests are refused, said why
            self._spool.close()
            self._spool_problem = _short(exc)
            _log.error("cannot spool to %s (%s) while the log store is unreachable: refusing requests",
                       self.path, self._spool_problem)
            return StoreUnavailableError(
                f"the log store is unreachable ({self._store_problem}) and the spool {self.path} cannot be "
                f"written ({self._spool_problem}): nothing is answered unlogged; start PostgreSQL or free the disk")
        self._spool_problem = ""
        self._spooled += len(predictions) + len(rows)
        for job, keyed in feedback:
            job.results = [FeedbackResult(item.request_id, item.row, "spooled", job.version, message=(
                "the log store is unreachable: kept on this replica's disk and checked against the store's "
                "answers once it returns")) for _, item in keyed]
        return None

    def _drain_step(self) -> bool:
        """Move the oldest chunk of the spool into the store; True while more waits. Leaves spool
        mode once the spool is empty."""
        try:
            conn = self._connection()
            if not self._spool.exists():
                moved = False
            else:
                moved = self._drain_predictions(conn) or self._drain_feedback(conn)
        except Exception as exc:  # noqa: BLE001 - still away (or the spool unreadable): try again later
            self._drop_connection() if is_unreachable(exc) or isinstance(exc, StoreUnavailableError) else None
            self._store_problem = _short(exc)
            return False
        if not moved:
            if self._spooling:
                _log.warning("the log store answers again: the spool %s is drained", self.path)
            self._spooling, self._store_problem, self._spool_problem = False, "", ""
            # Feedback deferred until its prediction reaches the store keeps the retries going (new
            # records go to the store meanwhile).
            self._deferred = self._spool.exists() and self._spool.counts()[1] > 0
            self._spooled = self._spool.counts()[1] if self._deferred else 0
        return moved

    def _drain_predictions(self, conn: Any) -> bool:
        batch = self._spool.oldest_predictions(self._drain_chunk)
        if not batch:
            return False
        with conn.cursor() as cur:
            commit_predictions(cur, [row for _, row in batch])
        self._spool.forget(predictions=[seq for seq, _ in batch])
        self._spooled = max(0, self._spooled - len(batch))
        return True

    def _drain_feedback(self, conn: Any) -> bool:
        batch = self._spool.oldest_feedback(self._drain_chunk // 4 or 1)
        if not batch:
            return False
        refused, deferred = [], []
        now = time.time()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                for deployment in sorted({s.deployment for s in batch}):
                    lock_deployment(cur, deployment)
                for spooled in batch:
                    (item,) = parse_feedback(spooled.item)
                    book = PostgresBook(cur, spooled.deployment, spooled.replica)
                    book.keys = {id(item): spooled.idem_key}
                    (result,) = classify_feedback(book, [item], now=spooled.ts, model_version=spooled.model_version)
                    if result.status == "unknown" and now - spooled.ts < DEFER_UNKNOWN_FEEDBACK:
                        # Its prediction may wait in another replica's spool (that replica answered it
                        # while the store was away, and feedback reached this one): try again later.
                        deferred.append(spooled.seq)
                    elif result.status in ("unknown", "out_of_range"):
                        refused.append(result)
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
        done = [s.seq for s in batch if s.seq not in deferred]
        self._spool.forget(feedback=done)
        if deferred:
            self._spool.defer(deferred)
        self._spooled = max(0, self._spooled - len(done))
        self._deferred = bool(deferred)
        for result in refused:  # what the route would have answered had the store been there
            _log.warning("spooled feedback on request %s row %s was refused by the store: %s", result.request_id,
                         result.row, result.message)
        return bool(done)

    def _final_drain(self, budget: float = 10.0) -> None:
        """On close: drain what the spool holds while the store answers (what is left waits on disk
        for the next start)."""
        deadline = time.monotonic() + budget
        while self._retrying and time.monotonic() < deadline:
            if not self._drain_step() and self._retrying:
                return

    def close(self) -> None:
        """Commit everything queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=60)

    # -- reading (the replica's routes) ---------------------------------------------------------

    def read(self, since: int = 0, limit: int | None = 1000, *, max_bytes: int | None = None) -> PredictionPage:
        """The deployment's records in the store after cursor ``since`` (every replica's)."""
        try:
            return self._reader.fetch(since, limit or 10_000, max_bytes=max_bytes)
        except MonitoringError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def read_feedback(self, since: int = 0, limit: int = 10_000) -> FeedbackPage:
        """The deployment's feedback in the store after cursor ``since``."""
        try:
            return self._reader.fetch_feedback(since, limit)
        except MonitoringError as exc:
            raise StoreUnavailableError(str(exc)) from exc


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
