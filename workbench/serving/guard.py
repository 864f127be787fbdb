"""What keeps a web page the user has open, or a large request, from harming the inference server
and the router.

Both listen on a local port, and any page in the user's browser can send requests to
``127.0.0.1:<port>``: a ``fetch(..., {mode: "no-cors"})`` or a form POST goes out without the page
being able to read the answer, but its rows would still be predicted and logged. So a request that
a browser marks as sent from another origin is refused with 403, before any route runs:

- ``Sec-Fetch-Site`` (sent by every current browser) other than ``same-origin`` or ``none``
  (``none``: the user typed the address); a page on another port of the same host is
  ``same-site``, which is another origin, so it is refused too;
- else an ``Origin`` that is not this server's own (scheme, host and port of the ``Host`` header).

Before that, the ``Host`` header must name this server (:meth:`~workbench.config.Settings.allows_host`:
an IP address, ``localhost`` or a name in ``WORKBENCH_ALLOWED_HOSTS``), else 403: a page on a name whose
DNS answer is switched to 127.0.0.1 after it loaded (DNS rebinding) is same-origin to itself, so only
the name it uses gives it away.

Clients that are not browsers (httpx, requests, curl, MLflow's scoring client, Prometheus, health
checks) send neither header and are unaffected. A deployment that wants a web page to call it lists
that page's origin in ``WORKBENCH_ALLOWED_ORIGINS`` (:attr:`~workbench.config.Settings.allowed_origins`);
those origins also get CORS answers, so their pages can read the response.

Body routes additionally require a JSON content type (:func:`require_json`): the content types a
page may send without a CORS preflight (``text/plain``, forms, a typeless blob) are never read as a
request; only a client that is not a browser may leave the content type out (Triton's V2 client). They read
bodies with :func:`read_body`, which stops at the server's byte limit (``WORKBENCH_MAX_BODY_BYTES``)
instead of holding whatever a client sends.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from workbench.errors import (
    CredentialsError,
    CrossSiteRequestError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

__all__ = ["JSON_VALUE_BYTES", "CrossSiteGuard", "RequestLimits", "add_guard", "check_feedback_token", "cross_site_reason", "is_json", "read_body",
           "require_json"]

_SAME_ORIGIN = {"same-origin", "none"}

#: The most bytes one number takes in a JSON request: a float64 to its last bit
#: (``-2.2250738585072014e-308``, 24 characters) and the comma after it.
JSON_VALUE_BYTES = 25


@dataclass(frozen=True)
class RequestLimits:
    """What one request to a model may hold; both limits agree, so a client that keeps to them is
    never refused by the other one.

    Memory grows with the values a request holds, so the rows a request may have shrink with the
    model's width: at most ``WORKBENCH_MAX_ROWS`` rows, and no more rows of the model's columns
    than fit, in JSON, in ``WORKBENCH_MAX_BODY_BYTES`` (:data:`JSON_VALUE_BYTES` per number). A
    client learns both from the model's metadata (``GET /v2/models/{name}``: ``parameters.max_rows``
    and ``parameters.max_body_bytes``) and splits larger tables, as ``Deployment.predict`` does.
    """

    max_body_bytes: int
    max_rows: int
    #: Values per row (the model's input columns).
    width: int
    #: ``WORKBENCH_MAX_ROWS`` as configured.
    configured_rows: int

    @classmethod
    def for_model(cls, max_body_bytes: int, max_rows: int, width: int) -> RequestLimits:
        """The limits for a model whose rows have ``width`` values."""
        width = max(width, 1)
        fitting = max(1, max_body_bytes // (width * JSON_VALUE_BYTES))
        return cls(max_body_bytes, min(max_rows, fitting), width, max_rows)

    def explain(self) -> str:
        """Where :attr:`max_rows` comes from, in words."""
        if self.max_rows == self.configured_rows:
            return "WORKBENCH_MAX_ROWS"
        return (f"as many rows of its {self.width} values as fit in WORKBENCH_MAX_BODY_BYTES="
                f"{self.max_body_bytes}; WORKBENCH_MAX_ROWS is {self.configured_rows}")

    def to_json(self) -> dict[str, int]:
        """The form clients read in the model's metadata."""
        return {"max_rows": self.max_rows, "max_body_bytes": self.max_body_bytes}


def is_json(content_type: str) -> bool:
    """True for ``application/json`` and ``application/<anything>+json`` (parameters ignored)."""
    mime = content_type.split(";")[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def require_json(content_type: str | None, *, from_browser: bool = True) -> None:
    """Raise :class:`UnsupportedMediaTypeError` (415) unless ``content_type`` is JSON.

    A request with no content type at all is read as JSON when it does not come from a browser
    (``from_browser=False``: no ``Origin``, no ``Sec-Fetch-*`` header): V2 clients such as
    Triton's send JSON tensors without one, while a page's body always comes with those headers.
    """
    if not content_type and not from_browser:
        return
    if not is_json(content_type or ""):
        raise UnsupportedMediaTypeError(
            f"content type {content_type or '(none)'!r} is not supported: send the body as JSON with the "
            "header Content-Type: application/json"
        )


async def read_body(request: Any, limit: int, *, json_only: bool = True, allow_empty: bool = False,
                    advice: str = "(WORKBENCH_MAX_BODY_BYTES): send fewer rows per request") -> bytes:
    """The body of a Starlette ``request``, refused past ``limit`` bytes (413, whether or not a
    Content-Length was declared, with ``advice`` in the message), when empty (400, unless
    ``allow_empty``) and, with ``json_only``, when not JSON (415)."""
    declared = request.headers.get("content-length")
    too_big = PayloadTooLargeError(f"the request body is larger than the server's limit of {limit} bytes {advice}")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    if json_only:
        headers = request.headers
        browser = "origin" in headers or any(k.lower().startswith("sec-fetch-") for k in headers.keys())
        require_json(headers.get("content-type"), from_browser=browser)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_big
    if not size and not allow_empty:
        raise InvalidInputError("the request body is empty: send a JSON document")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one copy of the body, not two


def check_feedback_token(authorization: str | None, token: str | None, *, required: bool) -> None:
    """Raise :class:`CredentialsError` (401) unless the ``Authorization`` header carries ``token``
    (compared in constant time); without a header that is fine only when not ``required``, and a
    wrong token is refused always. ``token`` ``None``: no token is issued, nothing to check."""
    if not token:
        return
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not given and not required:
        return
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise CredentialsError(
            "feedback needs the deployment's feedback token: send it as `Authorization: Bearer TOKEN` "
            "(wb.get_deployment(NAME).feedback_token; wb.log_feedback sends it itself)"
            if not given else "the feedback token is wrong: use the deployment's own "
            "(wb.get_deployment(NAME).feedback_token)")


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def cross_site_reason(scope: dict[str, Any], allowed_origins: Sequence[str]) -> str | None:
    """Why the request in ``scope`` counts as sent by a page on another origin, or ``None``."""
    if "*" in allowed_origins:
        return None
    headers = scope.get("headers") or []
    origin = _header(headers, b"origin")
    if origin is not None:
        origin = origin.rstrip("/")
        if origin in allowed_origins:
            return None
    fetch_site = (_header(headers, b"sec-fetch-site") or "").strip().lower()
    if fetch_site and fetch_site not in _SAME_ORIGIN:
        return f"the browser marks it as sent from a {fetch_site} page ({origin or 'origin not given'})"
    if origin is None:
        return None
    host = _header(headers, b"host") or ""
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    own = f"{scheme}://{host}".lower()
    if origin.lower() == own:
        return None
    return f"it comes from a page at {origin}, not from {own or 'this server'}"


class CrossSiteGuard:
    """ASGI middleware that answers 403 to requests sent by a page on another origin.

    ``allowed_origins`` (``https://host[:port]`` or ``*``) are let through; :class:`starlette
    CORSMiddleware <starlette.middleware.cors.CORSMiddleware>` inside it answers their preflights.
    ``error_body`` builds the JSON body of the refusal from the :class:`CrossSiteRequestError` (each
    app answers errors in its own form); by default ``{"error": message}``.
    """

    def __init__(self, app: Any, *, allowed_origins: Sequence[str] = (), error_body: Any = None,
                 allows_host: Callable[[str | None], bool] | None = None) -> None:
        self.app = app
        self.allowed_origins = tuple(allowed_origins)
        self.error_body = error_body or (lambda error: {"error": str(error)})
        # Remembered per Host value (a client sends the same one with every request; parsing it as an
        # address costs microseconds), for a bounded number of values.
        self.allows_host = functools.lru_cache(maxsize=256)(allows_host) if allows_host is not None else None

    def refusal(self, scope: dict[str, Any]) -> CrossSiteRequestError | None:
        """Why the HTTP request in ``scope`` is refused (403), or ``None`` when it may go on."""
        host = _header(scope.get("headers") or [], b"host")
        if self.allows_host is not None and not self.allows_host(host):
            return CrossSiteRequestError(
                f"request for host {host!r} refused: this server answers to IP addresses, localhost "
                "and the names in WORKBENCH_ALLOWED_HOSTS only (a page on another name may have had "
                "it pointed here: DNS rebinding). Use the address, or add the name to "
                "WORKBENCH_ALLOWED_HOSTS (e.g. models.example.com)")
        if (reason := cross_site_reason(scope, self.allowed_origins)) is not None:
            return CrossSiteRequestError(
                f"cross-site request refused: {reason}. Pages on other origins may not call this "
                "server; to allow one, add its origin to WORKBENCH_ALLOWED_ORIGINS (e.g. "
                "https://app.example.com)")
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            error = self.refusal(scope)
            if error is not None:
                body = orjson.dumps(self.error_body(error))
                await send({"type": "http.response.start", "status": error.http_status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def add_guard(app: Any, allowed_origins: Sequence[str], *, error_body: Any = None,
              allows_host: Callable[[str | None], bool] | None = None) -> None:
    """Add the guard (and, for allowed origins, CORS answers) to a Starlette ``app``; ``allows_host``
    (usually :meth:`Settings.allows_host <workbench.config.Settings.allows_host>`) checks ``Host``."""
    if allowed_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(allowed_origins),
                           allow_methods=["GET", "POST", "PUT"], allow_headers=["content-type", "authorization"],
                           expose_headers=["x-request-id", "x-workbench-variant", "x-model-version"])
    app.add_middleware(CrossSiteGuard, allowed_origins=allowed_origins, error_body=error_body,
                       allows_host=allows_host)
