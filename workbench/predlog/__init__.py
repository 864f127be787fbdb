"""The prediction log: the product's main corridor, in one place.

Every server process appends each answered request durably (:class:`PredictionLog`, SQLite in WAL
mode); readers take pages after a cursor from a log folder or a running server
(:class:`LogFolderSource`, :class:`ServerSource`), turn records into one row per predicted input row
(:func:`log_rows`), and read "the newest rows" of every replica of a deployment with
:func:`recent_rows` (``Deployment.recent_rows`` calls it). Serving writes here; the monitor, the
explainers, version comparison, the CLI and the widgets read from here. Ground truth and rewards that
arrive later (:mod:`workbench.predlog.feedback`) are kept in the same file, beside the rows they label.

On a cluster every replica writes one shared PostgreSQL store instead (:func:`open_log` with
``WORKBENCH_LOG_URL``, :mod:`workbench.predlog.storelog`), spooling to local disk while it is away,
and monitors read it with SQL (:class:`StoreSource`, ``as_source("postgresql://...?deployment=NAME")``)::

    from workbench.predlog import recent_rows
    recent_rows(["http://127.0.0.1:8080", "/path/to/deployment/predictions"], 1000).frame
"""

from workbench.predlog.feedback import (
    FeedbackItem,
    FeedbackPage,
    FeedbackReport,
    FeedbackResult,
    feedback_items,
    latest_feedback,
    parse_feedback,
    read_feedback,
    send_feedback,
)
from workbench.predlog.log import PredictionLog
from workbench.predlog.store import StoreSource, StoreURL, is_store_url
from workbench.predlog.writer import LogWriter, log_store_env, log_store_source, open_log
from workbench.predlog.reader import LogRows, PredictionPage, log_rows, page_rows, read_predictions
from workbench.predlog.schema import META_COLUMNS, OUTPUT_NAMES, LogHealth, LogRecord, is_output_column
from workbench.predlog.sources import (
    FeedbackSource,
    LogFolderSource,
    PredictionSource,
    ServerSource,
    as_source,
    labelled_rows,
    read_all_feedback,
    recent_records,
    recent_rows,
)

__all__ = [
    "FeedbackItem",
    "FeedbackPage",
    "FeedbackReport",
    "FeedbackResult",
    "FeedbackSource",
    "LogFolderSource",
    "LogHealth",
    "LogRecord",
    "LogWriter",
    "LogRows",
    "META_COLUMNS",
    "OUTPUT_NAMES",
    "PredictionLog",
    "PredictionPage",
    "PredictionSource",
    "ServerSource",
    "StoreSource",
    "StoreURL",
    "as_source",
    "feedback_items",
    "is_output_column",
    "is_store_url",
    "labelled_rows",
    "latest_feedback",
    "log_rows",
    "log_store_env",
    "log_store_source",
    "open_log",
    "page_rows",
    "parse_feedback",
    "read_all_feedback",
    "read_feedback",
    "read_predictions",
    "recent_records",
    "recent_rows",
    "send_feedback",
]
