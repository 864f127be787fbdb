"""The prediction log: the product's main corridor, in one place.

Every server process appends each answered request durably (:class:`PredictionLog`, SQLite in WAL
mode); readers take pages after a cursor from a log folder or a running server
(:class:`LogFolderSource`, :class:`ServerSource`), turn records into one row per predicted input row
(:func:`log_rows`), and read "the newest rows" of every replica of a deployment with
:func:`recent_rows` (``Deployment.recent_rows`` calls it). Serving writes here; the monitor, the
explainers, version comparison, the CLI and the widgets read from here::

    from workbench.predlog import recent_rows
    recent_rows(["http://127.0.0.1:8080", "/path/to/deployment/predictions"], 1000).frame
"""

from workbench.predlog.log import PredictionLog
from workbench.predlog.reader import LogRows, PredictionPage, log_rows, page_rows, read_predictions
from workbench.predlog.schema import META_COLUMNS, OUTPUT_NAMES, LogRecord, is_output_column
from workbench.predlog.sources import (
    LogFolderSource,
    PredictionSource,
    ServerSource,
    as_source,
    recent_records,
    recent_rows,
)

__all__ = [
    "META_COLUMNS",
    "OUTPUT_NAMES",
    "LogFolderSource",
    "LogRecord",
    "LogRows",
    "PredictionLog",
    "PredictionPage",
    "PredictionSource",
    "ServerSource",
    "as_source",
    "is_output_column",
    "log_rows",
    "page_rows",
    "read_predictions",
    "recent_records",
    "recent_rows",
]
