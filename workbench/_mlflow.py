"""The seam between the workbench and MLflow: store set-up and error translation.

Every core module reaches MLflow through :func:`client` (which points MLflow at the settings' store
first) and wraps its calls in :func:`translated` so MLflow's errors surface as the workbench's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import io
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from workbench._private import create_private, private_folder
from workbench.config import Settings, get_settings, redact_uri
from workbench.errors import (
    InvalidInputError,
    NotFoundError,
    StoreUnavailableError,
    WorkbenchError,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

_lock = threading.Lock()
_ready_for: Settings | None = None


def _init_embedded_store(settings: Settings) -> None:
    """Create the workspace and its SQLite store once, safely across processes.

    MLflow migrates a new SQLite file on first use; two processes doing that at once corrupt each
    other's migration ("duplicate column name"), so the first use is serialised with a file lock.
    WAL mode lets readers and writers proceed together, which the notebook kernel, served models
    and background jobs all need.
    """
    try:
        private_folder(settings.home)  # 0700: logs and artifacts hold the users' data
        settings.artifact_root.mkdir(exist_ok=True)
        create_private(settings.store_path)
        lock_path = settings.home / ".store.lock"
        create_private(lock_path)
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            # MLflow logs each migration step at INFO: noise in a notebook cell's output.
            db_logger = logging.getLogger("mlflow.store.db.utils")
            level = db_logger.level
            db_logger.setLevel(logging.WARNING)
            try:
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                # Constructing the store runs MLflow's migrations and creates the default
                # experiment with its artifacts inside the workspace (not ./mlruns).
                SqlAlchemyStore(settings.store_uri, settings.artifact_root.as_uri())
                with contextlib.closing(sqlite3.connect(settings.store_path, timeout=30)) as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
            finally:
                db_logger.setLevel(level)
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the workspace at {settings.home}: {exc.strerror or exc}. "
            "Set WORKBENCH_HOME to a folder you can write to."
        ) from exc
    except WorkbenchError:
        raise
    except Exception as exc:
        raise StoreUnavailableError(
            f"cannot open the MLflow store {redact_uri(settings.store_uri)}: {exc}. If the file is damaged, "
            "move it away (or set WORKBENCH_HOME to a new folder) and try again."
        ) from exc


def ensure_ready(settings: Settings | None = None) -> Settings:
    """Point MLflow at the store the settings name, creating the embedded store when needed."""
    global _ready_for
    settings = settings or get_settings()
    with _lock:
        if _ready_for == settings:
            return settings
        import mlflow

        # Artifact progress bars are noise in notebooks and CLI output; users can turn them back on.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if settings.embedded:
            _init_embedded_store(settings)
        mlflow.set_tracking_uri(settings.store_uri)
        mlflow.set_registry_uri(settings.model_registry_uri)
        _ready_for = settings
    return settings


# What MLflow prints on stderr each time it registers a version: the workbench's own result says it.
_REGISTRY_CHATTER = re.compile(
    r"^(Successfully registered model '.*'\.|Registered model '.*' already exists\. Creating a new version "
    r"of this model\.\.\.|Created version '\d+' of model '.*'\.)$"
)


@contextlib.contextmanager
def quiet_registry() -> Iterator[None]:
    """Drop MLflow's "Successfully registered model / Created version" lines, which a notebook shows
    as red error boxes; every other line written to stderr meanwhile is passed on unchanged."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:  # after the redirect is undone, so an error's own output still reaches stderr
        kept = [line for line in captured.getvalue().splitlines(keepends=True)
                if not _REGISTRY_CHATTER.match(line.rstrip("\n"))]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def client() -> MlflowClient:
    """An MLflow client on the store of the current settings."""
    settings = ensure_ready()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.store_uri, registry_uri=settings.model_registry_uri)


def get_or_create_experiment(name: str, tags: dict[str, str] | None = None) -> Any:
    """MLflow's experiment called ``name``, created when missing (call inside :func:`translated`).

    Creation is safe when several processes ask at once: the loser of the race reads the winner's.
    Embedded experiments keep their artifacts under the workspace's ``artifacts/`` folder.
    """
    from mlflow.exceptions import MlflowException

    settings = get_settings()
    mlflow_client = client()
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return exp
    location = None
    if settings.embedded:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        location = (settings.artifact_root / safe).as_uri()
    try:
        mlflow_client.create_experiment(name, artifact_location=location, tags=tags or {})
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
    return mlflow_client.get_experiment_by_name(name)


@contextlib.contextmanager
def translated(
    not_found: type[NotFoundError] = NotFoundError, what: str | None = None
) -> Iterator[None]:
    """Turn MLflow and connection errors raised inside the block into workbench errors.

    ``not_found`` is the error raised for MLflow's RESOURCE_DOES_NOT_EXIST, with ``what`` naming the
    missing thing in the message.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except WorkbenchError:
        raise
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        message = getattr(exc, "message", str(exc))
        if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise not_found(f"{what or 'resource'} not found: {message}") from exc
        if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"):
            raise InvalidInputError(message) from exc
        if code in ("TEMPORARILY_UNAVAILABLE", "ENDPOINT_NOT_FOUND") or "Max retries" in message:
            raise StoreUnavailableError(_unreachable(message)) from exc
        raise WorkbenchError(f"MLflow failed: {message}") from exc
    except (ConnectionError, OSError) as exc:
        raise StoreUnavailableError(_unreachable(str(exc))) from exc


def _unreachable(detail: str) -> str:
    settings = get_settings()
    where = settings.store_uri
    hint = (
        "check that the MLflow tracking server is running and WORKBENCH_TRACKING_URI is right"
        if not settings.embedded
        else "check that WORKBENCH_HOME is on a writable, local disk"
    )
    return f"the MLflow store {where} is unavailable ({_gist(detail)}); {hint}"


def _gist(detail: str) -> str:
    """What went wrong, in a few words: the HTTP client's retry report is a paragraph of URLs."""
    lowered = detail.lower()
    for marker, said in (("connection refused", "connection refused: nothing listens there"),
                         ("timed out", "it did not answer in time"),
                         ("name or service not known", "its host name is unknown"),
                         ("nodename nor servname", "its host name is unknown"),
                         ("certificate verify failed", "its TLS certificate is not trusted")):
        if marker in lowered:
            return said
    return detail if len(detail) <= 200 else detail[:200] + "..."  # the whole detail stays in __cause__
