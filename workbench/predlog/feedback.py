"""Ground truth and rewards that arrive after the answer, kept beside the predictions they label.

A client that got an answer (its request id came back as ``id`` / ``x-request-id``) later sends
what really happened: the true value of a row (``truth``), a reward for a bandit (``reward``), or
both. The server records it in the same SQLite log as the predictions, in the same durable way
(committed before it answers)::

    POST /v2/models/{name}/feedback
    {"request_id": "9f2c...", "row": 0, "truth": 1, "reward": 1.0}     # or a list of such objects

Each item gets a status: ``recorded`` (the first feedback for that row), ``corrected`` (it differs
from the latest one, which it replaces; the history stays), ``duplicate`` (the same as the latest:
nothing written), ``unknown`` (this log never answered that request id), ``out_of_range`` (the
request had fewer rows) or ``spooled`` (the shared PostgreSQL store was unreachable: the item is kept
on the replica's disk and classified when the store returns, see :mod:`workbench.predlog.store`). Late feedback is accepted: it labels the row of the prediction it refers
to, whenever that was, and its result says how long after the answer it came (``delay_s``).
Readers take pages after a cursor (:func:`read_feedback`); :func:`latest_feedback` keeps the
newest value of each row.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
import pandas as pd

from workbench._sqlite import connect
from workbench.errors import DeploymentError, InvalidInputError, NotFoundError, PayloadTooLargeError
from workbench.predlog.schema import LOG_FILE

__all__ = [
    "FEEDBACK_COLUMNS",
    "FEEDBACK_STATUSES",
    "FeedbackBook",
    "FeedbackItem",
    "FeedbackPage",
    "FeedbackReport",
    "FeedbackResult",
    "FeedbackStatus",
    "feedback_items",
    "latest_feedback",
    "classify_feedback",
    "parse_feedback",
    "read_feedback",
    "record_feedback",
    "send_feedback",
]

FeedbackStatus = Literal["recorded", "corrected", "duplicate", "unknown", "out_of_range", "spooled"]

#: Every status, in the order reports count them.
FEEDBACK_STATUSES: tuple[str, ...] = ("recorded", "corrected", "duplicate", "unknown", "out_of_range", "spooled")

#: Statuses under which the feedback is kept (the others are answered and not written).
ACCEPTED: frozenset[str] = frozenset({"recorded", "corrected", "duplicate", "spooled"})

#: Columns of a page of feedback, in order.
FEEDBACK_COLUMNS = ("seq", "request_id", "row", "truth", "reward", "ts", "predicted_ts", "prediction_seq",
                    "model_version", "replica")

FEEDBACK_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    truth BLOB,                       -- JSON; NULL when only a reward was given
    reward REAL,
    ts REAL NOT NULL,                 -- when the feedback was recorded
    predicted_ts REAL NOT NULL,       -- when the answer it refers to was given
    prediction_seq INTEGER NOT NULL,  -- the answer's record in this log (request ids may repeat)
    model_version TEXT,
    replica TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_row ON feedback (prediction_seq, row, seq);
"""

#: Longest request id accepted (the server's own are 32 hex characters).
MAX_REQUEST_ID = 256
#: Most items, and bytes, of one feedback request (413 beyond): one request holds the log's writer
#: while it is recorded, so a huge one would hold up every prediction behind it.
MAX_FEEDBACK_ITEMS = 10_000
MAX_FEEDBACK_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class FeedbackItem:
    """What a client says about one answered row."""

    request_id: str
    row: int = 0
    #: The true value, as JSON (``None`` with ``has_truth=False``: only a reward was given).
    truth: Any = None
    reward: float | None = None
    has_truth: bool = False

    def to_json(self) -> dict[str, Any]:
        """The item as a client sends it."""
        body: dict[str, Any] = {"request_id": self.request_id, "row": self.row}
        if self.has_truth:
            body["truth"] = self.truth
        if self.reward is not None:
            body["reward"] = self.reward
        return body


@dataclass(frozen=True)
class FeedbackResult:
    """What became of one item."""

    request_id: str
    row: int
    status: FeedbackStatus
    #: The version that gave the answer (``None`` when the request id is unknown here).
    model_version: str | None = None
    #: Seconds between the answer and this feedback.
    delay_s: float | None = None
    #: What it said, in words (why it was refused, what it replaced).
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (one element of the route's ``results``)."""
        return {"request_id": self.request_id, "row": self.row, "status": self.status,
                "model_version": self.model_version, "delay_s": self.delay_s, "message": self.message}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FeedbackResult:
        """Inverse of :meth:`to_json`."""
        return cls(str(body["request_id"]), int(body["row"]), body["status"], body.get("model_version"),
                   body.get("delay_s"), str(body.get("message", "")))


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """Items from a decoded JSON body: one object or a list of objects.

    Raises :class:`InvalidInputError` naming the first bad item and what is wrong with it; nothing
    of a body with a bad item is recorded.
    """
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidInputError("the feedback body is an empty list: send at least one item")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise PayloadTooLargeError(f"the feedback body has {len(items)} items, more than {MAX_FEEDBACK_ITEMS} per "
                                   "request: send them in several requests")
    parsed = []
    for index, item in enumerate(items):
        where = f"feedback item {index}" if isinstance(body, list) else "the feedback"
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{where} must be a JSON object like "
                                    '{"request_id": "...", "row": 0, "truth": 1}, not ' + type(item).__name__)
        unknown = sorted(set(item) - {"request_id", "row", "truth", "reward"})
        if unknown:
            raise InvalidInputError(f"{where} has unknown keys {unknown}: the keys are request_id, row, "
                                    "truth and reward")
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_REQUEST_ID:
            raise InvalidInputError(f"{where} needs a request_id: the id the answer carried (its 'id' or "
                                    f"x-request-id header), a string of 1 to {MAX_REQUEST_ID} characters")
        row = item.get("row", 0)
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise InvalidInputError(f"{where}: row is the row's position in its request (0, 1, ...), not {row!r}")
        reward = item.get("reward")
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))
                                   or not math.isfinite(reward) or not 0.0 <= reward <= 1.0):
            raise InvalidInputError(f"{where}: reward must be a number from 0 to 1 (1: the answer was right or "
                                    f"useful, 0: it was not), not {reward!r}")
        has_truth = "truth" in item and item["truth"] is not None
        if not has_truth and reward is None:
            raise InvalidInputError(f"{where} says nothing: give a truth (the true value), a reward, or both")
        parsed.append(FeedbackItem(request_id, row, item.get("truth"), None if reward is None else float(reward),
                                   has_truth))
    return parsed


class FeedbackBook(Protocol):
    """Where feedback is classified and written: the answers and feedback a log holds, read and
    written inside the caller's transaction (the SQLite log's, or the PostgreSQL store's)."""

    def answer(self, request_id: str, model_version: str | None) -> tuple[int, float, str | None, int] | None:
        """``(n_rows, ts, model_version, seq)`` of the newest answer of ``model_version`` with that id."""
        ...

    def latest(self, prediction_seq: int, row: int) -> tuple[bytes | None, float | None] | None:
        """``(truth, reward)`` of the newest feedback on that row of that answer."""
        ...

    def insert(self, item: FeedbackItem, truth: bytes | None, reward: float | None, *, now: float,
               predicted_ts: float, prediction_seq: int, model_version: str | None) -> None:
        """Write one feedback row."""
        ...


class _SQLiteBook:
    """The feedback book of the SQLite log, on a connection inside a transaction."""

    def __init__(self, conn: sqlite3.Connection, replica: str) -> None:
        self.conn = conn
        self.replica = replica

    def answer(self, request_id: str, model_version: str | None) -> tuple[int, float, str | None, int] | None:
        found = self.conn.execute(
            "SELECT n_rows, ts, model_version, seq FROM predictions WHERE request_id = ? AND model_version IS ? "
            "ORDER BY seq DESC LIMIT 1", (request_id, model_version)).fetchone()
        return None if found is None else (int(found[0]), float(found[1]), found[2], int(found[3]))

    def latest(self, prediction_seq: int, row: int) -> tuple[bytes | None, float | None] | None:
        found = self.conn.execute(
            "SELECT truth, reward FROM feedback WHERE prediction_seq = ? AND row = ? ORDER BY seq DESC LIMIT 1",
            (prediction_seq, row)).fetchone()
        return None if found is None else (found[0], found[1])

    def insert(self, item: FeedbackItem, truth: bytes | None, reward: float | None, *, now: float,
               predicted_ts: float, prediction_seq: int, model_version: str | None) -> None:
        self.conn.execute(
            "INSERT INTO feedback (request_id, row, truth, reward, ts, predicted_ts, prediction_seq, model_version, "
            "replica) VALUES (?,?,?,?,?,?,?,?,?)",
            (item.request_id, item.row, truth, reward, now, predicted_ts, prediction_seq, model_version,
             self.replica))


def record_feedback(conn: sqlite3.Connection, items: Sequence[FeedbackItem], *, replica: str, now: float,
                    model_version: str | None) -> list[FeedbackResult]:
    """Classify and write ``items`` on the SQLite log's ``conn``, inside the caller's transaction
    (see :func:`classify_feedback`)."""
    return classify_feedback(_SQLiteBook(conn, replica), items, now=now, model_version=model_version)


def classify_feedback(book: FeedbackBook, items: Sequence[FeedbackItem], *, now: float,
                      model_version: str | None) -> list[FeedbackResult]:
    """Classify and write ``items`` in ``book``, inside the caller's transaction (so two writers
    never both record the "first" feedback for a row).

    Each item labels the newest answer *of ``model_version``* with its request id: a server labels
    its own answers. A champion and its shadow challenger may share one log and both answer a
    request under the same id; the router sends the feedback to both, and each labels its own.

    Each written row holds the row's whole current feedback: an item that gives only a reward keeps
    the truth recorded before it, and the other way round.
    """
    results = []
    for item in items:
        answered = book.answer(item.request_id, model_version)
        if answered is None:
            results.append(FeedbackResult(item.request_id, item.row, "unknown", message=(
                "no answer with this request id was logged here: send the id the answer carried")))
            continue
        n_rows, predicted_ts, version, seq = answered
        delay = round(now - predicted_ts, 3)
        if item.row >= n_rows:
            results.append(FeedbackResult(item.request_id, item.row, "out_of_range", version, delay,
                                          f"that request had {n_rows} row{'s' if n_rows != 1 else ''}: row is "
                                          f"0 to {n_rows - 1}"))
            continue
        latest = book.latest(seq, item.row)
        old_truth, old_reward = (latest[0], latest[1]) if latest is not None else (None, None)
        truth = orjson.dumps(item.truth) if item.has_truth else old_truth
        reward = item.reward if item.reward is not None else old_reward
        if latest is not None and (truth, reward) == (old_truth, old_reward):
            results.append(FeedbackResult(item.request_id, item.row, "duplicate", version, delay,
                                          "the same as the feedback already recorded: nothing changed"))
            continue
        book.insert(item, truth, reward, now=now, predicted_ts=predicted_ts, prediction_seq=seq,
                    model_version=version)
        replaced = []
        if item.has_truth and old_truth is not None and old_truth != truth:
            replaced.append(f"truth {orjson.loads(old_truth)!r}")
        if item.reward is not None and old_reward is not None and old_reward != reward:
            replaced.append(f"reward {old_reward!r}")
        if replaced:
            results.append(FeedbackResult(item.request_id, item.row, "corrected", version, delay,
                                          f"replaces {' and '.join(replaced)} (kept in the history)"))
        else:
            results.append(FeedbackResult(item.request_id, item.row, "recorded", version, delay))
    return results


@dataclass(frozen=True)
class FeedbackPage:
    """A page of recorded feedback and the cursor to continue from."""

    #: One row per feedback recorded: the columns of :data:`FEEDBACK_COLUMNS` (``truth`` decoded).
    records: pd.DataFrame
    next_since: int
    #: True when the page stopped at its limit: more may follow from ``next_since``.
    more: bool = False

    def __len__(self) -> int:
        return len(self.records)

    def to_json(self) -> dict[str, Any]:
        """The HTTP route's body."""
        return {"records": self.records.to_dict(orient="records"), "next_since": self.next_since,
                "more": self.more}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FeedbackPage:
        """Inverse of :meth:`to_json`."""
        return cls(pd.DataFrame(body["records"], columns=list(FEEDBACK_COLUMNS)), int(body["next_since"]),
                   bool(body.get("more", False)))


def read_feedback(folder: str | Path, since: int = 0, limit: int = 10_000) -> FeedbackPage:
    """Feedback with ``seq > since`` from the log in ``folder``, oldest first, at most ``limit``
    (an empty page when nothing was recorded yet)."""
    if since < 0 or limit <= 0:
        raise InvalidInputError("since must be >= 0 and limit > 0")
    path = Path(folder) / LOG_FILE
    if not path.exists():
        raise NotFoundError(f"no prediction log at {path}: has the server answered a request yet?")
    conn = connect(path, read_only=True)
    try:
        try:
            rows = conn.execute(f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback WHERE seq > ? ORDER BY seq "
                                "LIMIT ?", (since, limit)).fetchall()
        except sqlite3.OperationalError as exc:  # a log written before feedback existed
            if "no such table" not in str(exc):
                raise
            rows = []
    finally:
        conn.close()
    decoded = [(*row[:3], orjson.loads(row[3]) if row[3] is not None else None, *row[4:]) for row in rows]
    frame = pd.DataFrame(decoded, columns=list(FEEDBACK_COLUMNS))
    return FeedbackPage(frame, int(rows[-1][0]) if rows else since, len(rows) >= limit)


def latest_feedback(pages: Iterable[pd.DataFrame], source: str = "") -> pd.DataFrame:
    """The newest feedback of each answered row over pages of one log's records read in order, with
    a ``source`` column naming that log (rows are told apart by ``prediction_seq`` and ``row``: a
    request id a client reused names two answers)."""
    frames = [p for p in pages if len(p)]
    if not frames:
        return pd.DataFrame(columns=[*FEEDBACK_COLUMNS, "source"])
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = frame.drop_duplicates(["prediction_seq", "row"], keep="last").reset_index(drop=True)
    return frame.assign(source=source)


@dataclass(frozen=True)
class FeedbackReport:
    """What became of feedback sent to a deployment: one result per item, in the order sent."""

    results: tuple[FeedbackResult, ...]

    def __len__(self) -> int:
        return len(self.results)

    @property
    def counts(self) -> dict[str, int]:
        """How many items got each status."""
        return {status: sum(r.status == status for r in self.results) for status in FEEDBACK_STATUSES}

    def summary(self) -> str:
        """One line: the counts that are not zero."""
        counts = {k: v for k, v in self.counts.items() if v}
        return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) or "nothing sent"

    def __repr__(self) -> str:
        return f"FeedbackReport({self.summary()})"

    def to_frame(self) -> pd.DataFrame:
        """One row per item: request_id, row, status, model_version, delay_s, message."""
        return pd.DataFrame([r.to_json() for r in self.results],
                            columns=["request_id", "row", "status", "model_version", "delay_s", "message"])


def feedback_items(frame: pd.DataFrame) -> list[FeedbackItem]:
    """Items from a table with a ``request_id`` column, an optional ``row`` column (0 when absent) and
    a ``truth`` and/or a ``reward`` column; missing values there mean "not given"."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"feedback is a DataFrame with request_id and truth and/or reward columns, "
                                f"not {type(frame).__name__}")
    if "request_id" not in frame.columns or not ({"truth", "reward"} & set(frame.columns)):
        raise InvalidInputError(f"feedback needs a request_id column and a truth and/or reward column; it has "
                                f"{list(frame.columns)[:12]}")
    from workbench.serialize import jsonable

    rows = frame["row"] if "row" in frame.columns else pd.Series(0, index=frame.index)
    body = []
    for index, request_id in enumerate(frame["request_id"].tolist()):
        item: dict[str, Any] = {"request_id": str(request_id), "row": _whole(rows.iloc[index], index)}
        for key in ("truth", "reward"):
            if key in frame.columns:
                value = frame[key].iloc[index]
                if not _missing(value):
                    item[key] = jsonable(value)
        body.append(item)
    return parse_feedback(body)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _whole(value: Any, index: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if _missing(value) or number != value or number < 0:
        raise InvalidInputError(f"feedback row {index}: 'row' is the row's position in its request (0, 1, ...), "
                                f"not {value!r}")
    return number


def send_feedback(url: str, model_name: str, items: Sequence[FeedbackItem], *, chunk: int = 1000,
                  timeout: float = 60.0, client: Any = None, token: str | None = None) -> FeedbackReport:
    """POST ``items`` to the feedback route of the server or router at ``url``, ``chunk`` at a time,
    with the deployment's feedback ``token`` when given."""
    import httpx

    own = client is None
    http = client or httpx.Client(timeout=timeout)
    results: list[FeedbackResult] = []
    try:
        for start in range(0, len(items), chunk):
            body = orjson.dumps([item.to_json() for item in items[start:start + chunk]])
            try:
                headers = {"content-type": "application/json"}
                if token:
                    headers["authorization"] = f"Bearer {token}"
                response = http.post(f"{url.rstrip('/')}/v2/models/{model_name}/feedback", content=body,
                                     headers=headers)
            except httpx.HTTPError as exc:
                sent = f" ({start} items were recorded before)" if start else ""
                raise DeploymentError(f"cannot send feedback to {url} ({exc}){sent}: is the deployment running? "
                                      "`workbench deployments` lists them") from exc
            answer = response.json() if response.headers.get("content-type", "").startswith("application/json") \
                else {}
            if "results" not in answer:
                raise InvalidInputError(f"{url} refused the feedback ({response.status_code}): "
                                        f"{answer.get('error', response.text[:300])}")
            results.extend(FeedbackResult.from_json(r) for r in answer["results"])
    finally:
        if own:
            http.close()
    return FeedbackReport(tuple(results))
