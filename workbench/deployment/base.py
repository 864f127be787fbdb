"""The deployment target interface, and how targets are found.

A target runs model servers somewhere. The interface is small; everything shared (records, health
checks, rollback, the CLI) lives in :mod:`workbench.deployment.manager` and works for every target.

Targets are chosen by URI (``local``, ``docker``, ``k8s://context/namespace``, ``swarm``) and found
through the ``workbench.targets`` entry-point group, loaded only when used, so other packages can
add targets::

    [project.entry-points."workbench.targets"]
    mycloud = "mypackage.targets:MyCloudTarget"    # MyCloudTarget(uri) implements Target

A target checks its options when it is chosen (``check_options``), returns placements holding its own
typed, frozen handle (a :class:`TargetHandle`, stored as JSON in the deployment record and read back
by ``read_handle``), and takes progress callbacks as a keyword argument, never inside the options.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import httpx

from workbench.errors import ConfigurationError, HealthCheckError, InvalidInputError

if TYPE_CHECKING:
    from workbench.packaging import BuildEvent

__all__ = [
    "TARGET_GROUP",
    "DeploymentSpec",
    "OnEvent",
    "Placement",
    "SupportsChallenger",
    "Target",
    "TargetHandle",
    "TargetStatus",
    "TrafficPolicy",
    "check_known_options",
    "load_target",
    "option_flag",
    "option_int",
    "target_scheme",
    "wait_until_ready",
]

#: The entry-point group deployment targets are found in (``[project.entry-points."workbench.targets"]``).
TARGET_GROUP = "workbench.targets"

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
    #: Target-specific options (``port``, ``image``, ``replicas``, ...), as given by the user and
    #: stored with the deployment; each target reads them through its own typed options class
    #: (``LocalOptions``, ``DockerOptions``, ``SwarmOptions``, ``KubernetesOptions``).
    options: Mapping[str, Any] = field(default_factory=dict)


class TargetHandle(Protocol):
    """What a target keeps to find its servers again: a frozen dataclass per target, stored in the
    deployment record as JSON (:meth:`to_dict`) and read back by the target's ``read_handle``."""

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """Direct URLs of the champion's servers from this machine; empty when there are none."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        ...


#: The handle type of a placement (each target has its own).
H = TypeVar("H", bound=TargetHandle)


@dataclass(frozen=True)
class Placement(Generic[H]):
    """Where a deployment runs: its URL, the target's typed handle on it, and where its log is read."""

    url: str
    handle: H
    #: URLs that together return every prediction the deployment logged, each record once
    #: (empty: the deployment's URL).
    log_sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the deployment record)."""
        return {"url": self.url, "handle": self.handle.to_dict(), "log_sources": list(self.log_sources)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], read_handle: Callable[[Mapping[str, Any]], H]) -> Placement[H]:
        """Inverse of :meth:`to_dict`; ``read_handle`` is the target's (``target.read_handle``)."""
        handle = data.get("handle") or {}
        # Records written before log_sources was the placement's own kept it in the handle.
        sources = data.get("log_sources") or handle.get("log_sources") or ()
        return cls(url=str(data["url"]), handle=read_handle(handle), log_sources=tuple(str(u) for u in sources))


@dataclass(frozen=True)
class TargetStatus:
    """What the target reports about a placement right now."""

    state: State
    healthy: bool
    detail: str = ""


@runtime_checkable
class Target(Protocol):
    """Runs model servers. ``deploy`` and ``update`` return only once the server is ready.

    Each target has its own :class:`TargetHandle` type in the placements it returns and takes."""

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Check the options given for this target before anything starts: an unknown name or a
        bad value raises :class:`~workbench.errors.InvalidInputError` saying what is known."""
        ...

    def read_handle(self, data: Mapping[str, Any]) -> TargetHandle:
        """The handle this target wrote (its ``to_dict()``), read back from a deployment record;
        raises :class:`~workbench.errors.WorkbenchError` for a record it cannot read."""
        ...

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
      whose answer is logged and never returned;
    - ``bandit``: the router shares requests by the rewards fed back (``strategy`` ``thompson`` or
      ``epsilon_greedy`` with ``epsilon``; see :mod:`workbench.routing.bandit`), each version keeping
      a floor of traffic while it explores. ``challenger_share`` is not used.
    """

    mode: Literal["split", "shadow", "bandit"] = "split"
    challenger_share: float = 0.1
    strategy: Literal["thompson", "epsilon_greedy"] | None = None
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("split", "shadow", "bandit"):
            raise InvalidInputError(f"traffic mode must be 'split', 'shadow' or 'bandit', not {self.mode!r}")
        if not 0.0 <= self.challenger_share <= 1.0:
            raise InvalidInputError(f"challenger_share must be between 0 and 1, not {self.challenger_share}")
        if self.mode != "bandit":
            if self.strategy is not None or self.epsilon is not None:
                raise InvalidInputError(f"strategy and epsilon choose a bandit; the {self.mode} mode takes neither")
            return
        if self.strategy not in ("thompson", "epsilon_greedy"):
            raise InvalidInputError(f"a bandit's strategy is 'thompson' or 'epsilon_greedy', not {self.strategy!r}")
        if self.epsilon is not None and (self.strategy != "epsilon_greedy" or not 0.0 < self.epsilon <= 1.0):
            raise InvalidInputError(f"epsilon (above 0, at most 1) goes with the epsilon_greedy strategy only, "
                                    f"not {self.epsilon!r} with {self.strategy}")

    @classmethod
    def bandit(cls, strategy: str, epsilon: float | None = None) -> TrafficPolicy:
        """A ``bandit`` policy; epsilon-greedy explores 10 % of requests unless ``epsilon`` says."""
        if strategy == "epsilon_greedy" and epsilon is None:
            epsilon = 0.1
        return cls(mode="bandit", strategy=strategy, epsilon=epsilon)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (records written before bandits had only ``mode`` and ``challenger_share``;
        those keys alone still describe a split or shadow)."""
        data: dict[str, Any] = {"mode": self.mode, "challenger_share": self.challenger_share}
        if self.mode == "bandit":
            data["strategy"] = self.strategy
            if self.epsilon is not None:
                data["epsilon"] = self.epsilon
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficPolicy:
        """Inverse of :meth:`to_dict`, for records of any age; a bad one raises InvalidInputError."""
        try:
            epsilon = data.get("epsilon")
            return cls(mode=data.get("mode", "split"), challenger_share=float(data.get("challenger_share", 0.1)),
                       strategy=data.get("strategy"), epsilon=None if epsilon is None else float(epsilon))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a traffic policy: {exc}") from exc

    @classmethod
    def describe(cls, traffic: Mapping[str, Any] | None) -> str:
        """``shadow``, ``20% of requests`` or ``bandit (thompson)``: how a challenger shares traffic (a
        :meth:`to_dict`), in words; empty without a challenger."""
        if not traffic:
            return ""
        if traffic.get("mode") == "shadow":
            return "shadow: sees every request, answers none"
        if traffic.get("mode") == "bandit":
            strategy = str(traffic.get("strategy"))
            if traffic.get("epsilon") is not None:
                strategy += f", epsilon {float(traffic['epsilon']):g}"
            return f"bandit ({strategy}): shares follow the rewards fed back"
        return f"{float(traffic.get('challenger_share', 0)):.0%} of requests"


@runtime_checkable
class SupportsChallenger(Protocol):
    """An optional ability of a target: serve a challenger beside the champion under one name.

    The deployment's URL stays the champion's front door throughout; ``promote`` and ``abort`` leave
    exactly one version serving.
    """

    def start_challenger(self, current: Placement, spec: DeploymentSpec, policy: TrafficPolicy, *,
                         on_event: OnEvent | None = None) -> Placement:
        """Run ``spec`` beside the champion at ``current`` and route by ``policy``; returns the
        placement of both. Raises, leaving the champion untouched, if the challenger never
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


def check_known_options(target: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise :class:`InvalidInputError` naming the options ``target`` does not know, and those it does."""
    known = set(known)
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown option(s) for the {target} target: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def option_flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    """The option ``key`` as True or False (``default`` when absent)."""
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{key} is True or False, not {value!r}")
    return value


def option_int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """The option ``key`` as a whole number from ``low`` to ``high`` (``default`` when absent);
    digits in a string are accepted, as the CLI and stored records give them."""
    value = options.get(key)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or not low <= number <= high:
        raise InvalidInputError(f"{key} must be a whole number from {low} to {high}, not {value!r}")
    return number


def target_scheme(uri: str) -> str:
    """``docker`` for ``docker``/``docker:``/``docker://...``; ``k8s`` for ``k8s://ctx/ns``."""
    if not uri or not isinstance(uri, str):
        raise InvalidInputError("a deployment target is needed, such as 'local' or 'docker'")
    return uri.split(":", 1)[0].strip().lower()


def load_target(uri: str) -> Target:
    """The target for a URI, from the ``workbench.targets`` entry points (imported only now)."""
    scheme = target_scheme(uri)
    found = {ep.name: ep for ep in entry_points(group=TARGET_GROUP)}
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


@functools.cache
def _probe_client() -> httpx.Client:
    """One client for every probe: building one loads the system's CA certificates (about 20 ms)."""
    return httpx.Client()


def probe_ready(url: str, timeout: float = 2.0) -> bool:
    """True when the server at ``url`` answers ``/v2/health/ready`` with 200."""
    try:
        return _probe_client().get(f"{url}/v2/health/ready", timeout=timeout).status_code == 200
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
