"""The ``swarm`` target: Docker Swarm services spread over the swarm's nodes, behind the deployment's router.

A deployment is a service of model-server replicas and a one-replica router service, all on an
attachable overlay network (the ``network`` option, ``workbench`` by default) that spans every node.
The replicas are spread over the nodes; the router finds them by the swarm's DNS
(``tasks.SERVICE``, looked up every 2 s), however many there are and wherever they run, and publishes
the deployment's port on the manager it runs on (host mode: the ingress routing mesh needs iptables,
which engines started with ``--iptables=false`` lack). Nothing is reached on 127.0.0.1 but the router's
published port, and nothing is kept on a node's disk: every replica writes its predictions and feedback
to one shared log store (``WORKBENCH_LOG_URL``, PostgreSQL, reachable from every node), committed
before it answers and spooled inside the replica while the store is away; the monitor reads the store
with one query, not one page walk per replica.

Updates use the swarm's rolling update: one replica at a time, each gated by the image's
HEALTHCHECK, rolled back automatically when a new replica fails; the router keeps sending traffic
to the replicas that answer. The engine must be a swarm manager (``docker swarm init``), and every
node must be able to get the image: name one in a registry the nodes pull from (``image=``), or load it
on each node (``docker save IMAGE | docker -H NODE load``).
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
from urllib.parse import urlencode, urlsplit, urlunsplit

from workbench._docker import docker_client
from workbench.config import get_settings
from workbench.deployment.base import (
    DeploymentSpec,
    OnEvent,
    Placement,
    TargetStatus,
    check_known_options,
    option_int,
    wait_until_ready,
)
from workbench.deployment.catalog import TargetInfo, describe_options
from workbench.deployment.routed import Backend, RoutedHandle, RoutedTarget
from workbench.deployment.targets.docker import DockerOptions, model_image, server_environment
from workbench.errors import (
    ConfigurationError,
    DeploymentError,
    EngineUnavailableError,
    HealthCheckError,
    InvalidInputError,
)
from workbench.packaging.context import LOG_DIR, SERVER_PORT, USER_ID
from workbench.packaging.push import push_image, registry_tag
from workbench.routing.router import RouteTable
from workbench.serving.command import PROGRAM, route_args

__all__ = ["ModelService", "RouterService", "SwarmOptions", "SwarmTarget", "store_source"]

_LABEL = "io.workbench.deployment"
_ROUTER_DIR = "/etc/workbench-router"
_MAX_REPLICAS = 100
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-.") or "model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def store_source(log_url: str, deployment: str) -> str:
    """The log source of a deployment in the store ``log_url``, without the store's password (it is
    kept in a deployment record; readers take the password from ``WORKBENCH_LOG_URL``)."""
    parts = urlsplit(log_url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", "@", 1)
    query = urlencode([*((k, v) for k, v in (p.split("=", 1) for p in parts.query.split("&") if "=" in p)
                         if k != "deployment"), ("deployment", deployment)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True)
class SwarmOptions(DockerOptions):
    """The options of the ``swarm`` target: the ``docker`` target's, ``replicas`` and ``network``."""

    #: Model-server replicas per version (1 to 100), spread over the swarm's nodes.
    replicas: int = 2
    #: The attachable overlay network the replicas and the router share (created when missing).
    network: str = "workbench"
    #: A registry to package the model and push it to (``REGISTRY/PATH``); the services name the
    #: pushed digest, so every node pulls the same image. Without it and without ``image``, the model
    #: is packaged on this engine only (enough for a one-node swarm).
    registry: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], target: str = "swarm") -> SwarmOptions:
        """Check ``options`` (as given to ``wb.deploy``) and read them."""
        check_known_options(target, options, cls.__dataclass_fields__)
        replicas = option_int(options, "replicas", cls.replicas, 1, _MAX_REPLICAS)
        network = str(options.get("network") or cls.network)
        if not _NAME.match(network):
            raise InvalidInputError(f"network: {network!r} is not a Docker network name")
        own = ("replicas", "network", "registry")
        docker = DockerOptions.from_options({k: v for k, v in options.items() if k not in own}, target)
        return cls(image=docker.image, port=docker.port, base_image=docker.base_image, explain=docker.explain,
                   replicas=replicas, network=network, registry=str(options["registry"]) if options.get("registry")
                   else None)


@dataclass(frozen=True)
class ModelService:
    """The service of a model version's replicas."""

    service: str
    service_id: str
    image: str
    replicas: int
    #: The overlay network the replicas are on.
    network: str = "workbench"
    #: The deployment whose records the replicas write to the shared log store.
    deployment: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"service": self.service, "service_id": self.service_id, "image": self.image,
                "replicas": self.replicas, "network": self.network, "deployment": self.deployment}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelService:
        """Inverse of :meth:`to_dict`; records of the host-network design (replicas on 127.0.0.1
        ports, a log per replica) cannot be managed any more: stop and deploy them again."""
        if "network" not in data:
            raise DeploymentError(
                f"service {data.get('service')} was deployed by an earlier version of the swarm target (replicas "
                "on 127.0.0.1 ports): remove it with `docker service rm` and deploy again")
        return cls(str(data["service"]), str(data["service_id"]), str(data["image"]), int(data["replicas"]),
                   str(data["network"]), str(data.get("deployment", "")))


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
    """Runs model images as Docker Swarm services across the swarm's nodes."""

    #: The router finds the replicas by the swarm's DNS; they all write one shared log store.
    discover_replicas = True
    shared_log = True

    def __init__(self, uri: str = "swarm") -> None:
        super().__init__(uri, ModelService.from_dict, RouterService.from_dict)

    @classmethod
    def describe(cls) -> TargetInfo:
        """The ``swarm`` target, for the listing of installed targets."""
        return TargetInfo(
            name="swarm", uri="swarm", cluster=True,
            summary="model services with replicas spread over a Docker Swarm's nodes, behind a router service",
            description=("Needs an engine that is a swarm manager (`docker swarm init`) and one prediction log "
                         "store every node reaches (WORKBENCH_LOG_URL=postgresql://...). The router publishes "
                         "the deployment's port on the manager and finds the replicas by the swarm's DNS. "
                         "Every node must get the image: name one in a registry they pull from (`image`), or "
                         "load it on each node."),
            options=describe_options(SwarmOptions))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """The ``docker`` target's options, ``replicas`` and ``network``; anything else is an error
        naming them. The shared log store must be set."""
        SwarmOptions.from_options(options)
        _log_url()

    def _client(self) -> Any:
        client = docker_client()
        swarm = client.info().get("Swarm", {})
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise EngineUnavailableError(
                "this Docker engine is not a swarm manager: make it one with "
                "`docker swarm init --advertise-addr ADDRESS` (an address the other nodes reach), or point "
                "DOCKER_HOST at a manager of your swarm"
            )
        return client

    def _network(self, client: Any, name: str) -> None:
        """The attachable overlay network ``name``, created when missing."""
        import docker.errors

        try:
            network = client.networks.get(name)
        except docker.errors.NotFound:
            client.networks.create(name, driver="overlay", attachable=True, labels={_LABEL: "network"})
            return
        if network.attrs.get("Driver") != "overlay":
            raise InvalidInputError(f"network {name!r} is a {network.attrs.get('Driver')} network, not an overlay "
                                    "that spans the swarm's nodes: name another with network=NAME")

    # -- model servers --------------------------------------------------------------------------

    def start_backend(self, spec: DeploymentSpec, role: str, on_event: OnEvent | None) -> Backend[ModelService]:
        """A replicated service of the model image, spread over the nodes; returns once every
        replica is running and healthy (the image's HEALTHCHECK)."""
        from docker.types import EndpointSpec, Mount, RestartPolicy, RollbackConfig, ServiceMode, UpdateConfig

        options = SwarmOptions.from_options(spec.options)
        log_url = _log_url()
        client = self._client()
        self._network(client, options.network)
        image = _image(spec, options, client, on_event)
        name = f"workbench-{_slug(spec.name)}-{role}-r{spec.revision}"
        env = {**server_environment(get_settings()), "WORKBENCH_HOST": "0.0.0.0", "WORKBENCH_PORT": str(SERVER_PORT),
               "WORKBENCH_LOG_URL": log_url, "WORKBENCH_DEPLOYMENT": spec.name}
        service = client.services.create(
            image,
            name=name,
            env=[f"{k}={v}" for k, v in env.items()],
            networks=[options.network],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            mode=ServiceMode("replicated", replicas=options.replicas),
            preferences=[("spread", "node.id")],
            # The spool (records kept while the store is away) outlives a killed replica: the task that
            # replaces it in the same slot on that node drains it.
            mounts=[Mount(LOG_DIR, f"{name}-spool-{{{{.Task.Slot}}}}", type="volume")],
            update_config=UpdateConfig(parallelism=1, delay=_ns(1), failure_action="rollback", monitor=_ns(10),
                                       max_failure_ratio=0.0, order="start-first"),
            rollback_config=RollbackConfig(parallelism=1, delay=_ns(1), order="start-first"),
            restart_policy=RestartPolicy(condition="any", delay=_ns(2)),
            init=True,
            labels={_LABEL: spec.name, "io.workbench.role": role},
            container_labels={_LABEL: spec.name},
        )
        try:
            _await_running(service, options.replicas, get_settings().health_timeout + 60)
        except HealthCheckError:
            service.remove()
            raise
        internal = (f"http://tasks.{name}:{SERVER_PORT}",)
        return Backend(internal, (), spec.model_uri, spec.model_version,
                       ModelService(name, service.id, image, options.replicas, options.network, spec.name))

    def stop_backend(self, backend: Backend[ModelService]) -> None:
        """Remove the service (its tasks get SIGTERM, finish in-flight requests and drain their spool)."""
        import docker.errors

        try:
            service = self._client().services.get(backend.handle.service_id)
            service.remove()
        except docker.errors.NotFound:
            return
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if not docker_client().containers.list(filters={"label": f"com.docker.swarm.service.id="
                                                                          f"{backend.handle.service_id}"}):
                    return
            except docker.errors.APIError:
                return
            time.sleep(0.3)

    def backend_status(self, backend: Backend[ModelService]) -> TargetStatus:
        """Replicas running, and on which nodes."""
        import docker.errors

        try:
            service = docker_client().services.get(backend.handle.service_id)
        except docker.errors.NotFound:
            return TargetStatus("gone", False, "the service was removed")
        running = _running_tasks(service)
        wanted = backend.handle.replicas
        nodes = sorted({_node_name(t) for t in running})
        detail = (f"service {service.name}: {len(running)}/{wanted} replicas running"
                  + (f" on {', '.join(nodes)}" if nodes else ""))
        if len(running) >= wanted:
            return TargetStatus("running", True, detail)
        return TargetStatus("unhealthy", False, detail)

    def backend_logs(self, backend: Backend[ModelService], tail: int) -> str:
        """The output of every replica of the service, on whichever node it runs."""
        import docker.errors

        try:
            service = docker_client().services.get(backend.handle.service_id)
        except docker.errors.NotFound:
            return "(the service was removed)"
        return b"".join(service.logs(stdout=True, stderr=True, tail=tail, timestamps=False)).decode(errors="replace")

    def log_sources(self, champion: Backend[ModelService],
                    challenger: Backend[ModelService] | None) -> tuple[str, ...]:
        """The shared store, read for this deployment: every replica of both versions, one query."""
        return (store_source(_log_url(), champion.handle.deployment),)

    # -- the router -----------------------------------------------------------------------------

    def start_router(self, spec: DeploymentSpec, table: RouteTable, token: str,
                     champion: Backend[ModelService]) -> tuple[str, RouterService]:
        """A one-replica router service on this manager (its route table is in this manager's
        workspace), on the overlay network, publishing the deployment's port on the manager."""
        from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

        options = SwarmOptions.from_options(spec.options)
        client = self._client()
        port = options.port or _free_port()
        folder = spec.workdir / "router"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "router.json"
        config.write_text(json.dumps({"table": table.to_dict(), "token": token}))
        if os.geteuid() == 0:  # the router runs as the image's non-root user and rewrites the file
            os.chown(folder, USER_ID, USER_ID)
            os.chown(config, USER_ID, USER_ID)
        config.chmod(0o600)
        name = f"workbench-{_slug(spec.name)}-router"
        node_id = client.info()["Swarm"]["NodeID"]
        service = client.services.create(
            champion.handle.image,
            command=[*PROGRAM, *route_args(f"{_ROUTER_DIR}/router.json", host="0.0.0.0", port=SERVER_PORT)],
            name=name,
            networks=[options.network],
            endpoint_spec=EndpointSpec(mode="dnsrr", ports=[{"Protocol": "tcp", "PublishedPort": port,
                                                              "TargetPort": SERVER_PORT, "PublishMode": "host"}]),
            mode=ServiceMode("replicated", replicas=1),
            mounts=[Mount(_ROUTER_DIR, str(folder), type="bind")],
            constraints=[f"node.id=={node_id}"],  # where the route table's folder is
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
        image = _image(spec, SwarmOptions.from_options(spec.options), client, on_event)
        service.update(image=image, force_update=True)
        replicas = state.champion.handle.replicas
        outcome = _await_update(service, get_settings().health_timeout + 60 * replicas)
        if outcome != "completed":
            raise HealthCheckError(
                f"the rolling update to {spec.model_uri} failed its health checks ({outcome}); the swarm rolled "
                f"service {service.name} back to {state.champion.model_uri}, which keeps serving"
            )
        champion = Backend(state.champion.internal_urls, state.champion.urls, spec.model_uri, spec.model_version,
                           replace(state.champion.handle, image=image))
        _await_running(service, replicas, get_settings().health_timeout)  # every replica back and ready
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
    missing = [t for t in failed if "No such image" in str(t.get("Status", {}).get("Err", ""))]
    if missing:
        image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
        return (f"node {_node_name(missing[-1])} has no image {image}: push it to a registry every node pulls "
                f"from and deploy with image=REGISTRY/NAME:TAG, or load it on each node "
                f"(docker save {image} | docker -H NODE load)")
    if len(failed) >= 3:
        status = failed[-1]["Status"]
        return f"{status.get('State')}: {status.get('Err') or status.get('Message')}\n{_service_output(service)}"
    return None


def _service_output(service: Any, tail: int = 15) -> str:
    """The last lines the service's tasks wrote, to say why they failed."""
    try:
        return b"".join(service.logs(stdout=True, stderr=True, tail=tail)).decode(errors="replace").strip()
    except Exception:  # noqa: BLE001 - the output is a courtesy; the state above says what failed
        return ""


def _log_url() -> str:
    """The shared log store every replica writes to; a clear error when none is set."""
    log_url = get_settings().log_url
    if not log_url:
        raise ConfigurationError(
            "the swarm target's replicas run on several nodes and write one shared prediction log: set "
            "WORKBENCH_LOG_URL=postgresql://USER@HOST:PORT/DB to a PostgreSQL server every node reaches "
            "(the workbench creates its tables), then deploy again"
        )
    return log_url


def _running_tasks(service: Any) -> list[dict[str, Any]]:
    """The service's tasks that run now (healthy: a task with a HEALTHCHECK runs once it passes)."""
    return [t for t in service.tasks(filters={"desired-state": "running"})
            if t.get("Status", {}).get("State") == "running"]


def _node_name(task: Mapping[str, Any]) -> str:
    node_id = str(task.get("NodeID", ""))
    try:
        return str(docker_client().nodes.get(node_id).attrs["Description"]["Hostname"])
    except Exception:  # noqa: BLE001 - a node that left: its id says enough
        return node_id[:12]


def _await_running(service: Any, replicas: int, timeout: float) -> None:
    """Wait until ``replicas`` tasks of ``service`` run; raise HealthCheckError saying why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_running_tasks(service)) >= replicas:
            return
        problem = _task_failure(service)
        if problem:
            raise HealthCheckError(f"service {service.name} stopped before it became ready: {problem}")
        time.sleep(0.5)
    raise HealthCheckError(f"service {service.name}: {len(_running_tasks(service))} of {replicas} replicas ran "
                           f"within {timeout:.0f} s (raise WORKBENCH_HEALTH_TIMEOUT for slow models; "
                           f"`docker service ps {service.name}` shows why)")


def _image(spec: DeploymentSpec, options: SwarmOptions, client: Any, on_event: OnEvent | None) -> str:
    """The image every node runs: ``image`` as given (each node pulls or has it), the model packaged
    and pushed to ``registry`` (by digest), or packaged on this engine for a one-node swarm."""
    if options.image:
        return options.image
    if options.registry:
        from workbench.packaging import package

        tag = registry_tag(options.registry, spec.model_name, spec.model_version or f"r{spec.revision}")
        record = package(spec.model_uri, tag=tag, on_event=on_event, base_image=options.base_image,
                         explain=options.explain)
        return push_image(record.tag)
    return model_image(spec, options, client, on_event)
