"""The traffic router: one stable address in front of a deployment's model servers.

It forwards every request to the champion's servers (round robin over replicas, skipping ones
that do not answer), or sends a share of requests to a challenger (``split``), or answers from the
champion while mirroring a copy to the challenger (``shadow``, the challenger's answer is never
returned), or shares requests between champion and challenger by the rewards fed back (``bandit``,
see :mod:`workbench.routing.bandit`; a request carrying an ``x-workbench-key`` header keeps
reaching the same version while the shares hold).

Feedback (``POST /v2/models/{name}[/versions/{v}]/feedback``) goes to every server of champion and
challenger at once; each item's answer is the one of the server that answered that request, and in
``bandit`` mode each reward first recorded feeds the arm of that server's version. The live shares,
rewards and share changes are in ``GET /workbench/router`` (its ``bandit`` block) and in
``/workbench/router/metrics``; they are kept in ``bandit-state.json`` beside the router's config,
so a restarted router carries on where it was. The route table changes at run time through ``PUT /workbench/router`` (with the
deployment's admin token), so updates, promotions and aborts never move the address clients use.
A router whose config file it cannot write (a Kubernetes ConfigMap, mounted read-only) refuses that
route with 409: there the routes change where the file comes from, and the admin token may come from
the environment (``WORKBENCH_ROUTER_TOKEN``, a Secret) instead of the file.

Started by deployment targets with ``workbench route --config FILE``; its own routes live under
``/workbench/router`` so every other path (``/invocations``, ``/v2/...``) reaches the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workbench._ids import new_id
from workbench._private import write_private
from workbench.errors import InvalidInputError
from workbench.predlog.feedback import MAX_FEEDBACK_BYTES
from workbench.routing.bandit import STICKY_HEADER, STRATEGIES
from workbench.serving.guard import add_guard, check_feedback_token, read_body
from workbench.serving.memory import RELEASE_AFTER_BYTES, release_memory, return_large_blocks
from workbench.routing.live_bandit import ARMS, LiveBandit

__all__ = ["ROUTER_TOKEN_ENV", "RouteTable", "create_router", "feedback_token_for", "load_config", "run_router"]

#: Where the router finds its admin token when its config file holds none (a Kubernetes Secret).
ROUTER_TOKEN_ENV = "WORKBENCH_ROUTER_TOKEN"


def feedback_token_for(admin_token: str) -> str:
    """The feedback token a deployment issues: derived from its router's admin token (so no other
    secret is kept), and useless for changing routes."""
    return hmac.new(admin_token.encode(), b"workbench feedback token", "sha256").hexdigest()[:40]

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
                "content-length", "proxy-authorization", "proxy-connection"}
# The router has checked where a request comes from (guard.CrossSiteGuard) before forwarding it. Its
# servers listen on other ports, so to them the caller's own Origin would look foreign: not forwarded.
_CHECKED_HEADERS = {"origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user"}
_SHADOW_LIMIT = 64  # mirrored requests in flight at most; beyond that copies are counted as dropped
#: Which status an item's merged answer takes when several servers answered it: the most telling.
#: ``spooled``: kept on a replica's disk while the shared store is away, classified when it returns.
_STATUS_RANK = {"recorded": 5, "corrected": 4, "spooled": 3, "duplicate": 2, "out_of_range": 1, "unknown": 0}


@dataclass(frozen=True)
class RouteTable:
    """Where requests go: the champion's server URLs, the challenger's, and the traffic policy."""

    champion: tuple[str, ...]
    challenger: tuple[str, ...] = ()
    #: ``split``, ``shadow`` or ``bandit`` (ignored without a challenger).
    mode: str = "split"
    #: Share of requests for the challenger in ``split`` mode.
    challenger_share: float = 0.0
    #: Versions, reported in the ``x-workbench-variant`` and ``x-model-version`` headers.
    champion_version: str = ""
    challenger_version: str = ""
    #: In ``bandit`` mode: ``thompson`` or ``epsilon_greedy``, and the latter's exploration rate.
    strategy: str = "thompson"
    epsilon: float = 0.1
    #: The URLs name DNS records with one address per replica (Docker Swarm's ``tasks.SERVICE``, a
    #: Kubernetes headless Service): the router resolves them every :data:`RESOLVE_EVERY` seconds and
    #: shares requests among the addresses, so replicas on any node, in any number, are reached.
    discover: bool = False
    #: Every server writes one shared prediction log (a PostgreSQL store): any server of a version
    #: records feedback for that version's answers, so feedback goes to one server of each version
    #: instead of all of them.
    shared_log: bool = False

    def __post_init__(self) -> None:
        if not self.champion:
            raise InvalidInputError("a route table needs at least one champion server URL")
        if self.mode not in ("split", "shadow", "bandit"):
            raise InvalidInputError(f"mode must be 'split', 'shadow' or 'bandit', not {self.mode!r}")
        if not 0.0 <= self.challenger_share <= 1.0:
            raise InvalidInputError("challenger_share must be between 0 and 1")
        if self.strategy not in STRATEGIES:
            raise InvalidInputError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if not 0.0 < self.epsilon <= 1.0:
            raise InvalidInputError(f"epsilon must be above 0 and at most 1, not {self.epsilon}")

    @property
    def bandit(self) -> bool:
        """Whether requests are shared by a bandit now (``bandit`` mode with a challenger)."""
        return self.mode == "bandit" and bool(self.challenger)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"champion": list(self.champion), "challenger": list(self.challenger), "mode": self.mode,
                "challenger_share": self.challenger_share, "champion_version": self.champion_version,
                "challenger_version": self.challenger_version, "strategy": self.strategy,
                "epsilon": self.epsilon, "discover": self.discover, "shared_log": self.shared_log}

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
                strategy=str(data.get("strategy", "thompson")),
                epsilon=float(data.get("epsilon", 0.1)),
                discover=bool(data.get("discover", False)),
                shared_log=bool(data.get("shared_log", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a route table: {exc}") from exc


class InFlightError(Exception):
    """A server failed after it was sent a request: it may have answered and logged it."""


#: Seconds the router waits for a server to accept a connection before it tries the next one.
CONNECT_TIMEOUT = 2.0

#: Seconds between two look-ups of the replicas' addresses when a route table says ``discover``.
RESOLVE_EVERY = 2.0


@dataclass
class _Group:
    #: The URLs in the route table.
    urls: tuple[str, ...]
    #: Where requests go: ``urls``, or with ``discover`` one URL per address their names resolve to.
    targets: tuple[str, ...] = field(init=False)
    #: The addresses each URL resolved to last time.
    resolved: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    counter: Any = field(init=False)

    def __post_init__(self) -> None:
        self.targets = self.urls
        self.counter = itertools.count()

    def order(self) -> list[str]:
        """Every target, starting with the next in round-robin order."""
        targets = self.targets
        if not targets:
            return []
        start = next(self.counter) % len(targets)
        return [targets[(start + i) % len(targets)] for i in range(len(targets))]

    async def resolve(self) -> None:
        """Look the URLs' names up again; a name that does not resolve now (every replica is
        restarting) keeps the addresses it had, so requests still try them and fail over."""
        loop = asyncio.get_running_loop()
        for url in self.urls:
            parsed = httpx.URL(url)
            try:
                infos = await loop.getaddrinfo(parsed.host, parsed.port or 80, type=socket.SOCK_STREAM)
            except OSError:
                continue
            self.resolved[url] = tuple(str(parsed.copy_with(host=address)).rstrip("/")
                                       for address in sorted({info[4][0] for info in infos}))
        self.targets = tuple(dict.fromkeys(t for url in self.urls for t in self.resolved.get(url, (url,))))


def _feedback_items(body: bytes) -> list[Any]:
    """The items of a feedback body (one object or a list); ``[]`` when it is not JSON (the servers
    say why)."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    return data if isinstance(data, list) else [data]


def _reward_of(item: Any) -> float | None:
    value = item.get("reward") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _Router:
    def __init__(self, table: RouteTable, token: str, config_path: Path | None, max_body_bytes: int,
                 state_dir: Path | None = None) -> None:
        self.token = token
        #: Feedback without the deployment's feedback token is refused (the router is reached from
        #: other machines); a wrong token is refused always.
        self.feedback_token_required = False
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
        self.feedback_items = Counter("router_feedback_items", "Feedback items answered, by variant and status",
                                      ["variant", "status"], registry=self.registry)
        self.bandit_share = Gauge("router_bandit_share", "Share of requests the bandit gives each variant now",
                                  ["variant", "version"], registry=self.registry)
        self.bandit_rewards = Gauge("router_bandit_rewards", "Rewards counted by the bandit, by variant",
                                    ["variant", "version"], registry=self.registry)
        self.bandit_reward_sum = Gauge("router_bandit_reward_sum", "Sum of the rewards counted, by variant",
                                       ["variant", "version"], registry=self.registry)
        self.bandit: LiveBandit | None = None
        state_folder = state_dir if state_dir is not None else config_path.parent if config_path is not None else None
        self.state_path = state_folder / "bandit-state.json" if state_folder is not None else None
        self.apply(table)

    def apply(self, table: RouteTable) -> None:
        self.table = table
        self.groups = {"champion": _Group(table.champion), "challenger": _Group(table.challenger)}
        self.resolved_at = 0.0
        if not table.bandit:
            self.bandit = None
        elif self.bandit is not None and self.bandit.key == LiveBandit.key_of(table):
            self.bandit.retune(table)
        else:
            self.bandit = LiveBandit(table, self.state_path)

    def choose(self, request: Request) -> str:
        table = self.table
        if self.bandit is not None:
            if request.method != "POST":  # metadata and health (Deployment.predict reads the limits): no pull
                return "champion"
            return self.bandit.policy.choose(request.headers.get(STICKY_HEADER) or None)
        if table.challenger and table.mode == "split" and random.random() < table.challenger_share:
            return "challenger"
        return "champion"

    async def resolve(self) -> None:
        """With ``discover``: the replicas' addresses, looked up again."""
        if self.table.discover:
            for group in self.groups.values():
                await group.resolve()
            self.resolved_at = time.time()

    async def keep_resolving(self) -> None:
        """Look the replicas up every :data:`RESOLVE_EVERY` seconds, for the router's whole life."""
        while True:
            with contextlib.suppress(Exception):  # a failed look-up keeps the addresses known
                await self.resolve()
            await asyncio.sleep(RESOLVE_EVERY)

    def describe(self) -> dict[str, Any]:
        """``GET /workbench/router``: the route table, and the live bandit when there is one."""
        data = self.table.to_dict()
        if self.table.discover:
            data["replicas"] = {arm: list(group.targets) for arm, group in self.groups.items()}
        if self.bandit is not None:
            data["bandit"] = self.bandit.snapshot().to_dict()
        return data

    def update_gauges(self) -> None:
        for gauge in (self.bandit_share, self.bandit_rewards, self.bandit_reward_sum):
            gauge.clear()
        if self.bandit is None:
            return
        for arm in self.bandit.snapshot().arms:
            self.bandit_share.labels(arm.arm, arm.version).set(arm.share)
            self.bandit_rewards.labels(arm.arm, arm.version).set(arm.rewards)
            self.bandit_reward_sum.labels(arm.arm, arm.version).set(arm.reward_sum)

    def _headers(self, request: Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in _HOP_HEADERS and k.lower() not in _CHECKED_HEADERS}
        if request.method == "POST" and "x-request-id" not in request.headers:
            # One id per request, given to every server that sees it: a shadow challenger logs its
            # answer under the champion's id, so feedback on that id labels both answers.
            if not hasattr(request.state, "request_id"):
                request.state.request_id = new_id()
            headers["x-request-id"] = request.state.request_id
        return headers

    async def send(self, variant: str, request: Request, body: bytes) -> httpx.Response:
        """Forward to the variant's servers in turn until one takes the request.

        A server that refused the connection (down, restarting, gone with its node) never saw the
        request, so the next one gets it. One that failed after the request was sent may have
        answered and logged it: sending it again would log one request twice, so the client gets
        a 502 and decides (a repeat with the same ``x-request-id`` is safe to match up)."""
        assert self.client is not None
        headers = self._headers(request)
        last_error: Exception | None = None
        for url in self.groups[variant].order():
            try:
                return await self.client.request(
                    request.method, url + request.url.path, params=request.query_params, content=body,
                    headers=headers,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last_error = exc  # not delivered: try the next server
            except httpx.TransportError as exc:
                raise InFlightError(f"the {variant} server at {url} failed while answering ({exc!r}); the "
                                    "request may have been answered and logged there") from exc
        raise ConnectionError(f"no {variant} server answered: {last_error}")

    async def mirror(self, request: Request, body: bytes) -> None:
        try:
            response = await self.send("challenger", request, body)
            self.shadow.labels("answered" if response.status_code < 500 else "failed").inc()
        except (ConnectionError, InFlightError):
            self.shadow.labels("failed").inc()
        finally:
            self.shadow_slots.release()

    async def forward(self, request: Request) -> Response:
        try:  # the servers check the content type; the router only never holds more than they take
            body = await read_body(request, self.max_body_bytes, json_only=False, allow_empty=True)
        except InvalidInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        variant = self.choose(request)
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
        except InFlightError as exc:
            self.requests.labels(variant, version, "502").inc()
            return JSONResponse({"error": str(exc)}, status_code=502)
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
        # After a large request, the memory of its body and answer goes back to the system.
        background = BackgroundTask(release_memory) if len(body) >= RELEASE_AFTER_BYTES else None
        return Response(upstream.content, status_code=upstream.status_code, headers=headers, background=background)

    async def feedback(self, request: Request) -> Response:
        """Send feedback to every server of champion and challenger at once and merge the answers.

        Each item takes the status of the server that knew its request (``unknown`` when none did),
        and the answer's code is a server's: 200 when some item was kept, 404 when every item is
        unknown, 422 when none was kept and none is unknown; but 503 (safe to send again: a repeat is
        a ``duplicate``) when an item is unknown and some server did not answer. In ``bandit`` mode,
        the reward of each item first ``recorded`` goes to the arm of the version that answered it.
        """
        assert self.client is not None
        try:
            check_feedback_token(request.headers.get("authorization"),
                                 feedback_token_for(self.token) if self.token else None,
                                 required=self.feedback_token_required)
            body = await read_body(request, min(self.max_body_bytes, MAX_FEEDBACK_BYTES), json_only=False,
                                   allow_empty=True, advice="for feedback: send the items in several requests")
        except InvalidInputError as exc:  # past the size limit; the servers judge the rest
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        headers = self._headers(request)
        servers = [(variant, url) for variant in ARMS for url in self.groups[variant].order()]

        async def post(url: str) -> httpx.Response:
            return await self.client.post(url + request.url.path, params=request.query_params,  # type: ignore[union-attr]
                                          content=body, headers=headers)

        answers: list[httpx.Response | BaseException]
        if self.table.shared_log:
            # One store holds every server's log, and a server labels its own version's answers: one
            # server of each version is enough (the first that answers).
            async def first(urls: list[str]) -> httpx.Response:
                failure: BaseException = httpx.ConnectError("no server")
                for url in urls:
                    try:
                        return await post(url)
                    except httpx.TransportError as exc:
                        failure = exc
                raise failure

            groups = [(v, self.groups[v].order()) for v in ARMS if self.groups[v].targets]
            servers = [(variant, urls[0]) for variant, urls in groups]
            answers = await asyncio.gather(*(first(urls) for _, urls in groups), return_exceptions=True)
        else:
            answers = await asyncio.gather(*(post(url) for _, url in servers), return_exceptions=True)
        known: list[tuple[str, list[Any], dict[str, Any]]] = []
        other: httpx.Response | None = None
        unreachable: list[str] = []
        for (variant, url), answer in zip(servers, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, httpx.TransportError):
                    raise answer
                unreachable.append(url)
                continue
            try:
                data = answer.json()
            except ValueError:
                data = None
            results = data.get("results") if isinstance(data, dict) and answer.status_code in (200, 404) else None
            if isinstance(results, list):
                known.append((variant, results, data))
            elif other is None or answer.status_code == 422:  # a malformed body is the caller's to fix
                other = answer
        if not known:
            if other is not None:
                return Response(other.content, status_code=other.status_code,
                                media_type=other.headers.get("content-type"))
            return JSONResponse({"error": "no model server answered the feedback; nothing was recorded, "
                                          "send it again when the deployment is ready"}, status_code=503)
        items = _feedback_items(body)
        merged: list[dict[str, Any]] = []
        rewarded = dict.fromkeys(ARMS, 0)
        ignored = 0
        for i in range(max(len(results) for _, results, _ in known)):
            best: tuple[int, str, dict[str, Any]] | None = None
            for variant, results, _ in known:
                if i < len(results) and isinstance(results[i], dict):
                    rank = _STATUS_RANK.get(str(results[i].get("status")), 1)
                    if best is None or rank > best[0]:
                        best = (rank, variant, results[i])
            if best is None:
                continue
            _, variant, result = best
            variant = self._answered_by(result, variant)
            status = str(result.get("status"))
            self.feedback_items.labels(variant if status != "unknown" else "", status).inc()
            merged.append(result)
            reward = _reward_of(items[i]) if i < len(items) else None
            if self.bandit is not None and status == "recorded" and reward is not None:
                try:
                    self.bandit.policy.reward(variant, reward)
                    rewarded[variant] += 1
                except InvalidInputError:
                    ignored += 1  # recorded by the server all the same; the bandit takes [0, 1] only
        counts = {status: sum(r.get("status") == status for r in merged) for status in _STATUS_RANK}
        answer_body: dict[str, Any] = {"results": merged, **counts}
        if self.bandit is not None:
            if any(rewarded.values()):
                self.bandit.settle()
            answer_body["bandit"] = {"rewarded": rewarded, "ignored": ignored,
                                     "shares": self.bandit.policy.shares()}
        if unreachable and counts["unknown"]:
            answer_body["error"] = (f"{len(unreachable)} model server(s) did not answer, so 'unknown' items may "
                                    "belong to them: send the feedback again (items recorded now answer "
                                    "'duplicate')")
            return JSONResponse(answer_body, status_code=503)
        status_code = 200
        if not (counts["recorded"] or counts["corrected"] or counts["duplicate"] or counts["spooled"]):
            status_code = 404 if counts["unknown"] else 422
        return JSONResponse(answer_body, status_code=status_code)

    def _answered_by(self, result: Mapping[str, Any], server_variant: str) -> str:
        """The variant whose version gave the answer a feedback result refers to. Champion and
        challenger may share one prediction log (then either server knows every request): the
        result's ``model_version`` says who answered; without it, the server that knew it."""
        version = result.get("model_version")
        champion, challenger = self.table.champion_version, self.table.challenger_version
        if version is not None and champion != challenger:
            if str(version) == challenger and challenger:
                return "challenger"
            if str(version) == champion and champion:
                return "champion"
        return server_variant

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return bool(self.token) and hmac.compare_digest(given, self.token)


def create_router(table: RouteTable, *, token: str, config_path: Path | None = None,
                  timeout: float = 60.0, allowed_origins: tuple[str, ...] | None = None,
                  state_dir: Path | None = None, require_feedback_token: bool = False) -> Starlette:
    """The router application; ``token`` guards ``PUT /workbench/router``, and feedback carries the
    token derived from it (:func:`feedback_token_for`): optional, unless ``require_feedback_token``
    (a router bound to an address other machines reach), but a wrong one is always refused.

    ``config_path`` is where a new route table is kept (a restarted router comes back with it);
    ``state_dir`` (default: the config's folder) where the bandit keeps its state.

    Requests from web pages on other origins are refused unless ``allowed_origins`` (default: the
    ``WORKBENCH_ALLOWED_ORIGINS`` setting) lists them (see :mod:`workbench.serving.guard`).
    """
    from workbench.config import get_settings

    settings = get_settings()
    router = _Router(table, token, config_path, settings.max_body_bytes, state_dir)
    router.feedback_token_required = require_feedback_token

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        # A replica gone with its node leaves an address nothing answers from: give up connecting to
        # it soon and try the next, instead of holding the request for the whole timeout.
        router.client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT), limits=limits)
        await router.resolve()
        resolver = asyncio.get_running_loop().create_task(router.keep_resolving())
        try:
            yield
        finally:
            resolver.cancel()
            if router.background:
                await asyncio.wait(router.background, timeout=10)
            await router.client.aclose()
            if router.bandit is not None and router.bandit.dirty:
                router.bandit.save()

    async def get_table(request: Request) -> Response:
        return JSONResponse(router.describe())

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
        if router.config_path is not None:  # a restarted router comes back with the same routes
            try:
                _save_table(router.config_path, table, router.token)
            except OSError as exc:  # kept nowhere: change nothing, so every replica keeps the same routes
                return JSONResponse({"error": (
                    f"this router's routes come from {router.config_path}, which it cannot write "
                    f"({exc.strerror or exc}): change them where that file comes from (on Kubernetes, the "
                    "deployment's ConfigMap: `wb.set_traffic`, `wb.promote` or `wb.abort`, or apply the "
                    "ConfigMap; the router's pods roll to it)")}, status_code=409)
        router.apply(table)
        await router.resolve()
        return JSONResponse(router.describe())

    async def metrics(request: Request) -> Response:
        router.update_gauges()
        return Response(generate_latest(router.registry), media_type="text/plain; version=0.0.4")

    async def forward(request: Request) -> Response:
        return await router.forward(request)

    async def feedback(request: Request) -> Response:
        return await router.feedback(request)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/workbench/router", get_table, methods=["GET"]),
            Route("/workbench/router", put_table, methods=["PUT"]),
            Route("/workbench/router/metrics", metrics, methods=["GET"]),
            Route("/v2/models/{name}/feedback", feedback, methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}/feedback", feedback, methods=["POST"]),
            Route("/{path:path}", forward, methods=methods),
        ],
        lifespan=lifespan,
    )
    add_guard(app, settings.allowed_origins if allowed_origins is None else allowed_origins,
              allows_host=settings.allows_host)
    return app


def _save_table(path: Path, table: RouteTable, token: str) -> None:
    """Replace the table in the config file ``path`` (atomically), keeping its other keys: a token
    that came from the environment is never written to an existing file (a new one gets ``token``)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        data = {"token": token}
    data["table"] = table.to_dict()
    write_private(path, json.dumps(data))  # it may hold the admin token: 0600 every time


def load_config(path: Path) -> tuple[RouteTable, str]:
    """The route table and admin token of a router config file (``{"table": ..., "token": ...}``).

    A file without ``token`` (a Kubernetes ConfigMap) takes it from ``WORKBENCH_ROUTER_TOKEN`` (a
    Secret); with neither, the routes cannot be changed through ``PUT /workbench/router``.
    """
    try:
        data = json.loads(path.read_text())
        table = RouteTable.from_dict(data["table"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a router config ({{\"table\": ...}}): {exc}") from exc
    token = data.get("token") or os.environ.get(ROUTER_TOKEN_ENV, "")
    return table, str(token)


def run_router(config: Path, *, host: str = "127.0.0.1", port: int = 8080,
               port_file: Path | None = None, state_dir: Path | None = None) -> None:
    """Serve the router described by ``config`` until SIGTERM; the bandit's state goes to
    ``state_dir`` (default: the config's folder)."""
    from workbench.config import configure, get_settings
    from workbench.serving.server import bind, run_asgi

    configure(get_settings().bound_to(host))
    table, token = load_config(config)
    return_large_blocks()  # a large request's memory goes back to the system once it is forwarded
    sock = bind(host, port)
    run_asgi(create_router(table, token=token, config_path=config, state_dir=state_dir,
                           require_feedback_token=not _loopback(host)), sock, port_file=port_file)


def _loopback(host: str) -> bool:
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
