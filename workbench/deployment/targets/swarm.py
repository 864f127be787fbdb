"""The ``swarm`` target: Docker Swarm services, replicas behind the deployment's router.

A deployment is a service of model-server replicas plus a router service, all on the engine's host
network (the swarm's ingress routing mesh needs iptables, which engines started with
``--iptables=false`` do not have). Replica *n* of a service listens on ``127.0.0.1:<prefix><n>``, a
port the target picks free (so at most 9 replicas), and logs predictions to its own volume
``<service>-predictions-<n>``: monitoring pulls every replica's log.

Updates use the swarm's rolling update: one replica at a time, each gated by the image's
HEALTHCHECK, rolled back automatically when a new replica fails; the router keeps sending traffic
to the replicas that answer. The engine must be a swarm manager (``docker swarm init``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from workbench._docker import docker_client
from workbench.config import get_settings
from workbench.deployment.base import (
    DeploymentSpec,
    OnEvent,
    Placement,
    TargetStatus,
    check_known_options,
    probe_ready,
    wait_until_ready,
)
from workbench.deployment.targets.docker import DockerOptions, model_image, server_environment
from workbench.deployment.catalog import TargetInfo, describe_options
from workbench.deployment.routed import Backend, RoutedHandle, RoutedTarget
from workbench.errors import DeploymentError, EngineUnavailableError, HealthCheckError, InvalidInputError
from workbench.packaging.context import LOG_DIR, USER_ID
from workbench.routing.router import RouteTable
from workbench.serving.command import PROGRAM, route_args

__all__ = ["ModelService", "RouterService", "SwarmOptions", "SwarmTarget"]

_LABEL = "io.workbench.deployment"
_ROUTER_DIR = "/etc/workbench-router"
_MAX_REPLICAS = 9


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-.") or "model"


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_prefix(replicas: int) -> int:
    """A prefix P such that ports P1 .. P<replicas> (10 * P + slot) are all free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            prefix = s.getsockname()[1] // 10
        if 1000 <= prefix <= 6552 and all(_free(prefix * 10 + slot) for slot in range(1, replicas + 1)):
            return prefix
    raise DeploymentError("no block of free ports for the replicas was found on 127.0.0.1")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass(frozen=True)
class SwarmOptions(DockerOptions):
    """The options of the ``swarm`` target: the ``docker`` target's, and ``replicas``."""

    #: Model-server replicas per version (1 to 9).
    replicas: int = 2

    @classmethod
    def from_options(cls, options: Mapping[str, Any], target: str = "swarm") -> SwarmOptions:
        """Check ``options`` (as given to ``wb.deploy``) and read them."""
        check_known_options(target, options, cls.__dataclass_fields__)
        replicas = int(options.get("replicas") or cls.replicas)
        if not 1 <= replicas <= _MAX_REPLICAS:
            raise InvalidInputError(f"the swarm target runs 1 to {_MAX_REPLICAS} replicas, not {replicas}")
        docker = DockerOptions.from_options({k: v for k, v in options.items() if k != "replicas"}, target)
        return cls(image=docker.image, port=docker.port, base_image=docker.base_image, explain=docker.explain,
                   replicas=replicas)


@dataclass(frozen=True)
class ModelService:
    """The service of a model version's replicas."""

    service: str
    service_id: str
    image: str
    replicas: int
    #: Replica n listens on port ``<port_prefix><n>`` of 127.0.0.1.
    port_prefix: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"service": self.service, "service_id": self.service_id, "image": self.image,
                "replicas": self.replicas, "port_prefix": self.port_prefix}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelService:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["service"]), str(data["service_id"]), str(data["image"]), int(data["replicas"]),
                   int(data["port_prefix"]))


@dataclass(frozen=True)
class RouterService:
    """A deployment's one-replica router service."""

    service: str
    service_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"service": self.service, "service_id": self.service_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterService:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["service"]), str(data["service_id"]))


class SwarmTarget(RoutedTarget[ModelService, RouterService]):
    """Runs model images as Docker Swarm services on the local engine."""

    def __init__(self, uri: str = "swarm") -> None:
        super().__init__(uri, ModelService.from_dict, RouterService.from_dict)

    @classmethod
    def describe(cls) -> TargetInfo:
        """The ``swarm`` target, for the listing of installed targets."""
        return TargetInfo(
            name="swarm", uri="swarm", cluster=True,
            summary="model services with replicas behind a router service on a Docker Swarm",
            description=("Needs an engine that is a swarm manager (`docker swarm init`). Packages the model "
                         "into an image first unless `image` names one."),
            options=describe_options(SwarmOptions))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """The ``docker`` target's options and ``replicas``; anything else is an error naming them."""
        SwarmOptions.from_options(options)

    def _client(self) -> Any:
        client = docker_client()
        swarm = client.info().get("Swarm", {})
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise EngineUnavailableError(
                "this Docker engine is not a swarm manager: make it one with "
                "`docker swarm init --advertise-addr 127.0.0.1` (a one-node swarm), or point DOCKER_HOST "
                "at a manager of your swarm"
            )
        return client

    # -- model servers --------------------------------------------------------------------------

    def start_backend(self, spec: DeploymentSpec, role: str, on_event: OnEvent | None) -> Backend[ModelService]:
        """A replicated service of the model image; returns once every replica answers."""
        from docker.types import EndpointSpec, Mount, RestartPolicy, RollbackConfig, ServiceMode, UpdateConfig

        options = SwarmOptions.from_options(spec.options)
        client = self._client()
        replicas = options.replicas
        image = model_image(spec, options, client, on_event)
        prefix = _port_prefix(replicas)
        name = f"workbench-{_slug(spec.name)}-{role}-r{spec.revision}"
        env = {**server_environment(get_settings()), "WORKBENCH_HOST": "127.0.0.1"}
        service = client.services.create(
            image,
            name=name,
            env=[f"{k}={v}" for k, v in env.items()] + [f"WORKBENCH_PORT={prefix}{{{{.Task.Slot}}}}"],
            networks=["host"],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            mode=ServiceMode("replicated", replicas=replicas),
            mounts=[Mount(LOG_DIR, f"{name}-predictions-{{{{.Task.Slot}}}}", type="volume")],
            update_config=UpdateConfig(parallelism=1, delay=_ns(1), failure_action="rollback", monitor=_ns(10),
                                       max_failure_ratio=0.0, order="stop-first"),
            rollback_config=RollbackConfig(parallelism=1, delay=_ns(1), order="stop-first"),
            restart_policy=RestartPolicy(condition="on-failure", delay=_ns(2), max_attempts=3),
            init=True,
            labels={_LABEL: spec.name, "io.workbench.role": role},
            container_labels={_LABEL: spec.name},
        )
        urls = tuple(f"http://127.0.0.1:{prefix}{slot}" for slot in range(1, replicas + 1))
        try:
            for url in urls:
                wait_until_ready(url, get_settings().health_timeout, describe=f"service {name}",
                                 still_starting=lambda: _task_failure(service))
        except HealthCheckError:
            service.remove()
            raise
        return Backend(urls, urls, spec.model_uri, spec.model_version,
                       ModelService(name, service.id, image, replicas, prefix))

    def stop_backend(self, backend: Backend[ModelService]) -> None:
        """Remove the service (its tasks get SIGTERM and finish in-flight requests)."""
        import docker.errors

        try:
            self._client().services.get(backend.handle.service_id).remove()
        except docker.errors.NotFound:
            return
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and any(probe_ready(u, timeout=0.5) for u in backend.urls):
            time.sleep(0.3)

    def backend_status(self, backend: Backend[ModelService]) -> TargetStatus:
        """Replicas running and answering."""
        import docker.errors

        try:
            service = docker_client().services.get(backend.handle.service_id)
        except docker.errors.NotFound:
            return TargetStatus("gone", False, "the service was removed")
        ready = sum(probe_ready(u) for u in backend.urls)
        wanted = len(backend.urls)
        detail = f"service {service.name}: {ready}/{wanted} replicas ready"
        if ready == wanted:
            return TargetStatus("running", True, detail)
        return TargetStatus("unhealthy", False, detail)

    def backend_logs(self, backend: Backend[ModelService], tail: int) -> str:
        """The output of every replica of the service."""
        import docker.errors

        try:
            service = docker_client().services.get(backend.handle.service_id)
        except docker.errors.NotFound:
            return "(the service was removed)"
        return b"".join(service.logs(stdout=True, stderr=True, tail=tail, timestamps=False)).decode(errors="replace")

    def log_sources(self, champion: Backend[ModelService],
                    challenger: Backend[ModelService] | None) -> tuple[str, ...]:
        """Every replica of both versions: each keeps its own log."""
        return champion.urls + (challenger.urls if challenger else ())

    # -- the router -----------------------------------------------------------------------------

    def start_router(self, spec: DeploymentSpec, table: RouteTable, token: str,
                     champion: Backend[ModelService]) -> tuple[str, RouterService]:
        """A one-replica router service on the manager, on the deployment's port."""
        from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

        client = self._client()
        port = SwarmOptions.from_options(spec.options).port or _port_prefix(1) * 10 + 1
        folder = spec.workdir / "router"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "router.json"
        config.write_text(json.dumps({"table": table.to_dict(), "token": token}))
        if os.geteuid() == 0:  # the router runs as the image's non-root user and rewrites the file
            os.chown(folder, USER_ID, USER_ID)
            os.chown(config, USER_ID, USER_ID)
        config.chmod(0o600)
        name = f"workbench-{_slug(spec.name)}-router"
        service = client.services.create(
            champion.handle.image,
            command=[*PROGRAM, *route_args(f"{_ROUTER_DIR}/router.json")],
            name=name,
            env=["WORKBENCH_HOST=127.0.0.1", f"WORKBENCH_PORT={port}"],
            networks=["host"],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            mode=ServiceMode("replicated", replicas=1),
            mounts=[Mount(_ROUTER_DIR, str(folder), type="bind")],
            constraints=["node.role==manager"],  # where the route table's folder is
            restart_policy=RestartPolicy(condition="any", delay=_ns(1)),
            init=True,
            labels={_LABEL: spec.name, "io.workbench.role": "router"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, get_settings().health_timeout, describe=f"router service {name}",
                             still_starting=lambda: _task_failure(service))
        except HealthCheckError:
            service.remove()
            raise
        return url, RouterService(name, service.id)

    def stop_router(self, handle: RouterService) -> None:
        """Remove the router service."""
        import docker.errors

        try:
            self._client().services.get(handle.service_id).remove()
        except docker.errors.NotFound:
            pass

    def router_alive(self, handle: RouterService) -> bool:
        """The router service still exists."""
        import docker.errors

        try:
            docker_client().services.get(handle.service_id)
        except docker.errors.NotFound:
            return False
        return True

    # -- native rolling update ------------------------------------------------------------------

    def update(self, current: Placement[RoutedHandle[ModelService, RouterService]], spec: DeploymentSpec, *,
               on_event: OnEvent | None = None) -> Placement[RoutedHandle[ModelService, RouterService]]:
        """A rolling update of the champion's service: replica by replica, each health-checked; if a
        new replica fails, the swarm rolls back and the old version keeps serving."""
        state = current.handle
        client = self._client()
        service = client.services.get(state.champion.handle.service_id)
        image = model_image(spec, SwarmOptions.from_options(spec.options), client, on_event)
        service.update(image=image, force_update=True)
        outcome = _await_update(service, get_settings().health_timeout + 60 * len(state.champion.urls))
        if outcome != "completed":
            raise HealthCheckError(
                f"the rolling update to {spec.model_uri} failed its health checks ({outcome}); the swarm rolled "
                f"service {service.name} back to {state.champion.model_uri}, which keeps serving"
            )
        champion = Backend(state.champion.internal_urls, state.champion.urls, spec.model_uri, spec.model_version,
                           replace(state.champion.handle, image=image))
        for url in champion.urls:  # every replica back and ready
            wait_until_ready(url, get_settings().health_timeout, describe=f"service {service.name}")
        self._route(current, self._table(champion, None, None))
        if state.challenger is not None:
            self.stop_backend(state.challenger)
        return self._placement(current.url, RoutedHandle(state.router, state.token, champion))


def _await_update(service: Any, timeout: float) -> str:
    """Wait for a service update to end: ``completed``, or how it failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.reload()
        status = service.attrs.get("UpdateStatus") or {}
        state = status.get("State", "")
        if state in ("completed", "rollback_completed", "paused", "rollback_paused"):
            return str(state if state == "completed" else f"{state}: {status.get('Message', '')}")
        time.sleep(1)
    return "timed out"


def _task_failure(service: Any) -> str | None:
    """A message when the service's tasks keep failing (so waiting stops early)."""
    failed = [t for t in service.tasks() if t.get("Status", {}).get("State") in ("failed", "rejected")]
    if len(failed) >= 3:
        status = failed[-1]["Status"]
        return f"{status.get('State')}: {status.get('Err') or status.get('Message')}"
    return None
