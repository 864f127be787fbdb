"""The deployment target interface, and how targets are found.

A target runs model servers somewhere. The interface is small; everything shared (records, health
checks, rollback, the CLI) lives in :mod:`workbench.deployment.manager` and works for every target.

Targets are chosen by URI (``local``, ``docker``, ``k8s://context/namespace``, ``swarm``) and found
through the ``workbench.targets`` entry-point group, loaded only when used, so other packages can
add targets::

    [project.entry-points."workbench.targets"]
    mycloud = "mypackage.targets:MyCloudTarget"    # MyCloudTarget(uri) implements Target
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import httpx

from workbench.errors import ConfigurationError, HealthCheckError, InvalidInputError

if TYPE_CHECKING:
    from workbench.packaging import BuildEvent

__all__ = [
    "DeploymentSpec",
    "OnEvent",
    "Placement",
    "SupportsChallenger",
    "Target",
    "TargetStatus",
    "TrafficPolicy",
    "load_target",
    "target_scheme",
    "wait_until_ready",
]

State = Literal["starting", "running", "unhealthy", "exited", "gone"]
#: A progress callback: sees every image build event (:class:`~workbench.packaging.BuildEvent`) while a
#: target packages the model. Passed to ``deploy``/``update``/``start_challenger``, never stored.
OnEvent = Callable[["BuildEvent"], None]


@dataclass(frozen=True)
class DeploymentSpec:
    """What to run: one model version under a deployment name."""

    name: str
    #: The exact version to serve (``models:/churn/3``), resolved from what the user asked for.
    model_uri: str
    model_name: str
    model_version: str | None
    #: Increases by one with every deploy, update and rollback of this name.
    revision: int
    #: Folder for prediction logs and process logs of targets that run on this machine.
    workdir: Path
    #: Target-specific options (``port``, ``image``, ``replicas``, ...), as given by the user.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """Where a deployment runs: its URL and what the target needs to find it again."""

    url: str
    handle: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the deployment record)."""
        return {"url": self.url, "handle": dict(self.handle)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Placement:
        """Inverse of :meth:`to_dict`."""
        return cls(url=str(data["url"]), handle=MappingProxyType(dict(data.get("handle", {}))))


@dataclass(frozen=True)
class TargetStatus:
    """What the target reports about a placement right now."""

    state: State
    healthy: bool
    detail: str = ""


@runtime_checkable
class Target(Protocol):
    """Runs model servers. ``deploy`` and ``update`` return only once the server is ready."""

    def deploy(self, spec: DeploymentSpec, *, on_event: OnEvent | None = None) -> Placement:
        """Start serving ``spec``; raise (leaving nothing behind) if it never becomes ready.
        ``on_event`` sees the image build's progress when the target packages the model."""
        ...

    def update(self, current: Placement, spec: DeploymentSpec, *, on_event: OnEvent | None = None) -> Placement:
        """Serve ``spec`` instead of ``current``. If the new server never becomes ready, ``current``
        must still be serving when this raises."""
        ...

    def status(self, placement: Placement) -> TargetStatus:
        """The state of a placement, checked live (a server removed behind our back is ``gone``)."""
        ...

    def logs(self, placement: Placement, tail: int = 100) -> str:
        """The server's own output (not the prediction log)."""
        ...

    def delete(self, placement: Placement) -> None:
        """Stop serving and remove what ``deploy`` created (prediction logs are kept)."""
        ...


@dataclass(frozen=True)
class TrafficPolicy:
    """How requests are shared between a deployment's champion and its challenger.

    - ``split``: each request goes to the challenger with probability ``challenger_share``;
    - ``shadow``: every request goes to the champion, which answers; a copy goes to the challenger,
      whose answer is logged and never returned.
    """

    mode: Literal["split", "shadow"] = "split"
    challenger_share: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in ("split", "shadow"):
            raise InvalidInputError(f"traffic mode must be 'split' or 'shadow', not {self.mode!r}")
        if not 0.0 <= self.challenger_share <= 1.0:
            raise InvalidInputError(f"challenger_share must be between 0 and 1, not {self.challenger_share}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"mode": self.mode, "challenger_share": self.challenger_share}


@runtime_checkable
class SupportsChallenger(Protocol):
    """An optional ability of a target: serve a challenger beside the champion under one name.

    The deployment's URL stays the champion's front door throughout; ``promote`` and ``abort`` leave
    exactly one version serving.
    """

    def start_challenger(self, current: Placement, spec: DeploymentSpec, policy: TrafficPolicy, *,
                         on_event: OnEvent | None = None) -> Placement:
        """Run ``spec`` beside the champion at ``current`` and route by ``policy``; returns the
        placement of both (the handle keeps the champion's under ``"champion"``, the challenger's
        under ``"challenger"``). Raises, leaving the champion untouched, if the challenger never
        becomes ready."""
        ...

    def set_policy(self, placement: Placement, policy: TrafficPolicy) -> Placement:
        """Change how traffic is shared, without restarting either version."""
        ...

    def promote(self, placement: Placement) -> Placement:
        """The challenger takes all traffic and becomes the only version; the champion is removed."""
        ...

    def abort(self, placement: Placement) -> Placement:
        """The challenger is removed; the champion takes all traffic."""
        ...


def target_scheme(uri: str) -> str:
    """``docker`` for ``docker``/``docker:``/``docker://...``; ``k8s`` for ``k8s://ctx/ns``."""
    if not uri or not isinstance(uri, str):
        raise InvalidInputError("a deployment target is needed, such as 'local' or 'docker'")
    return uri.split(":", 1)[0].strip().lower()


def load_target(uri: str) -> Target:
    """The target for a URI, from the ``workbench.targets`` entry points (imported only now)."""
    scheme = target_scheme(uri)
    found = {ep.name: ep for ep in entry_points(group="workbench.targets")}
    if scheme not in found:
        raise InvalidInputError(
            f"unknown deployment target {uri!r}; available: {', '.join(sorted(found)) or 'none'}"
        )
    try:
        target_cls = found[scheme].load()
    except ImportError as exc:
        raise ConfigurationError(f"the {scheme!r} target cannot be loaded: {exc}") from exc
    target = target_cls(uri)
    if not isinstance(target, Target):
        raise ConfigurationError(f"{found[scheme].value} does not implement the Target interface")
    return target


def probe_ready(url: str, timeout: float = 2.0) -> bool:
    """True when the server at ``url`` answers ``/v2/health/ready`` with 200."""
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(
    url: str,
    timeout: float,
    *,
    still_starting: Any = None,
    describe: str = "the server",
) -> None:
    """Poll ``url`` until it is ready; ``still_starting()`` may return an error message to stop early.

    Raises :class:`HealthCheckError` with what was seen when time runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe_ready(url):
            return
        if still_starting is not None:
            problem = still_starting()
            if problem:
                raise HealthCheckError(f"{describe} stopped before it became ready: {problem}")
        time.sleep(0.25)
    raise HealthCheckError(
        f"{describe} was not ready at {url}/v2/health/ready within {timeout:.0f} s "
        "(raise WORKBENCH_HEALTH_TIMEOUT for slow models)"
    )
