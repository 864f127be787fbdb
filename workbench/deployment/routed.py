"""Targets whose deployments are a router in front of model servers (local, docker, swarm).

The router (:mod:`workbench.routing.router`) holds the deployment's address for its whole life.
Model servers ("backends") come and go behind it:

- update / rollback: start the new backend, wait until it is ready, switch the router, stop the old
  one: no request is refused, and a backend that never becomes ready leaves the old one serving;
- challenger: start a second backend and route a share of traffic to it, or mirror to it;
- promote / abort: switch the router to one backend and stop the other.

A subclass says how to start, stop and inspect a backend and the router on its platform.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

import httpx

from workbench.deployment.base import DeploymentSpec, OnEvent, Placement, TargetStatus, TrafficPolicy, probe_ready
from workbench.errors import DeploymentError, InvalidInputError, WorkbenchError
from workbench.routing.router import RouteTable

__all__ = ["Backend", "PlatformHandle", "RoutedHandle", "RoutedTarget"]


class PlatformHandle(Protocol):
    """A platform's own handle on one backend or router (a process, a container, a service)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        ...


#: The platform's handle on a backend, and on the router.
B = TypeVar("B", bound=PlatformHandle)
R = TypeVar("R", bound=PlatformHandle)


@dataclass(frozen=True)
class Backend(Generic[B]):
    """One model version running on the platform (one or more replicas)."""

    #: URLs the router uses to reach the replicas.
    internal_urls: tuple[str, ...]
    #: URLs of the replicas from this machine (for monitoring every replica's prediction log).
    urls: tuple[str, ...]
    model_uri: str
    model_version: str | None
    handle: B

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (kept in the placement handle)."""
        return {"internal_urls": list(self.internal_urls), "urls": list(self.urls), "model_uri": self.model_uri,
                "model_version": self.model_version, "handle": self.handle.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], read: Callable[[Mapping[str, Any]], B]) -> Backend[B]:
        """Inverse of :meth:`to_dict`; ``read`` reads the platform's handle."""
        return cls(tuple(data["internal_urls"]), tuple(data["urls"]), str(data["model_uri"]),
                   data.get("model_version"), read(data.get("handle") or {}))


@dataclass(frozen=True)
class RoutedHandle(Generic[B, R]):
    """The handle of a routed deployment: its router, the router's admin token, and the backends."""

    router: R
    #: The bearer token of the router's admin route (``PUT /workbench/router``).
    token: str
    champion: Backend[B]
    challenger: Backend[B] | None = None
    #: How traffic is shared while there is a challenger.
    policy: TrafficPolicy | None = None

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """Direct URLs of the champion's servers (each keeps its own prediction log)."""
        return self.champion.urls

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the same keys as before the handle was typed)."""
        return {
            "router": self.router.to_dict(),
            "token": self.token,
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "policy": self.policy.to_dict() if self.policy and self.challenger else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], read_backend: Callable[[Mapping[str, Any]], B],
                  read_router: Callable[[Mapping[str, Any]], R]) -> RoutedHandle[B, R]:
        """Inverse of :meth:`to_dict`; a record this version cannot read is a clear error."""
        try:
            policy = data.get("policy")
            return cls(
                router=read_router(data["router"]),
                token=str(data["token"]),
                champion=Backend.from_dict(data["champion"], read_backend),
                challenger=Backend.from_dict(data["challenger"], read_backend) if data.get("challenger") else None,
                policy=TrafficPolicy.from_dict(policy) if policy else None,
            )
        except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
            raise WorkbenchError(f"the deployment record is not one this version understands: {exc}") from exc


class RoutedTarget(ABC, Generic[B, R]):
    """Target + SupportsChallenger for platforms where a router fronts the model servers.

    ``read_backend`` and ``read_router`` read the platform's own handles back from a record.
    """

    #: The backends' URLs name DNS records with one address per replica, which the router resolves
    #: (a cluster's service discovery) instead of fixed addresses.
    discover_replicas: bool = False
    #: Every server writes one shared log store, so any of them records feedback for any request.
    shared_log: bool = False

    def __init__(self, uri: str, read_backend: Callable[[Mapping[str, Any]], B],
                 read_router: Callable[[Mapping[str, Any]], R]) -> None:
        self.uri = uri
        self._read_backend = read_backend
        self._read_router = read_router

    # -- what a platform provides ---------------------------------------------------------------

    @abstractmethod
    def check_options(self, options: Mapping[str, Any]) -> None:
        """Check the options given for this platform (see :meth:`Target.check_options`)."""

    @abstractmethod
    def start_backend(self, spec: DeploymentSpec, role: str, on_event: OnEvent | None) -> Backend[B]:
        """Start ``spec``'s model servers and return once they are ready; on failure remove them
        and raise. ``role`` is ``champion`` or ``challenger`` (for naming); ``on_event`` sees the
        image build's progress if the model is packaged first."""

    @abstractmethod
    def stop_backend(self, backend: Backend[B]) -> None:
        """Stop and remove a backend (prediction logs are kept)."""

    @abstractmethod
    def backend_status(self, backend: Backend[B]) -> TargetStatus:
        """Live state of a backend."""

    @abstractmethod
    def backend_logs(self, backend: Backend[B], tail: int) -> str:
        """The backend's server output."""

    @abstractmethod
    def start_router(self, spec: DeploymentSpec, table: RouteTable, token: str,
                     champion: Backend[B]) -> tuple[str, R]:
        """Start the router with ``table`` in front of ``champion``; returns its URL (the
        deployment's) and its handle."""

    @abstractmethod
    def stop_router(self, handle: R) -> None:
        """Stop and remove the router."""

    @abstractmethod
    def router_alive(self, handle: R) -> bool:
        """Whether the router is still there (its process or container)."""

    # -- Target ---------------------------------------------------------------------------------

    def read_handle(self, data: Mapping[str, Any]) -> RoutedHandle[B, R]:
        """The handle of a placement, read back from its record."""
        return RoutedHandle.from_dict(data, self._read_backend, self._read_router)

    def deploy(self, spec: DeploymentSpec, *, on_event: OnEvent | None = None) -> Placement[RoutedHandle[B, R]]:
        """Start the champion backend, then the router in front of it."""
        champion = self.start_backend(spec, "champion", on_event)
        token = secrets.token_urlsafe(24)
        try:
            url, router = self.start_router(spec, self._table(champion, None, None), token, champion)
        except BaseException:
            self.stop_backend(champion)
            raise
        return self._placement(url, RoutedHandle(router, token, champion))

    def update(self, current: Placement[RoutedHandle[B, R]], spec: DeploymentSpec, *,
               on_event: OnEvent | None = None) -> Placement[RoutedHandle[B, R]]:
        """Start the new version, switch the router to it, stop the old one (and any challenger)."""
        state = current.handle
        new = self.start_backend(spec, "champion", on_event)
        try:
            self._route(current, self._table(new, None, None))
        except BaseException:
            self.stop_backend(new)
            raise
        self.stop_backend(state.champion)
        if state.challenger is not None:
            self.stop_backend(state.challenger)
        return self._placement(current.url, RoutedHandle(state.router, state.token, new))

    def status(self, placement: Placement[RoutedHandle[B, R]]) -> TargetStatus:
        """The router's readiness (as clients see it) and the champion backend's state."""
        state = placement.handle
        if not self.router_alive(state.router):
            return TargetStatus("gone", False, "the router is no longer running")
        backend = self.backend_status(state.champion)
        if backend.state in ("gone", "exited"):
            return TargetStatus(backend.state, False, f"model server: {backend.detail}")
        ready = probe_ready(placement.url)
        detail = backend.detail + (f"; challenger {state.challenger.model_version}" if state.challenger else "")
        return TargetStatus("running" if ready else "unhealthy", ready, detail)

    def logs(self, placement: Placement[RoutedHandle[B, R]], tail: int = 100) -> str:
        """The champion backend's server output (and the challenger's, when there is one)."""
        state = placement.handle
        text = self.backend_logs(state.champion, tail)
        if state.challenger is not None:
            text += "\n--- challenger ---\n" + self.backend_logs(state.challenger, tail)
        return text

    def delete(self, placement: Placement[RoutedHandle[B, R]]) -> None:
        """Stop the router, then every backend."""
        state = placement.handle
        self.stop_router(state.router)
        for backend in (state.champion, state.challenger):
            if backend is not None:
                self.stop_backend(backend)

    # -- SupportsChallenger ---------------------------------------------------------------------

    def start_challenger(self, current: Placement[RoutedHandle[B, R]], spec: DeploymentSpec, policy: TrafficPolicy,
                         *, on_event: OnEvent | None = None) -> Placement[RoutedHandle[B, R]]:
        """Start ``spec`` as the challenger and route by ``policy`` (replacing any challenger)."""
        state = current.handle
        challenger = self.start_backend(spec, "challenger", on_event)
        try:
            self._route(current, self._table(state.champion, challenger, policy))
        except BaseException:
            self.stop_backend(challenger)
            raise
        if state.challenger is not None:
            self.stop_backend(state.challenger)
        return self._placement(current.url, replace(state, challenger=challenger, policy=policy))

    def set_policy(self, placement: Placement[RoutedHandle[B, R]],
                   policy: TrafficPolicy) -> Placement[RoutedHandle[B, R]]:
        """Change the split or switch between split and shadow."""
        state = placement.handle
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger: start one first")
        self._route(placement, self._table(state.champion, state.challenger, policy))
        return self._placement(placement.url, replace(state, policy=policy))

    def promote(self, placement: Placement[RoutedHandle[B, R]]) -> Placement[RoutedHandle[B, R]]:
        """The challenger becomes the champion; the old champion is stopped."""
        state = placement.handle
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to promote")
        self._route(placement, self._table(state.challenger, None, None))
        self.stop_backend(state.champion)
        return self._placement(placement.url, RoutedHandle(state.router, state.token, state.challenger))

    def abort(self, placement: Placement[RoutedHandle[B, R]]) -> Placement[RoutedHandle[B, R]]:
        """The challenger is stopped; the champion takes all traffic."""
        state = placement.handle
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to abort")
        self._route(placement, self._table(state.champion, None, None))
        self.stop_backend(state.challenger)
        return self._placement(placement.url, RoutedHandle(state.router, state.token, state.champion))

    # -- helpers --------------------------------------------------------------------------------

    def _table(self, champion: Backend[B], challenger: Backend[B] | None, policy: TrafficPolicy | None) -> RouteTable:
        bandit = policy is not None and policy.mode == "bandit"
        return RouteTable(
            champion=champion.internal_urls,
            challenger=challenger.internal_urls if challenger else (),
            mode=policy.mode if policy else "split",
            challenger_share=policy.challenger_share if policy and challenger and not bandit else 0.0,
            champion_version=champion.model_version or "",
            challenger_version=(challenger.model_version or "") if challenger else "",
            strategy=(policy.strategy or "thompson") if policy and bandit else "thompson",
            epsilon=(policy.epsilon or 0.1) if policy and bandit else 0.1,
            discover=self.discover_replicas,
            shared_log=self.shared_log,
        )

    def _route(self, placement: Placement[RoutedHandle[B, R]], table: RouteTable) -> None:
        """Point the router at ``table`` (through its admin route)."""
        url = placement.url
        try:
            response = httpx.put(f"{url}/workbench/router", json=table.to_dict(),
                                 headers={"authorization": f"Bearer {placement.handle.token}"}, timeout=30)
        except httpx.HTTPError as exc:
            raise DeploymentError(f"the deployment's router at {url} does not answer ({exc}); "
                                  "check `workbench deployments` and restart it with `workbench update`") from exc
        if response.status_code != 200:
            raise DeploymentError(f"the router refused the new routes: {response.text}")

    def log_sources(self, champion: Backend[B], challenger: Backend[B] | None) -> tuple[str, ...]:
        """URLs that together return every logged prediction once. Here every server of a
        deployment writes the same log file, so one server's route returns all of it."""
        return champion.urls[:1]

    def _placement(self, url: str, handle: RoutedHandle[B, R]) -> Placement[RoutedHandle[B, R]]:
        return Placement(url, handle, self.log_sources(handle.champion, handle.challenger))
