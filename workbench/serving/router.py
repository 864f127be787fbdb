"""The traffic router: one stable address in front of a deployment's model servers.

It forwards every request to the champion's servers (round robin over replicas, skipping ones
that do not answer), or sends a share of requests to a challenger (``split``), or answers from the
champion while mirroring a copy to the challenger (``shadow``, the challenger's answer is never
returned). The route table changes at run time through ``PUT /workbench/router`` (with the
deployment's admin token), so updates, promotions and aborts never move the address clients use.

Started by deployment targets with ``workbench route --config FILE``; its own routes live under
``/workbench/router`` so every other path (``/invocations``, ``/v2/...``) reaches the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workbench.errors import InvalidInputError
from workbench.serving.guard import add_guard, read_body

__all__ = ["RouteTable", "create_router"]

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
                "content-length", "proxy-authorization", "proxy-connection"}
# The router has checked where a request comes from (guard.CrossSiteGuard) before forwarding it. Its
# servers listen on other ports, so to them the caller's own Origin would look foreign: not forwarded.
_CHECKED_HEADERS = {"origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user"}
_SHADOW_LIMIT = 64  # mirrored requests in flight at most; beyond that copies are counted as dropped


@dataclass(frozen=True)
class RouteTable:
    """Where requests go: the champion's server URLs, the challenger's, and the traffic policy."""

    champion: tuple[str, ...]
    challenger: tuple[str, ...] = ()
    #: ``split`` or ``shadow`` (ignored without a challenger).
    mode: str = "split"
    #: Share of requests for the challenger in ``split`` mode.
    challenger_share: float = 0.0
    #: Versions, reported in the ``x-workbench-variant`` and ``x-model-version`` headers.
    champion_version: str = ""
    challenger_version: str = ""

    def __post_init__(self) -> None:
        if not self.champion:
            raise InvalidInputError("a route table needs at least one champion server URL")
        if self.mode not in ("split", "shadow"):
            raise InvalidInputError(f"mode must be 'split' or 'shadow', not {self.mode!r}")
        if not 0.0 <= self.challenger_share <= 1.0:
            raise InvalidInputError("challenger_share must be between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"champion": list(self.champion), "challenger": list(self.challenger), "mode": self.mode,
                "challenger_share": self.challenger_share, "champion_version": self.champion_version,
                "challenger_version": self.challenger_version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteTable:
        """Inverse of :meth:`to_dict`; bad values raise InvalidInputError."""
        try:
            return cls(
                champion=tuple(str(u).rstrip("/") for u in data["champion"]),
                challenger=tuple(str(u).rstrip("/") for u in data.get("challenger") or ()),
                mode=str(data.get("mode", "split")),
                challenger_share=float(data.get("challenger_share", 0.0)),
                champion_version=str(data.get("champion_version", "")),
                challenger_version=str(data.get("challenger_version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a route table: {exc}") from exc


@dataclass
class _Group:
    urls: tuple[str, ...]
    cycle: Any = field(init=False)

    def __post_init__(self) -> None:
        self.cycle = itertools.cycle(range(len(self.urls))) if self.urls else None

    def order(self) -> list[str]:
        """Every URL, starting with the next in round-robin order."""
        if not self.urls:
            return []
        start = next(self.cycle)
        return [self.urls[(start + i) % len(self.urls)] for i in range(len(self.urls))]


class _Router:
    def __init__(self, table: RouteTable, token: str, config_path: Path | None, max_body_bytes: int) -> None:
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.config_path = config_path
        self.client: httpx.AsyncClient | None = None
        self.registry = CollectorRegistry()
        self.requests = Counter("router_requests", "Requests answered, by variant and status code",
                                ["variant", "version", "status_code"], registry=self.registry)
        self.duration = Histogram("router_request_duration_seconds", "Time to answer, by variant",
                                  ["variant", "version"], registry=self.registry,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.shadow = Counter("router_shadow_requests", "Mirrored requests by outcome",
                              ["outcome"], registry=self.registry)
        self.shadow_slots = asyncio.Semaphore(_SHADOW_LIMIT)
        self.background: set[asyncio.Task[None]] = set()
        self.apply(table)

    def apply(self, table: RouteTable) -> None:
        self.table = table
        self.groups = {"champion": _Group(table.champion), "challenger": _Group(table.challenger)}

    def choose(self) -> str:
        table = self.table
        if table.challenger and table.mode == "split" and random.random() < table.challenger_share:
            return "challenger"
        return "champion"

    async def send(self, variant: str, request: Request, body: bytes) -> httpx.Response:
        """Forward to the variant's servers in turn until one answers."""
        assert self.client is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in _HOP_HEADERS and k.lower() not in _CHECKED_HEADERS}
        last_error: Exception | None = None
        for url in self.groups[variant].order():
            try:
                return await self.client.request(
                    request.method, url + request.url.path, params=request.query_params, content=body,
                    headers=headers,
                )
            except httpx.TransportError as exc:  # that replica is down or restarting: try the next
                last_error = exc
        raise ConnectionError(f"no {variant} server answered: {last_error}")

    async def mirror(self, request: Request, body: bytes) -> None:
        try:
            response = await self.send("challenger", request, body)
            self.shadow.labels("answered" if response.status_code < 500 else "failed").inc()
        except ConnectionError:
            self.shadow.labels("failed").inc()
        finally:
            self.shadow_slots.release()

    async def forward(self, request: Request) -> Response:
        try:  # the servers check the content type; the router only never holds more than they take
            body = await read_body(request, self.max_body_bytes, json_only=False, allow_empty=True)
        except InvalidInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        variant = self.choose()
        version = self.table.champion_version if variant == "champion" else self.table.challenger_version
        started = time.perf_counter()
        if (variant == "champion" and self.table.challenger and self.table.mode == "shadow"
                and request.method == "POST"):
            if self.shadow_slots.locked():
                self.shadow.labels("dropped").inc()  # counted, never silent; the client is unaffected
            else:
                await self.shadow_slots.acquire()
                task = asyncio.get_running_loop().create_task(self.mirror(request, body))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
        try:
            upstream = await self.send(variant, request, body)
        except ConnectionError as exc:
            self.requests.labels(variant, version, "503").inc()
            return JSONResponse({"error": f"{exc}; the deployment has no server ready"}, status_code=503)
        self.requests.labels(variant, version, str(upstream.status_code)).inc()
        self.duration.labels(variant, version).observe(time.perf_counter() - started)
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
                   and k.lower() != "content-encoding"}
        headers["x-workbench-variant"] = variant
        if version:
            headers["x-model-version"] = version
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return bool(self.token) and hmac.compare_digest(given, self.token)


def create_router(table: RouteTable, *, token: str, config_path: Path | None = None,
                  timeout: float = 60.0, allowed_origins: tuple[str, ...] | None = None) -> Starlette:
    """The router application; ``token`` guards ``PUT /workbench/router``.

    Requests from web pages on other origins are refused unless ``allowed_origins`` (default: the
    ``WORKBENCH_ALLOWED_ORIGINS`` setting) lists them (see :mod:`workbench.serving.guard`).
    """
    from workbench.config import get_settings

    settings = get_settings()
    router = _Router(table, token, config_path, settings.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        router.client = httpx.AsyncClient(timeout=timeout, limits=limits)
        try:
            yield
        finally:
            if router.background:
                await asyncio.wait(router.background, timeout=10)
            await router.client.aclose()

    async def get_table(request: Request) -> Response:
        return JSONResponse(router.table.to_dict())

    async def put_table(request: Request) -> Response:
        if not router.authorized(request):
            return JSONResponse({"error": "changing routes needs the deployment's admin token"}, status_code=401)
        try:
            body = await read_body(request, router.max_body_bytes)
            table = RouteTable.from_dict(json.loads(body))
        except InvalidInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        router.apply(table)
        if router.config_path is not None:  # a restarted router comes back with the same routes
            tmp = router.config_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"table": table.to_dict(), "token": router.token}))
            tmp.replace(router.config_path)
        return JSONResponse(table.to_dict())

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(router.registry), media_type="text/plain; version=0.0.4")

    async def forward(request: Request) -> Response:
        return await router.forward(request)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/workbench/router", get_table, methods=["GET"]),
            Route("/workbench/router", put_table, methods=["PUT"]),
            Route("/workbench/router/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", forward, methods=methods),
        ],
        lifespan=lifespan,
    )
    add_guard(app, settings.allowed_origins if allowed_origins is None else allowed_origins)
    return app


def load_config(path: Path) -> tuple[RouteTable, str]:
    """The route table and admin token stored in a router config file."""
    data = json.loads(path.read_text())
    return RouteTable.from_dict(data["table"]), str(data["token"])


def run_router(config: Path, *, host: str = "127.0.0.1", port: int = 8080,
               port_file: Path | None = None) -> None:
    """Serve the router described by ``config`` until SIGTERM."""
    from workbench.serving.server import bind, run_asgi

    table, token = load_config(config)
    sock = bind(host, port)
    run_asgi(create_router(table, token=token, config_path=config), sock, port_file=port_file)
