"""The shared prediction log of a cluster: one PostgreSQL database that every replica writes.

The embedded SQLite log (:mod:`workbench.predlog.log`) keeps one file per machine; a deployment whose
replicas run on several machines writes here instead, chosen by a ``postgresql://`` URL
(``WORKBENCH_LOG_URL``, ``workbench serve --log-url``). Records carry the deployment's name, the
replica that wrote them and a per-replica idempotency key (``UNIQUE (replica, idem_key)``, written
with ``ON CONFLICT DO NOTHING``), so a record a replica writes twice (its commit's answer was lost,
or it was spooled and drained, see :mod:`workbench.predlog.storelog`) is in the store once.

Each write transaction of a deployment takes that deployment's advisory lock first, so the
database-assigned ``seq`` of its records grows in commit order: a reader that continues after the
last ``seq`` it saw never skips a record another replica committed a moment later.

Readers go through :class:`StoreSource` (``as_source("postgresql://host/db?deployment=NAME")``):
pages after a cursor, the newest rows, and the newest rows with their feedback, each one query,
however many replicas wrote them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import pandas as pd

from workbench.errors import InvalidInputError, MissingDependencyError, MonitoringError, StoreUnavailableError
from workbench.predlog.feedback import FEEDBACK_COLUMNS, FeedbackItem, FeedbackPage
from workbench.predlog.reader import PredictionPage
from workbench.predlog.schema import RECORD_COLUMNS

__all__ = ["STORE_SCHEMA", "StoreSource", "StoreURL", "is_store_url"]

STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS workbench_predictions (
    seq BIGSERIAL PRIMARY KEY,
    deployment TEXT NOT NULL,
    replica TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT,
    protocol TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    inputs BYTEA NOT NULL,            -- the same JSON bytes the SQLite log keeps: values exact
    outputs BYTEA NOT NULL,
    UNIQUE (replica, idem_key)
);
CREATE INDEX IF NOT EXISTS workbench_predictions_dep_seq ON workbench_predictions (deployment, seq);
CREATE INDEX IF NOT EXISTS workbench_predictions_dep_ts ON workbench_predictions (deployment, ts);
CREATE INDEX IF NOT EXISTS workbench_predictions_dep_request ON workbench_predictions (deployment, request_id);
CREATE TABLE IF NOT EXISTS workbench_feedback (
    seq BIGSERIAL PRIMARY KEY,
    deployment TEXT NOT NULL,
    replica TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    "row" INTEGER NOT NULL,
    truth BYTEA,
    reward DOUBLE PRECISION,
    ts DOUBLE PRECISION NOT NULL,
    predicted_ts DOUBLE PRECISION NOT NULL,
    prediction_seq BIGINT NOT NULL,
    model_version TEXT,
    UNIQUE (replica, idem_key)
);
CREATE INDEX IF NOT EXISTS workbench_feedback_dep_seq ON workbench_feedback (deployment, seq);
CREATE INDEX IF NOT EXISTS workbench_feedback_row ON workbench_feedback (prediction_seq, "row", seq);
"""

#: Columns of a prediction row as a writer inserts it.
INSERT_COLUMNS = ("deployment", "replica", "idem_key", "request_id", "ts", "model_name", "model_version", "protocol",
                  "n_rows", "latency_ms", "inputs", "outputs")

_SELECT_RECORDS = ", ".join(RECORD_COLUMNS)
_SELECT_FEEDBACK = ", ".join('"row"' if c == "row" else c for c in FEEDBACK_COLUMNS)


def is_store_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL log store (``postgresql://`` or ``postgres://``)."""
    return text.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class StoreURL:
    """A log store's address: the libpq URL to connect with and, for readers, the deployment.

    ``postgresql://user[:password]@host:port/db?deployment=NAME``: ``deployment`` is the
    workbench's own parameter (libpq never sees it); without it a reader sees every deployment.
    The password may also come from libpq's ``PGPASSWORD`` or ``~/.pgpass``, which keeps it out of
    deployment records.
    """

    dsn: str
    deployment: str | None = None

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        """Split ``url`` into the connection string and the deployment."""
        if not is_store_url(url):
            raise InvalidInputError(f"a log store URL starts with postgresql://, not {_redact(url)!r}")
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        deployment = next((v for k, v in query if k == "deployment"), None) or None
        rest = urlencode([(k, v) for k, v in query if k != "deployment"])
        return cls(urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), deployment)

    @property
    def name(self) -> str:
        """The address without its password: what sources are named by and what messages show."""
        shown = _redact(self.dsn)
        if not self.deployment:
            return shown
        return f"{shown}{'&' if urlsplit(shown).query else '?'}{urlencode({'deployment': self.deployment})}"

    def __repr__(self) -> str:
        return f"StoreURL({self.name!r})"


def with_known_password(url: StoreURL) -> StoreURL:
    """``url`` with the password of ``WORKBENCH_LOG_URL`` when it names the same user, server and
    database and ``url`` has none (deployment records keep store URLs without their password)."""
    from workbench.config import get_settings

    parts = urlsplit(url.dsn)
    known = get_settings().log_url
    if parts.password is not None or not known:
        return url
    theirs = urlsplit(StoreURL.parse(known).dsn)
    same = (theirs.username, theirs.hostname, theirs.port, theirs.path) == \
        (parts.username, parts.hostname, parts.port, parts.path)
    if not same or theirs.password is None:
        return url
    netloc = parts.netloc.replace(f"{parts.username}@", f"{parts.username}:{theirs.password}@", 1)
    return StoreURL(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), url.deployment)


def _redact(url: str) -> str:
    return replace_password(url, "***")


def replace_password(url: str, shown: str | None) -> str:
    """``url`` with its password shown as ``shown`` (``None``: left out, with its colon)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@" if shown is None else f":{shown}@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def psycopg2_module() -> Any:
    """psycopg2, or an error saying how to install it."""
    try:
        import psycopg2
        import psycopg2.extras  # noqa: F401 - execute_values
    except ImportError as exc:
        raise MissingDependencyError("the PostgreSQL log store", "psycopg2-binary", "serve") from exc
    return psycopg2


def connect(url: StoreURL, *, timeout: float = 3.0) -> Any:
    """An open connection to the store (tables created when missing); unreachable is
    :class:`StoreUnavailableError`."""
    pg = psycopg2_module()
    try:
        conn = pg.connect(url.dsn, connect_timeout=max(1, int(timeout)), application_name="workbench-log",
                          keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
    except pg.Error as exc:
        raise StoreUnavailableError(f"cannot reach the log store {url.name} ({str(exc).strip()}): is PostgreSQL "
                                    "running and the URL right?") from exc
    try:
        with conn, conn.cursor() as cur:
            # One creator at a time: CREATE TABLE IF NOT EXISTS races with itself in PostgreSQL.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id("workbench-log-schema"),))
            cur.execute(STORE_SCHEMA)
    except pg.Error as exc:
        conn.close()
        raise StoreUnavailableError(f"cannot create the log tables in {url.name} ({str(exc).strip()}): "
                                    "the user needs CREATE rights on the database") from exc
    return conn


def is_unreachable(exc: BaseException) -> bool:
    """Whether a psycopg2 error means the database went away (rather than a bad statement)."""
    pg = psycopg2_module()
    return isinstance(exc, (pg.OperationalError, pg.InterfaceError))


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def lock_deployment(cur: Any, deployment: str) -> None:
    """Take the deployment's write lock for the transaction (``seq`` then grows in commit order)."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(f"workbench-log:{deployment}"),))


def _insert_sql(n: int) -> str:
    row = f"({','.join(['%s'] * len(INSERT_COLUMNS))})"
    return (f"INSERT INTO workbench_predictions ({', '.join(INSERT_COLUMNS)}) VALUES {','.join([row] * n)} "
            "ON CONFLICT (replica, idem_key) DO NOTHING")


def insert_predictions(cur: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows of :data:`INSERT_COLUMNS` in one multi-row statement, inside the caller's
    transaction; a key already there is skipped."""
    if rows:
        cur.execute(_insert_sql(len(rows)), [value for row in rows for value in row])


def commit_predictions(cur: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Commit rows of :data:`INSERT_COLUMNS` in one round trip, on an autocommit connection: the
    deployments' locks and one multi-row insert, sent as one statement string, which PostgreSQL runs
    as one transaction."""
    if not rows:
        return
    locks = "".join(f"SELECT pg_advisory_xact_lock({_lock_id(f'workbench-log:{d}')}); "
                    for d in sorted({row[0] for row in rows}))
    cur.execute(locks + _insert_sql(len(rows)), [value for row in rows for value in row])


class PostgresBook:
    """The feedback book (:class:`~workbench.predlog.feedback.FeedbackBook`) of one deployment in
    the store, inside the caller's transaction (which holds the deployment's lock)."""

    def __init__(self, cur: Any, deployment: str, replica: str) -> None:
        self.cur = cur
        self.deployment = deployment
        self.replica = replica
        #: The idempotency key of the item being written (set by the writer before each item).
        self.keys: dict[int, str] = {}

    def answer(self, request_id: str, model_version: str | None) -> tuple[int, float, str | None, int] | None:
        self.cur.execute("SELECT n_rows, ts, model_version, seq FROM workbench_predictions WHERE deployment = %s "
                         "AND request_id = %s AND model_version IS NOT DISTINCT FROM %s ORDER BY seq DESC LIMIT 1",
                         (self.deployment, request_id, model_version))
        found = self.cur.fetchone()
        return None if found is None else (int(found[0]), float(found[1]), found[2], int(found[3]))

    def latest(self, prediction_seq: int, row: int) -> tuple[bytes | None, float | None] | None:
        self.cur.execute('SELECT truth, reward FROM workbench_feedback WHERE prediction_seq = %s AND "row" = %s '
                         "ORDER BY seq DESC LIMIT 1", (prediction_seq, row))
        found = self.cur.fetchone()
        if found is None:
            return None
        return (bytes(found[0]) if found[0] is not None else None, found[1])

    def insert(self, item: FeedbackItem, truth: bytes | None, reward: float | None, *, now: float,
               predicted_ts: float, prediction_seq: int, model_version: str | None) -> None:
        self.cur.execute(
            'INSERT INTO workbench_feedback (deployment, replica, idem_key, request_id, "row", truth, reward, ts, '
            "predicted_ts, prediction_seq, model_version) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (replica, idem_key) DO NOTHING",
            (self.deployment, self.replica, self.keys[id(item)], item.request_id, item.row,
             truth, reward, now, predicted_ts, prediction_seq,
             model_version))


# -- reading --------------------------------------------------------------------------------------


def _where(deployment: str | None, alias: str = "") -> tuple[str, tuple[Any, ...]]:
    if deployment is None:
        return "TRUE", ()
    return f"{alias}deployment = %s", (deployment,)


def _records(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    decoded = [(*row[:8], orjson.loads(bytes(row[8])), orjson.loads(bytes(row[9])), row[10]) for row in rows]
    return pd.DataFrame(decoded, columns=list(RECORD_COLUMNS))


def read_page(cur: Any, deployment: str | None, since: int, limit: int | None,
              max_bytes: int | None = None) -> PredictionPage:
    """Records of ``deployment`` with ``seq > since``, oldest first (as :func:`read_predictions`)."""
    if since < 0 or (limit is not None and limit <= 0) or (max_bytes is not None and max_bytes <= 0):
        raise InvalidInputError("since must be >= 0, and limit and max_bytes > 0")
    where, args = _where(deployment)
    sql_limit = "" if limit is None else f" LIMIT {int(limit)}"
    cut_by_bytes = False
    upper = ""
    if max_bytes is not None:  # sizes first, then only the records that fit are read
        cur.execute(f"SELECT seq, length(inputs) + length(outputs) FROM workbench_predictions WHERE {where} "
                    f"AND seq > %s ORDER BY seq{sql_limit}", (*args, since))
        taken, total, last = 0, 0, since
        for seq, size in cur.fetchall():
            if taken and total + size > max_bytes:
                cut_by_bytes = True
                break
            taken, total, last = taken + 1, total + size, seq
        upper = f" AND seq <= {int(last)}"
    cur.execute(f"SELECT {_SELECT_RECORDS} FROM workbench_predictions WHERE {where} AND seq > %s{upper} "
                f"ORDER BY seq{sql_limit}", (*args, since))
    rows = cur.fetchall()
    more = cut_by_bytes or (limit is not None and len(rows) >= limit)
    return PredictionPage(_records(rows), int(rows[-1][0]) if rows else since, more)


def read_feedback_page(cur: Any, deployment: str | None, since: int, limit: int) -> FeedbackPage:
    """Feedback of ``deployment`` with ``seq > since``, oldest first (as :func:`read_feedback`)."""
    if since < 0 or limit <= 0:
        raise InvalidInputError("since must be >= 0 and limit > 0")
    where, args = _where(deployment)
    cur.execute(f"SELECT {_SELECT_FEEDBACK} FROM workbench_feedback WHERE {where} AND seq > %s ORDER BY seq "
                "LIMIT %s", (*args, since, limit))
    rows = cur.fetchall()
    decoded = [(*row[:3], orjson.loads(bytes(row[3])) if row[3] is not None else None, *row[4:]) for row in rows]
    return FeedbackPage(pd.DataFrame(decoded, columns=list(FEEDBACK_COLUMNS)), int(rows[-1][0]) if rows else since,
                        len(rows) >= limit)


def _newest(deployment: str | None, *, rows: int | None, requests: int | None,
            seconds: float | None) -> tuple[str, tuple[Any, ...]]:
    """SQL selecting the ``seq`` of the newest records: those holding the last ``rows`` rows, the last
    ``requests`` records, or those of the last ``seconds``."""
    where, args = _where(deployment)
    if seconds is not None:
        return (f"SELECT seq FROM workbench_predictions WHERE {where} AND ts >= "
                "extract(epoch FROM clock_timestamp()) - %s", (*args, seconds))
    if requests is not None:
        return (f"SELECT seq FROM workbench_predictions WHERE {where} ORDER BY seq DESC LIMIT %s",
                (*args, requests))
    assert rows is not None
    # Each record holds at least one row: the newest `rows` records hold every candidate.
    return (f"SELECT seq FROM (SELECT seq, n_rows, sum(n_rows) OVER (ORDER BY seq DESC) AS acc FROM "
            f"(SELECT seq, n_rows FROM workbench_predictions WHERE {where} ORDER BY seq DESC LIMIT %s) AS s) AS t "
            "WHERE acc - n_rows < %s", (*args, rows, rows))


class StoreSource:
    """The PostgreSQL log store, read by SQL: one query answers for every replica of a deployment.

    ``StoreSource("postgresql://user@host:5432/db?deployment=churn")`` reads the records and
    feedback of deployment ``churn`` (of every deployment without ``?deployment=``). Its cursor is
    the store's ``seq``, one sequence for all replicas. Besides pages after a cursor
    (:class:`~workbench.predlog.sources.PredictionSource`, :class:`~workbench.predlog.sources.FeedbackSource`),
    :meth:`tail` and :meth:`tail_labelled` select windows by rows, requests or time in the database.
    """

    def __init__(self, url: str | StoreURL, *, timeout: float = 10.0) -> None:
        given = url if isinstance(url, StoreURL) else StoreURL.parse(url)
        self.name = given.name  # as given: a source keeps its name (and its cursor) however it connects
        self.url = with_known_password(given)
        self.timeout = timeout
        self._conn: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoreSource({self.name!r})"

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        pg = psycopg2_module()
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url, timeout=self.timeout)
                    self._conn.autocommit = True
                    self._conn.set_session(readonly=True, autocommit=True)
                with self._conn.cursor() as cur:
                    yield cur
            except StoreUnavailableError as exc:
                raise MonitoringError(str(exc)) from exc
            except pg.Error as exc:
                self.close_connection()
                raise MonitoringError(f"cannot read the log store {self.name} ({str(exc).strip()}): is PostgreSQL "
                                      "running? The next read reconnects") from exc

    def close_connection(self) -> None:
        """Close the connection (the next read opens a new one)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    close = close_connection

    def fetch(self, since: int, limit: int, *, max_bytes: int | None = None) -> PredictionPage:
        """Records with ``seq > since``, oldest first, at most ``limit`` (and about ``max_bytes``)."""
        with self._cursor() as cur:
            return read_page(cur, self.url.deployment, since, limit, max_bytes)

    def fetch_feedback(self, since: int, limit: int) -> FeedbackPage:
        """Feedback with ``seq > since``, oldest first, at most ``limit``."""
        with self._cursor() as cur:
            return read_feedback_page(cur, self.url.deployment, since, limit)

    def tail(self, rows: int | None = None, *, requests: int | None = None,
             seconds: float | None = None) -> PredictionPage:
        """The newest records, oldest first, in one query: those holding the last ``rows`` predicted
        rows, the last ``requests`` records, or those of the last ``seconds``. Its ``next_since``
        is the store's newest ``seq``: a reader continues from there."""
        _one_of(rows, requests, seconds)
        newest, args = _newest(self.url.deployment, rows=rows, requests=requests, seconds=seconds)
        where, wargs = _where(self.url.deployment)
        with self._cursor() as cur:
            cur.execute(f"SELECT {_SELECT_RECORDS}, (SELECT coalesce(max(seq), 0) FROM workbench_predictions "
                        f"WHERE {where}) FROM workbench_predictions WHERE seq IN ({newest}) ORDER BY seq",
                        (*wargs, *args))
            found = cur.fetchall()
            if not found:
                cur.execute(f"SELECT coalesce(max(seq), 0) FROM workbench_predictions WHERE {where}", wargs)
                return PredictionPage(_records([]), int(cur.fetchone()[0]))
        return PredictionPage(_records([row[:-1] for row in found]), int(found[-1][-1]))

    def tail_labelled(self, rows: int) -> tuple[PredictionPage, pd.DataFrame]:
        """:meth:`tail` by rows, and the newest feedback on each of those records' rows, joined in
        the same query: a frame of :data:`FEEDBACK_COLUMNS` plus ``source``."""
        _one_of(rows, None, None)
        newest, args = _newest(self.url.deployment, rows=rows, requests=None, seconds=None)
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join('p.' + c for c in RECORD_COLUMNS)}, "
                "(SELECT json_agg(json_build_array(f.seq, f.request_id, f.\"row\", convert_from(f.truth, 'UTF8'), "
                "f.reward, f.ts, f.predicted_ts, f.prediction_seq, f.model_version, f.replica) ORDER BY f.\"row\") "
                " FROM (SELECT DISTINCT ON (\"row\") * FROM workbench_feedback WHERE prediction_seq = p.seq "
                "       ORDER BY \"row\", seq DESC) AS f) "
                f"FROM workbench_predictions AS p WHERE p.seq IN ({newest}) ORDER BY p.seq", args)
            found = cur.fetchall()
        records = _records([row[:-1] for row in found])
        # json_agg returns the truth as text (JSON of the value): decoded here, exactly as logged.
        feedback = [(*f[:3], orjson.loads(f[3]) if f[3] is not None else None, *f[4:])
                    for row in found if row[-1] for f in row[-1]]
        frame = pd.DataFrame(feedback, columns=list(FEEDBACK_COLUMNS)).assign(source=self.name)
        return PredictionPage(records, int(found[-1][0]) if found else 0), frame

    def cursor_at(self, rows: int | None = None, *, seconds: float | None = None) -> int:
        """The cursor just before the newest ``rows`` rows (or the last ``seconds``): where a monitor
        of that window starts reading, instead of at the beginning of the log."""
        _one_of(rows, None, seconds)
        newest, args = _newest(self.url.deployment, rows=rows, requests=None, seconds=seconds)
        where, wargs = _where(self.url.deployment)
        with self._cursor() as cur:
            cur.execute(f"SELECT min(seq) - 1 FROM ({newest}) AS n", args)
            first = cur.fetchone()[0]
            if first is None:  # nothing in the window: continue after the newest record
                cur.execute(f"SELECT coalesce(max(seq), 0) FROM workbench_predictions WHERE {where}", wargs)
                first = cur.fetchone()[0]
        return int(first)


    def feedback_cursor_at(self, prediction_seq: int) -> int:
        """The feedback cursor just before the first feedback on a record after ``prediction_seq``:
        where a monitor that starts at that record starts reading feedback (none it needs is before)."""
        where, args = _where(self.url.deployment)
        with self._cursor() as cur:
            cur.execute(f"SELECT min(seq) - 1 FROM workbench_feedback WHERE {where} AND prediction_seq > %s",
                        (*args, prediction_seq))
            first = cur.fetchone()[0]
            if first is None:
                cur.execute(f"SELECT coalesce(max(seq), 0) FROM workbench_feedback WHERE {where}", args)
                first = cur.fetchone()[0]
        return int(first)


def _one_of(rows: int | None, requests: int | None, seconds: float | None) -> None:
    given = [v for v in (rows, requests, seconds) if v is not None]
    if len(given) != 1:
        raise MonitoringError("give exactly one of rows, requests and seconds")
    if given[0] <= 0:
        raise MonitoringError(f"a window needs a positive size, got {given[0]}")
