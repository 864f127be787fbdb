"""Targets whose deployments are a router in front of model servers (local, docker, swarm).

The router (:mod:`workbench.serving.router`) holds the deployment's address for its whole life.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from workbench.deployment.base import DeploymentSpec, OnEvent, Placement, TargetStatus, TrafficPolicy, probe_ready
from workbench.errors import DeploymentError, WorkbenchError
from workbench.serving.router import RouteTable

__all__ = ["Backend", "RoutedTarget"]


@dataclass(frozen=True)
class Backend:
    """One model version running on the platform (one or more replicas)."""

    #: URLs the router uses to reach the replicas.
    internal_urls: tuple[str, ...]
    #: URLs of the replicas from this machine (for monitoring every replica's prediction log).
    urls: tuple[str, ...]
    model_uri: str
    model_version: str | None
    handle: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (kept in the placement handle)."""
        return {"internal_urls": list(self.internal_urls), "urls": list(self.urls), "model_uri": self.model_uri,
                "model_version": self.model_version, "handle": dict(self.handle)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Backend:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["internal_urls"]), tuple(data["urls"]), data["model_uri"],
                   data.get("model_version"), dict(data.get("handle", {})))


class RoutedTarget(ABC):
    """Target + SupportsChallenger for platforms where a router fronts the model servers."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    # -- what a platform provides ---------------------------------------------------------------

    @abstractmethod
    def start_backend(self, spec: DeploymentSpec, role: str, on_event: OnEvent | None) -> Backend:
        """Start ``spec``'s model servers and return once they are ready; on failure remove them
        and raise. ``role`` is ``champion`` or ``challenger`` (for naming); ``on_event`` sees the
        image build's progress if the model is packaged first."""

    @abstractmethod
    def stop_backend(self, backend: Backend) -> None:
        """Stop and remove a backend (prediction logs are kept)."""

    @abstractmethod
    def backend_status(self, backend: Backend) -> TargetStatus:
        """Live state of a backend."""

    @abstractmethod
    def backend_logs(self, backend: Backend, tail: int) -> str:
        """The backend's server output."""

    @abstractmethod
    def start_router(self, spec: DeploymentSpec, table: RouteTable, token: str,
                     champion: Backend) -> tuple[str, Mapping[str, Any]]:
        """Start the router with ``table`` in front of ``champion``; returns its URL (the
        deployment's) and its handle."""

    @abstractmethod
    def stop_router(self, handle: Mapping[str, Any]) -> None:
        """Stop and remove the router."""

    @abstractmethod
    def router_alive(self, handle: Mapping[str, Any]) -> bool:
        """Whether the router is still there (its process or container)."""

    # -- Target ---------------------------------------------------------------------------------

    def deploy(self, spec: DeploymentSpec, *, on_event: OnEvent | None = None) -> Placement:
        """Start the champion backend, then the router in front of it."""
        champion = self.start_backend(spec, "champion", on_event)
        token = secrets.token_urlsafe(24)
        try:
            url, router = self.start_router(spec, self._table(champion, None, None), token, champion)
        except BaseException:
            self.stop_backend(champion)
            raise
        return self._placement(url, router, token, champion, None, None)

    def update(self, current: Placement, spec: DeploymentSpec, *, on_event: OnEvent | None = None) -> Placement:
        """Start the new version, switch the router to it, stop the old one (and any challenger)."""
        state = _State.of(current)
        new = self.start_backend(spec, "champion", on_event)
        try:
            self._route(state, self._table(new, None, None))
        except BaseException:
            self.stop_backend(new)
            raise
        self.stop_backend(state.champion)
        if state.challenger is not None:
            self.stop_backend(state.challenger)
        return self._placement(current.url, state.router, state.token, new, None, None)

    def status(self, placement: Placement) -> TargetStatus:
        """The router's readiness (as clients see it) and the champion backend's state."""
        state = _State.of(placement)
        if not self.router_alive(state.router):
            return TargetStatus("gone", False, "the router is no longer running")
        backend = self.backend_status(state.champion)
        if backend.state in ("gone", "exited"):
            return TargetStatus(backend.state, False, f"model server: {backend.detail}")
        ready = probe_ready(placement.url)
        detail = backend.detail + (f"; challenger {state.challenger.model_version}" if state.challenger else "")
        return TargetStatus("running" if ready else "unhealthy", ready, detail)

    def logs(self, placement: Placement, tail: int = 100) -> str:
        """The champion backend's server output (and the challenger's, when there is one)."""
        state = _State.of(placement)
        text = self.backend_logs(state.champion, tail)
        if state.challenger is not None:
            text += "\n--- challenger ---\n" + self.backend_logs(state.challenger, tail)
        return text

    def delete(self, placement: Placement) -> None:
        """Stop the router, then every backend."""
        state = _State.of(placement)
        self.stop_router(state.router)
        for backend in (state.champion, state.challenger):
            if backend is not None:
                self.stop_backend(backend)

    # -- SupportsChallenger ---------------------------------------------------------------------

    def start_challenger(self, current: Placement, spec: DeploymentSpec, policy: TrafficPolicy, *,
                         on_event: OnEvent | None = None) -> Placement:
        """Start ``spec`` as the challenger and route by ``policy`` (replacing any challenger)."""
        state = _State.of(current)
        challenger = self.start_backend(spec, "challenger", on_event)
        try:
            self._route(state, self._table(state.champion, challenger, policy))
        except BaseException:
            self.stop_backend(challenger)
            raise
        if state.challenger is not None:
            self.stop_backend(state.challenger)
        return self._placement(current.url, state.router, state.token, state.champion, challenger, policy)

    def set_policy(self, placement: Placement, policy: TrafficPolicy) -> Placement:
        """Change the split or switch between split and shadow."""
        state = _State.of(placement)
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger: start one first")
        self._route(state, self._table(state.champion, state.challenger, policy))
        return self._placement(placement.url, state.router, state.token, state.champion, state.challenger, policy)

    def promote(self, placement: Placement) -> Placement:
        """The challenger becomes the champion; the old champion is stopped."""
        state = _State.of(placement)
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to promote")
        self._route(state, self._table(state.challenger, None, None))
        self.stop_backend(state.champion)
        return self._placement(placement.url, state.router, state.token, state.challenger, None, None)

    def abort(self, placement: Placement) -> Placement:
        """The challenger is stopped; the champion takes all traffic."""
        state = _State.of(placement)
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to abort")
        self._route(state, self._table(state.champion, None, None))
        self.stop_backend(state.challenger)
        return self._placement(placement.url, state.router, state.token, state.champion, None, None)

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _table(champion: Backend, challenger: Backend | None, policy: TrafficPolicy | None) -> RouteTable:
        return RouteTable(
            champion=champion.internal_urls,
            challenger=challenger.internal_urls if challenger else (),
            mode=policy.mode if policy else "split",
            challenger_share=policy.challenger_share if policy and challenger else 0.0,
            champion_version=champion.model_version or "",
            challenger_version=(challenger.model_version or "") if challenger else "",
        )

    def _route(self, state: _State, table: RouteTable) -> None:
        """Point the router at ``table`` (through its admin route)."""
        try:
            response = httpx.put(f"{state.url}/workbench/router", json=table.to_dict(),
                                 headers={"authorization": f"Bearer {state.token}"}, timeout=30)
        except httpx.HTTPError as exc:
            raise DeploymentError(f"the deployment's router at {state.url} does not answer ({exc}); "
                                  "check `workbench deployments` and restart it with `workbench update`") from exc
        if response.status_code != 200:
            raise DeploymentError(f"the router refused the new routes: {response.text}")

    def log_sources(self, champion: Backend, challenger: Backend | None) -> tuple[str, ...]:
        """URLs that together return every logged prediction once. Here every server of a
        deployment writes the same log file, so one server's route returns all of it."""
        return champion.urls[:1]

    def _placement(self, url: str, router: Mapping[str, Any], token: str, champion: Backend,
                   challenger: Backend | None, policy: TrafficPolicy | None) -> Placement:
        return Placement(url=url, handle={
            "log_sources": list(self.log_sources(champion, challenger)),
            "router": dict(router),
            "token": token,
            "champion": champion.to_dict(),
            "challenger": challenger.to_dict() if challenger else None,
            "policy": policy.to_dict() if policy and challenger else None,
        })


@dataclass(frozen=True)
class _State:
    url: str
    router: Mapping[str, Any]
    token: str
    champion: Backend
    challenger: Backend | None

    @classmethod
    def of(cls, placement: Placement) -> _State:
        h = placement.handle
        try:
            return cls(
                url=placement.url,
                router=h["router"],
                token=str(h["token"]),
                champion=Backend.from_dict(h["champion"]),
                challenger=Backend.from_dict(h["challenger"]) if h.get("challenger") else None,
            )
        except (KeyError, TypeError) as exc:
            raise WorkbenchError(f"the deployment record is not one this version understands: {exc}") from exc
