"""The workbench's one settings object.

Settings come from the environment (``WORKBENCH_*`` variables) and can be replaced for a process with
:func:`configure`. The embedded default keeps everything in one workspace folder::

    $WORKBENCH_HOME (default ./.workbench)
    ├── mlflow.db          MLflow tracking and registry store (SQLite, WAL mode)
    ├── artifacts/         MLflow artifacts (models, reference profiles, reports)
    ├── workbench.db       deployment records and the audit log
    └── deployments/NAME/  per-deployment prediction logs and process logs

Team mode points ``WORKBENCH_TRACKING_URI`` at an MLflow tracking server (PostgreSQL behind it);
the workspace folder then only holds this machine's deployments.

Example::

    >>> import workbench
    >>> workbench.configure(home="/tmp/wb-demo").store_uri
    'sqlite:////tmp/wb-demo/mlflow.db'
"""

from __future__ import annotations

import dataclasses
import getpass
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ConfigurationError

__all__ = ["Settings", "configure", "get_settings", "redact_uri"]

_ENV_PREFIX = "WORKBENCH_"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(_ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{_ENV_PREFIX}{name}={raw!r} is not a whole number: set it to an integer or unset it"
        ) from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(_ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{_ENV_PREFIX}{name}={raw!r} is not a number: set it to a number or unset it"
        ) from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = (os.environ.get(_ENV_PREFIX + name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{_ENV_PREFIX}{name}={raw!r} is not a yes or no: set it to 1 or 0, or unset it")


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(_ENV_PREFIX + name) or ""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user part replaced by ``***`` (for messages and reprs)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0] or ":" not in rest.split("/", 1)[0].rsplit("@", 1)[0]:
        return uri
    userinfo, host = rest.split("/", 1)[0].rsplit("@", 1), rest.split("/", 1)[1:]
    user = userinfo[0].split(":", 1)[0]
    tail = "/" + host[0] if host else ""
    return f"{scheme}://{user}:***@{userinfo[1]}{tail}"


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, e.g. a numeric UID in a container
        return "unknown"


@dataclass(frozen=True)
class Settings:
    """Where the workbench keeps its state, and the knobs of serving and packaging.

    Build one with :func:`get_settings` (from the environment) or :func:`configure` (explicit values);
    the fields mirror the ``WORKBENCH_*`` environment variables named in each comment.
    """

    #: Workspace folder (``WORKBENCH_HOME``, default ``./.workbench``), always absolute.
    home: Path
    #: MLflow tracking server URI (``WORKBENCH_TRACKING_URI``); ``None`` means the embedded store.
    tracking_uri: str | None = None
    #: MLflow registry URI when it differs from tracking (``WORKBENCH_REGISTRY_URI``).
    registry_uri: str | None = None
    #: Who is acting, recorded with runs, deployments and audit entries (``WORKBENCH_USER``).
    user: str = "unknown"
    #: Base image for model images (``WORKBENCH_BASE_IMAGE``); ``None``: ``python:<model's X.Y>-slim``.
    base_image: str | None = None
    #: Largest request body the inference server accepts (``WORKBENCH_MAX_BODY_BYTES``).
    max_body_bytes: int = 16 * 1024 * 1024
    #: Most rows predicted in one batch (``WORKBENCH_MAX_BATCH_SIZE``).
    max_batch_size: int = 256
    #: How long a batch may wait for more requests, in ms (``WORKBENCH_MAX_BATCH_WAIT_MS``); 0 means
    #: only requests that arrived while the model was busy are batched.
    max_batch_wait_ms: float = 0.0
    #: Seconds a new deployment has to become ready (``WORKBENCH_HEALTH_TIMEOUT``).
    health_timeout: float = 120.0
    #: Most input rows the inference server predicts in one request (``WORKBENCH_MAX_ROWS``): what a
    #: request may cost in memory grows with its rows, not only with its bytes.
    max_rows_per_request: int = 100_000
    #: Most bytes of records in one page of ``GET /workbench/predictions`` (``WORKBENCH_LOG_PAGE_BYTES``);
    #: a page holds at least one record, so a reader always moves on.
    log_page_bytes: int = 8 * 1024 * 1024
    #: Web page origins (``https://host[:port]``) allowed to call the inference server and the router
    #: from a browser (``WORKBENCH_ALLOWED_ORIGINS``, comma-separated; ``*`` for any). By default a
    #: request a page on another origin sends is refused, so no web page can write into the log.
    allowed_origins: tuple[str, ...] = ()
    #: Host names the inference server, the router and the review app answer to besides loopback's
    #: and IP addresses (``WORKBENCH_ALLOWED_HOSTS``, comma-separated; ``.example.com`` also allows
    #: its subdomains, ``*`` any name). A request whose ``Host`` is another name is refused (403), so a
    #: page on a name an attacker points at 127.0.0.1 (DNS rebinding) cannot use the server.
    allowed_hosts: tuple[str, ...] = ()
    #: The token feedback writes must carry (``Authorization: Bearer TOKEN``) on the inference server
    #: (``WORKBENCH_FEEDBACK_TOKEN``); unset, the server takes feedback without one. Never in a repr.
    feedback_token: str | None = None
    #: Wrong passwords a client may try at the review app's team sign-in before it is locked out
    #: (``WORKBENCH_SIGN_IN_ATTEMPTS``).
    sign_in_attempts: int = 5
    #: Seconds a client stays locked out after too many wrong passwords (``WORKBENCH_SIGN_IN_LOCKOUT``).
    sign_in_lockout: float = 60.0
    #: Store the code that trained a model with it at ``log_model`` (``WORKBENCH_CAPTURE_CODE``, 1 or
    #: 0): the notebook's executed cells or the script, the git commit and the uncommitted diff.
    capture_code: bool = True
    #: Most bytes of each captured code file (``WORKBENCH_MAX_CODE_BYTES``); longer ones are cut and
    #: marked as cut.
    max_code_bytes: int = 1_000_000
    #: Start local model servers and routers as forks of a pre-imported warm process
    #: (``WORKBENCH_WARM_SERVER``, 1 or 0; see :mod:`workbench.deployment.warm`); 0: fresh processes.
    warm_server: bool = True
    #: Store the training data (``training_data`` and ``training_labels``) with a model at
    #: ``log_model`` as a content-addressed Parquet snapshot (``WORKBENCH_SNAPSHOT_DATA``, 1 or 0; off
    #: by default: data leaves the notebook only when asked), so ``wb.reproduce`` can re-run its code.
    snapshot_data: bool = False
    #: Largest snapshot stored, in bytes of Parquet (``WORKBENCH_MAX_SNAPSHOT_BYTES``); a larger one is
    #: not stored and the model's snapshot manifest says so.
    max_snapshot_bytes: int = 100_000_000
    #: The shared prediction log store (``WORKBENCH_LOG_URL``, ``postgresql://user@host:port/db``):
    #: model servers write their records there, spooling to their log folder while it is away;
    #: ``None``: each server's embedded SQLite log (see :mod:`workbench.predlog`). Left out of the
    #: repr: it may hold a password.
    log_url: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())
        if self.max_body_bytes <= 0:
            raise ConfigurationError("max_body_bytes must be positive")
        if self.max_batch_size <= 0:
            raise ConfigurationError("max_batch_size must be at least 1")
        if self.max_batch_wait_ms < 0:
            raise ConfigurationError("max_batch_wait_ms cannot be negative")
        if self.max_rows_per_request <= 0:
            raise ConfigurationError("max_rows_per_request (WORKBENCH_MAX_ROWS) must be at least 1")
        if self.log_page_bytes <= 0:
            raise ConfigurationError("log_page_bytes (WORKBENCH_LOG_PAGE_BYTES) must be positive")
        if self.sign_in_attempts <= 0:
            raise ConfigurationError("sign_in_attempts (WORKBENCH_SIGN_IN_ATTEMPTS) must be at least 1")
        if self.sign_in_lockout < 0:
            raise ConfigurationError("sign_in_lockout (WORKBENCH_SIGN_IN_LOCKOUT) cannot be negative")
        if self.max_code_bytes <= 0:
            raise ConfigurationError("max_code_bytes (WORKBENCH_MAX_CODE_BYTES) must be positive")
        if self.max_snapshot_bytes <= 0:
            raise ConfigurationError("max_snapshot_bytes (WORKBENCH_MAX_SNAPSHOT_BYTES) must be positive")
        if self.log_url is not None and not self.log_url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError("log_url (WORKBENCH_LOG_URL) must be a postgresql:// URL, or unset for the "
                                     "embedded SQLite log")
        object.__setattr__(self, "allowed_origins", tuple(o.rstrip("/") for o in self.allowed_origins))
        object.__setattr__(self, "allowed_hosts", tuple(h.strip().lower().rstrip(".") for h in self.allowed_hosts))

    def __repr__(self) -> str:
        # A store URI may carry a password (postgresql://user:secret@host/db): never in a repr,
        # which a notebook saves with its outputs.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        for key in ("tracking_uri", "registry_uri"):
            if shown[key]:
                shown[key] = redact_uri(shown[key])
        if shown.get("feedback_token"):
            shown["feedback_token"] = "***"
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from ``WORKBENCH_*`` environment variables."""
        return cls(
            home=Path(os.environ.get(_ENV_PREFIX + "HOME") or ".workbench"),
            tracking_uri=os.environ.get(_ENV_PREFIX + "TRACKING_URI") or None,
            registry_uri=os.environ.get(_ENV_PREFIX + "REGISTRY_URI") or None,
            user=os.environ.get(_ENV_PREFIX + "USER") or _default_user(),
            base_image=os.environ.get(_ENV_PREFIX + "BASE_IMAGE") or None,
            max_body_bytes=_env_int("MAX_BODY_BYTES", cls.max_body_bytes),
            max_batch_size=_env_int("MAX_BATCH_SIZE", cls.max_batch_size),
            max_batch_wait_ms=_env_float("MAX_BATCH_WAIT_MS", cls.max_batch_wait_ms),
            health_timeout=_env_float("HEALTH_TIMEOUT", cls.health_timeout),
            max_rows_per_request=_env_int("MAX_ROWS", cls.max_rows_per_request),
            log_page_bytes=_env_int("LOG_PAGE_BYTES", cls.log_page_bytes),
            allowed_origins=_env_list("ALLOWED_ORIGINS"),
            allowed_hosts=_env_list("ALLOWED_HOSTS"),
            feedback_token=os.environ.get(_ENV_PREFIX + "FEEDBACK_TOKEN") or None,
            sign_in_attempts=_env_int("SIGN_IN_ATTEMPTS", cls.sign_in_attempts),
            sign_in_lockout=_env_float("SIGN_IN_LOCKOUT", cls.sign_in_lockout),
            capture_code=_env_bool("CAPTURE_CODE", cls.capture_code),
            max_code_bytes=_env_int("MAX_CODE_BYTES", cls.max_code_bytes),
            warm_server=_env_bool("WARM_SERVER", cls.warm_server),
            snapshot_data=_env_bool("SNAPSHOT_DATA", cls.snapshot_data),
            max_snapshot_bytes=_env_int("MAX_SNAPSHOT_BYTES", cls.max_snapshot_bytes),
            log_url=os.environ.get(_ENV_PREFIX + "LOG_URL") or None,
        )

    @property
    def embedded(self) -> bool:
        """True when the MLflow store is the SQLite file in the workspace."""
        return self.tracking_uri is None

    @property
    def store_path(self) -> Path:
        """The embedded SQLite store file."""
        return self.home / "mlflow.db"

    @property
    def store_uri(self) -> str:
        """The MLflow tracking URI in effect."""
        return self.tracking_uri or f"sqlite:///{self.store_path}"

    @property
    def model_registry_uri(self) -> str:
        """The MLflow registry URI in effect."""
        return self.registry_uri or self.store_uri

    @property
    def artifact_root(self) -> Path:
        """Where the embedded store keeps artifacts."""
        return self.home / "artifacts"

    @property
    def workspace_db(self) -> Path:
        """SQLite file of deployment records and the audit log."""
        return self.home / "workbench.db"

    @property
    def deployments_dir(self) -> Path:
        """Per-deployment folders (prediction logs, process logs)."""
        return self.home / "deployments"

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        env = {_ENV_PREFIX + "HOME": str(self.home), _ENV_PREFIX + "USER": self.user}
        optional = {
            "TRACKING_URI": self.tracking_uri,
            "REGISTRY_URI": self.registry_uri,
            "BASE_IMAGE": self.base_image,
            "LOG_URL": self.log_url,
        }
        env.update({_ENV_PREFIX + k: v for k, v in optional.items() if v})
        env[_ENV_PREFIX + "MAX_BODY_BYTES"] = str(self.max_body_bytes)
        env[_ENV_PREFIX + "MAX_BATCH_SIZE"] = str(self.max_batch_size)
        env[_ENV_PREFIX + "MAX_BATCH_WAIT_MS"] = str(self.max_batch_wait_ms)
        env[_ENV_PREFIX + "HEALTH_TIMEOUT"] = str(self.health_timeout)
        env[_ENV_PREFIX + "MAX_ROWS"] = str(self.max_rows_per_request)
        env[_ENV_PREFIX + "LOG_PAGE_BYTES"] = str(self.log_page_bytes)
        env[_ENV_PREFIX + "SIGN_IN_ATTEMPTS"] = str(self.sign_in_attempts)
        env[_ENV_PREFIX + "SIGN_IN_LOCKOUT"] = str(self.sign_in_lockout)
        env[_ENV_PREFIX + "CAPTURE_CODE"] = "1" if self.capture_code else "0"
        env[_ENV_PREFIX + "MAX_CODE_BYTES"] = str(self.max_code_bytes)
        env[_ENV_PREFIX + "WARM_SERVER"] = "1" if self.warm_server else "0"
        env[_ENV_PREFIX + "SNAPSHOT_DATA"] = "1" if self.snapshot_data else "0"
        env[_ENV_PREFIX + "MAX_SNAPSHOT_BYTES"] = str(self.max_snapshot_bytes)
        if self.allowed_origins:
            env[_ENV_PREFIX + "ALLOWED_ORIGINS"] = ",".join(self.allowed_origins)
        if self.allowed_hosts:
            env[_ENV_PREFIX + "ALLOWED_HOSTS"] = ",".join(self.allowed_hosts)
        if self.feedback_token:
            env[_ENV_PREFIX + "FEEDBACK_TOKEN"] = self.feedback_token
        return env

    def bound_to(self, address: str) -> Settings:
        """These settings for a server bound to ``address``: a host name it was bound by is one
        it answers to as well (an IP address is always allowed)."""
        name = address.strip().strip("[]").lower().rstrip(".")
        if not name or self.allows_host(name):
            return self
        return dataclasses.replace(self, allowed_hosts=(*self.allowed_hosts, name))

    def allows_host(self, host: str | None) -> bool:
        """Whether a request whose ``Host`` header is ``host`` (``name[:port]``) may be answered.

        Allowed: no ``Host`` at all (not a browser), any IP address (a page is only ever at an
        address by being served from it, so no DNS name can be re-pointed there), ``localhost`` and
        ``*.localhost``, and the names in :attr:`allowed_hosts`. Any other name may be one an
        attacker's DNS answers with 127.0.0.1 after the page loaded (DNS rebinding), as Jupyter
        reasons too.
        """
        if host is None or not host.strip():
            return True
        name = host.strip().lower()
        if name.startswith("["):  # [v6]:port
            name = name[1:].split("]", 1)[0]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        name = name.rstrip(".")
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        if name == "localhost" or name.endswith(".localhost"):
            return True
        for allowed in self.allowed_hosts:
            if allowed == "*" or name == allowed or (allowed.startswith(".") and
                                                     (name.endswith(allowed) or name == allowed[1:])):
                return True
        return False


_lock = threading.Lock()
_current: Settings | None = None


def get_settings() -> Settings:
    """The settings in effect: those given to :func:`configure`, else read once from the environment."""
    global _current
    with _lock:
        if _current is None:
            _current = Settings.from_env()
        return _current


def configure(settings: Settings | None = None, **changes: Any) -> Settings:
    """Replace the settings for this process and return them.

    Pass a whole :class:`Settings`, or field values to change on the current ones
    (``configure(home="/data/wb")``); ``configure()`` re-reads the environment.
    """
    global _current
    unknown = set(changes) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(Settings)]}"
        )
    if settings is None:
        base = Settings.from_env() if not changes else get_settings()
        settings = dataclasses.replace(base, **changes)
    elif changes:
        settings = dataclasses.replace(settings, **changes)
    with _lock:
        _current = settings
    return settings
