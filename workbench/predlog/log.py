"""The durable writer of the prediction log: every answered request, appended once committed.

Each server process appends to ``predictions.db`` (SQLite in WAL mode) in its log folder: the
deployment's folder for local deploys, a volume for containers. A writer thread commits records in
groups, and a request is answered only once its record is committed, so an acknowledged prediction
survives a crash or restart of the server; the group commit keeps that cheap (one commit for all the
requests that arrived together).

Readers take pages after a cursor (``since``): see :mod:`workbench.predlog.reader`.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from workbench._sqlite import connect
from workbench.predlog.feedback import (
    FEEDBACK_SCHEMA,
    FeedbackItem,
    FeedbackPage,
    FeedbackResult,
    read_feedback,
    record_feedback,
)
from workbench.predlog.reader import PredictionPage, read_predictions
from workbench.predlog.schema import LOG_FILE, SCHEMA, LogHealth, LogRecord

__all__ = ["PredictionLog", "QueuedLog", "WriteJob"]


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_numpy_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _numpy_default(value: Any) -> Any:
    """What orjson leaves to its caller: arrays that are not C-contiguous (a model's column slices)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write a {type(value).__name__} into the prediction log")


def _connect(path: Path) -> sqlite3.Connection:
    # NORMAL in WAL mode: a commit survives the process crashing (not the machine losing power)
    # without an fsync per commit.
    return connect(path, threads=True, synchronous="NORMAL")


class WriteJob:
    """One call's worth of writing: prediction records or feedback items, and who to tell."""

    __slots__ = ("done", "feedback", "records", "results", "taken", "version")

    def __init__(self, records: Sequence[LogRecord], feedback: Sequence[FeedbackItem],
                 done: Callable[[BaseException | None], None], version: str | None = None,
                 taken: Callable[[], None] | None = None) -> None:
        self.records = list(records)
        self.feedback = list(feedback)
        self.done = done
        self.version = version
        self.taken = taken
        self.results: list[FeedbackResult] = []


def tell_taken(group: Sequence[WriteJob]) -> None:
    """Tell each job's submitter that the writer thread took it (see :meth:`QueuedLog.submit`)."""
    for job in group:
        if job.taken is not None:
            with contextlib.suppress(Exception):
                job.taken()


class QueuedLog:
    """The calling side of a log writer: jobs queued from any thread, committed by one writer thread
    that calls each job's ``done`` (:class:`PredictionLog` for the SQLite log,
    :class:`~workbench.predlog.storelog.StoreLog` for the PostgreSQL store)."""

    _queue: queue.SimpleQueue[WriteJob | None]
    _closed: bool

    def submit(self, records: Sequence[LogRecord], done: Callable[[BaseException | None], None], *,
               taken: Callable[[], None] | None = None) -> None:
        """Queue records; ``done(None)`` is called from the writer thread once they are committed
        (``done(error)`` if they could not be). ``taken()``, when given, is called from the writer
        thread as it starts writing them, before it waits for the disk or the store: what the
        submitter does then runs while they commit (a server encodes its answers)."""
        self._put(WriteJob(records, (), done, taken=taken))

    def submit_feedback(self, items: Sequence[FeedbackItem],
                        done: Callable[[list[FeedbackResult], BaseException | None], None], *,
                        model_version: str | None) -> None:
        """Queue feedback on the answers of ``model_version``; ``done(results, None)`` is called from
        the writer thread once what was accepted is committed (``done([], error)`` if it could not be)."""
        job = WriteJob((), items, lambda error: done(job.results if error is None else [], error), model_version)
        self._put(job)

    def record_feedback(self, items: Sequence[FeedbackItem], *, model_version: str | None,
                        timeout: float = 30.0) -> list[FeedbackResult]:
        """Record feedback on the answers of ``model_version`` and wait for the commit (for callers
        outside the server's event loop)."""
        job = WriteJob((), items, lambda error: None, model_version)
        self._wait(job, timeout)
        return job.results

    def _put(self, job: WriteJob) -> None:
        if self._closed:
            job.done(RuntimeError("the prediction log is closed"))
            return
        self._queue.put(job)

    def append(self, records: Sequence[LogRecord], timeout: float = 30.0) -> None:
        """Append and wait for the commit (for callers outside the server's event loop)."""
        self._wait(WriteJob(records, (), lambda error: None), timeout)

    def _wait(self, job: WriteJob, timeout: float) -> None:
        finished = threading.Event()
        failure: list[BaseException | None] = [None]
        tell = job.done

        def done(error: BaseException | None) -> None:
            tell(error)
            failure[0] = error
            finished.set()

        job.done = done
        self._put(job)
        if not finished.wait(timeout):
            raise TimeoutError("the prediction log did not commit in time")
        if failure[0] is not None:
            raise failure[0]


class PredictionLog(QueuedLog):
    """Appends records from any thread; each ``append`` returns once its record is committed.

    Feedback on answered rows (ground truth, rewards) goes into the same file through the same
    writer: :meth:`submit_feedback` and :meth:`record_feedback`.

    ``PredictionLog(folder)`` opens (or creates) ``folder/predictions.db``. Call :meth:`close` to
    flush and stop the writer thread.
    """

    def __init__(self, folder: str | Path, *, replica: str | None = None, max_group: int = 512) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LOG_FILE
        self.replica = replica or uuid.uuid4().hex[:12]
        self._max_group = max_group
        conn = _connect(self.path)
        conn.executescript(SCHEMA + FEEDBACK_SCHEMA)
        conn.close()
        self._stop = threading.Event()
        # Checkpoints (copying the WAL into the database, with an fsync) run on their own thread:
        # done by the writer they would stall commits, and so answers, for tens of milliseconds.
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="prediction-log-checkpoint",
                                              daemon=True)
        self._checkpointer.start()
        self._queue: queue.SimpleQueue[WriteJob | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _checkpoint_loop(self, every: float = 1.0) -> None:
        conn = _connect(self.path)
        try:
            while not self._stop.wait(every):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _run(self) -> None:
        conn = _connect(self.path)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                group = [item]
                # Take everything already waiting: one commit for all of it.
                while len(group) < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._commit(conn, group)
                        return
                    group.append(nxt)
                self._commit(conn, group)
                # Hold no request while waiting for the next: a large one's rows are freed now.
                item = nxt = group = None  # type: ignore[assignment]
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, group: list[WriteJob]) -> None:
        tell_taken(group)
        rows = [
            (r.request_id, r.ts, r.model_name, r.model_version, r.protocol, r.n_rows, r.latency_ms,
             _dumps(r.inputs), _dumps(r.outputs), self.replica)
            for job in group
            for r in job.records
        ]
        feedback = [job for job in group if job.feedback]
        error: BaseException | None = None
        for attempt in range(5):
            try:
                with conn:  # BEGIN ... COMMIT, rolled back on error
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT INTO predictions (request_id, ts, model_name, model_version, protocol, "
                        "n_rows, latency_ms, inputs, outputs, replica) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        rows,
                    )
                    now = time.time()
                    for job in feedback:  # after the predictions: feedback may label one of them
                        job.results = record_feedback(conn, job.feedback, replica=self.replica, now=now,
                                                      model_version=job.version)
                error = None
                break
            except sqlite3.OperationalError as exc:  # e.g. busy beyond the timeout, disk full
                error = exc
                time.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # never let the writer thread die
                error = exc
                break
        for job in group:
            with contextlib.suppress(Exception):
                job.done(error)

    def close(self) -> None:
        """Commit everything queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._stop.set()
        self._checkpointer.join(timeout=60)

    def read(self, since: int = 0, limit: int | None = 1000, *, max_bytes: int | None = None) -> PredictionPage:
        """Records after cursor ``since`` (see :func:`read_predictions`)."""
        return read_predictions(self.folder, since=since, limit=limit, max_bytes=max_bytes)

    def read_feedback(self, since: int = 0, limit: int = 10_000) -> FeedbackPage:
        """Feedback after cursor ``since`` (see :func:`read_feedback`)."""
        return read_feedback(self.folder, since=since, limit=limit)

    @property
    def where(self) -> str:
        """Where records go, for messages."""
        return str(self.path)

    def health(self) -> LogHealth:
        """The embedded log is fine while its writer runs (a failed commit fails its own requests)."""
        if self._closed:
            return LogHealth(False, "sqlite", "the prediction log is closed: the server is stopping")
        return LogHealth(True, "sqlite", f"writing to {self.path}")
