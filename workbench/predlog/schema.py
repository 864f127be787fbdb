"""What a prediction-log record is: the SQLite table, the record type, and the names of the columns
that rows read back from the log carry besides the model's inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LOG_FILE", "META_COLUMNS", "LogHealth", "OUTPUT_NAMES", "RECORD_COLUMNS", "SKLEARN_EXTRA_OUTPUTS", "LogRecord",
           "is_output_column"]

#: The file each server process appends to, in its log folder.
LOG_FILE = "predictions.db"

#: Extra outputs a client may request from a scikit-learn model, besides ``predict``.
SKLEARN_EXTRA_OUTPUTS = ("predict_proba", "predict_log_proba", "decision_function", "score_samples")

#: The names the inference server gives model outputs.
OUTPUT_NAMES = ("predict", *SKLEARN_EXTRA_OUTPUTS)

#: Columns of a page of records (one per answered request), in order.
RECORD_COLUMNS = ("seq", "request_id", "ts", "model_name", "model_version", "protocol", "n_rows",
                  "latency_ms", "inputs", "outputs", "replica")

#: Columns every row read from a log carries after its inputs and outputs (``source`` names the log).
META_COLUMNS = ("request_id", "ts", "model_version", "seq", "source")

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT,
    protocol TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    inputs BLOB NOT NULL,
    outputs BLOB NOT NULL,
    replica TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
CREATE INDEX IF NOT EXISTS predictions_request ON predictions (request_id);
"""


def is_output_column(name: object) -> bool:
    """Whether a column of rows read from a log holds a model output (``output.<name>`` when the
    output's name clashes with an input column)."""
    return name in OUTPUT_NAMES or str(name).startswith("output.")


@dataclass(frozen=True)
class LogRecord:
    """One answered request."""

    request_id: str
    ts: float
    model_name: str
    model_version: str | None
    protocol: str
    n_rows: int
    latency_ms: float
    #: ``{"columns": [...], "data": [[...], ...], "dtypes": [...]}`` (values exact, see
    #: :mod:`workbench.tables`; ``dtypes`` lets readers restore each column's type)
    inputs: dict[str, Any]
    #: output name -> list of values, one per row
    outputs: dict[str, Any]


@dataclass(frozen=True)
class LogHealth:
    """Whether a server's log can take records now, and in words where they go (what the server's
    readiness route reports)."""

    #: False when a record could not be committed anywhere: the server answers 503 until it can.
    ok: bool
    #: ``sqlite`` (the embedded log), ``store`` (the PostgreSQL store), ``spool`` (the store is away:
    #: records wait on local disk) or ``failing`` (neither the store nor the spool can be written).
    state: str
    #: What is going on and, when something is wrong, what to do.
    detail: str
    #: Records and feedback items waiting in the spool.
    spooled: int = 0

    def to_json(self) -> dict[str, object]:
        """The readiness route's ``log`` object."""
        return {"ok": self.ok, "state": self.state, "detail": self.detail, "spooled": self.spooled}
