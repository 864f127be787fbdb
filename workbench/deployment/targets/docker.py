"""The ``docker`` target: model images as containers on the local engine, behind a router container.

Every container runs with ``init`` as PID 1 (SIGTERM reaches the server), restarts unless stopped,
and sits on the user-defined network ``workbench``, where the router reaches model servers by
container name. The router publishes the deployment's port on 127.0.0.1; model servers also publish
a port on 127.0.0.1 each, for monitoring every one of them. The prediction log lives on a named
volume per deployment, ``workbench-<name>-predictions``, so it survives containers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench._docker import docker_client
from workbench.config import get_settings
from workbench.deployment.base import (
    DeploymentSpec,
    OnEvent,
    TargetStatus,
    check_known_options,
    option_int,
    probe_ready,
    wait_until_ready,
)
from workbench.deployment.catalog import TargetInfo, describe_options
from workbench.deployment.routed import Backend, RoutedTarget
from workbench.errors import DeploymentError, HealthCheckError, InvalidInputError, PortInUseError
from workbench.packaging.context import LOG_DIR, SERVER_PORT, USER_ID
from workbench.routing.router import RouteTable
from workbench.serving.command import PROGRAM, route_args

__all__ = ["NETWORK", "DockerOptions", "DockerTarget", "ModelContainer", "RouterContainer", "container_name",
           "model_image", "server_environment", "volume_name"]

NETWORK = "workbench"
_LABEL = "io.workbench.deployment"
_ROUTER_DIR = "/etc/workbench-router"


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-.") or "model"


def volume_name(deployment: str) -> str:
    """The named volume holding a deployment's prediction log."""
    return f"workbench-{_slug(deployment)}-predictions"


def container_name(deployment: str, role: str, revision: int) -> str:
    """The container of one model server of a deployment."""
    return f"workbench-{_slug(deployment)}-{role}-r{revision}"


def _api_error(exc: Exception, port: Any, name: str) -> Exception:
    message = str(getattr(exc, "explanation", None) or exc)
    if "port is already allocated" in message or "address already in use" in message:
        return PortInUseError(f"port {port} on 127.0.0.1 is taken: choose another --port")
    if "Conflict" in message and "already in use" in message:
        return DeploymentError(f"a container named {name} exists already: remove it with `docker rm -f {name}`")
    return DeploymentError(f"the Docker engine refused to start {name}: {message}")


@dataclass(frozen=True)
class DockerOptions:
    """The options of the ``docker`` target (``wb.deploy(uri, target="docker", image=..., port=...)``)."""

    #: An image of the model on the engine; ``None``: the model is packaged first.
    image: str | None = None
    #: The deployment's port on 127.0.0.1; 0: a free one.
    port: int = 0
    #: The base of the image packaged when no ``image`` is given.
    base_image: str | None = None
    #: Package the model with its explainer (the server's explanation route).
    explain: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any], target: str = "docker") -> DockerOptions:
        """Check ``options`` (as given to ``wb.deploy``) and read them."""
        check_known_options(target, options, cls.__dataclass_fields__)
        return cls(image=str(options["image"]) if options.get("image") else None,
                   port=option_int(options, "port", cls.port, 0, 65535),
                   base_image=str(options["base_image"]) if options.get("base_image") else None,
                   explain=bool(options.get("explain")))


@dataclass(frozen=True)
class ModelContainer:
    """A model server's container, its image and the volume of its prediction log."""

    container: str
    container_id: str
    image: str
    volume: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"container": self.container, "container_id": self.container_id, "image": self.image,
                "volume": self.volume}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelContainer:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["container"]), str(data["container_id"]), str(data["image"]), str(data["volume"]))


@dataclass(frozen=True)
class RouterContainer:
    """A deployment's router container."""

    container: str
    container_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"container": self.container, "container_id": self.container_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterContainer:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["container"]), str(data["container_id"]))


class DockerTarget(RoutedTarget[ModelContainer, RouterContainer]):
    """Runs model images on the local Docker engine behind a router container."""

    def __init__(self, uri: str = "docker") -> None:
        super().__init__(uri, ModelContainer.from_dict, RouterContainer.from_dict)

    @classmethod
    def describe(cls) -> TargetInfo:
        """The ``docker`` target, for the listing of installed targets."""
        return TargetInfo(
            name="docker", uri="docker", summary="model containers behind a router container on the local Docker engine",
            description=("Packages the model into an image first unless `image` names one. Needs a running "
                         "Docker engine; the router publishes its port on 127.0.0.1."),
            options=describe_options(DockerOptions))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """``image``, ``port``, ``base_image`` and ``explain``; anything else is an error naming them."""
        DockerOptions.from_options(options)

    def _client(self) -> Any:
        import docker.errors

        client = docker_client()
        try:
            client.networks.get(NETWORK)
        except docker.errors.NotFound:
            client.networks.create(NETWORK, driver="bridge", labels={_LABEL: "network"})
        return client

    def _run(self, client: Any, image: str, name: str, port: Any, spec: DeploymentSpec, **kwargs: Any) -> Any:
        import docker.errors

        try:
            container = client.containers.run(
                image, name=name, detach=True, init=True, network=NETWORK,
                ports={f"{SERVER_PORT}/tcp": ("127.0.0.1", int(port) if port else None)},
                restart_policy={"Name": "unless-stopped"},
                labels={_LABEL: spec.name, "io.workbench.revision": str(spec.revision)}, **kwargs,
            )
        except docker.errors.APIError as exc:
            _remove_quietly(client, name)
            raise _api_error(exc, port, name) from exc
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"][f"{SERVER_PORT}/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{host_port}"

        def stopped() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                return str(container.logs(tail=15).decode(errors="replace"))
            return None

        try:
            wait_until_ready(url, get_settings().health_timeout, still_starting=stopped,
                             describe=f"container {name}")
        except HealthCheckError:
            _remove_quietly(client, name)
            raise
        return container, url

    def start_backend(self, spec: DeploymentSpec, role: str, on_event: OnEvent | None) -> Backend[ModelContainer]:
        """A model server container (the model is packaged first unless an image is given)."""
        client = self._client()
        image = model_image(spec, DockerOptions.from_options(spec.options), client, on_event)
        settings = get_settings()
        name = container_name(spec.name, role, spec.revision)
        container, url = self._run(
            client, image, name, None, spec,
            volumes={volume_name(spec.name): {"bind": LOG_DIR, "mode": "rw"}},
            environment=server_environment(settings),
        )
        return Backend((f"http://{name}:{SERVER_PORT}",), (url,), spec.model_uri, spec.model_version,
                       ModelContainer(name, container.id, image, volume_name(spec.name)))

    def stop_backend(self, backend: Backend[ModelContainer]) -> None:
        """Stop (SIGTERM: in-flight requests finish, the log is flushed) and remove the container."""
        _remove_quietly(docker_client(), backend.handle.container_id, stop=True)

    def backend_status(self, backend: Backend[ModelContainer]) -> TargetStatus:
        """The container's state on the engine, and whether its server answers."""
        return _container_status(backend.handle.container_id, backend.urls[0])

    def backend_logs(self, backend: Backend[ModelContainer], tail: int) -> str:
        """The container's output."""
        import docker.errors

        try:
            container = docker_client().containers.get(backend.handle.container_id)
        except docker.errors.NotFound:
            return "(the container was removed)"
        return str(container.logs(tail=tail).decode(errors="replace"))

    def start_router(self, spec: DeploymentSpec, table: RouteTable, token: str,
                     champion: Backend[ModelContainer]) -> tuple[str, RouterContainer]:
        """A router container from the champion's image, publishing the deployment's port."""
        client = self._client()
        folder = spec.workdir / "router"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "router.json"
        config.write_text(json.dumps({"table": table.to_dict(), "token": token}))
        if os.geteuid() == 0:  # the container runs as the image's non-root user, which rewrites it
            os.chown(folder, USER_ID, USER_ID)
            os.chown(config, USER_ID, USER_ID)
        config.chmod(0o600)
        name = f"workbench-{_slug(spec.name)}-router"
        container, url = self._run(
            client, champion.handle.image, name, DockerOptions.from_options(spec.options).port, spec,
            entrypoint=[*PROGRAM, *route_args(f"{_ROUTER_DIR}/router.json", host="0.0.0.0", port=SERVER_PORT)],
            command=[],
            volumes={str(folder): {"bind": _ROUTER_DIR, "mode": "rw"}},
        )
        return url, RouterContainer(name, container.id)

    def stop_router(self, handle: RouterContainer) -> None:
        """Stop and remove the router container."""
        _remove_quietly(docker_client(), handle.container_id, stop=True)

    def router_alive(self, handle: RouterContainer) -> bool:
        """The router container exists and runs."""
        return _container_status(handle.container_id, None).state == "running"


def model_image(spec: DeploymentSpec, options: DockerOptions, client: Any, on_event: OnEvent | None = None) -> str:
    """The image to run: the one given in the options (checked to exist), else the model packaged now
    (``on_event`` sees the build's progress)."""
    import docker.errors

    image = options.image
    if image:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise InvalidInputError(
                f"image {image!r} does not exist on this Docker engine: build it with "
                f"`workbench package {spec.model_uri} --tag {image}`, or leave the image out and "
                "the model is packaged first"
            ) from exc
        return image
    from workbench.packaging import package

    record = package(spec.model_uri, on_event=on_event,
                     base_image=options.base_image, explain=options.explain)
    return record.tag


def server_environment(settings: Any) -> dict[str, str]:
    """Serving settings passed into a model server's container."""
    return {
        "WORKBENCH_MAX_BATCH_SIZE": str(settings.max_batch_size),
        "WORKBENCH_MAX_BATCH_WAIT_MS": str(settings.max_batch_wait_ms),
        "WORKBENCH_MAX_BODY_BYTES": str(settings.max_body_bytes),
    }


def _container_status(container_id: str, url: str | None) -> TargetStatus:
    import docker.errors

    try:
        container = docker_client().containers.get(container_id)
    except docker.errors.NotFound:
        return TargetStatus("gone", False, "the container was removed")
    if container.status != "running":
        return TargetStatus("exited", False, f"container {container.status}")
    ready = probe_ready(url) if url else True
    return TargetStatus("running" if ready else "unhealthy", ready, f"container {container.name}")


def _remove_quietly(client: Any, container: str, stop: bool = False) -> None:
    import docker.errors

    try:
        found = client.containers.get(container)
    except docker.errors.NotFound:
        return
    if stop:
        try:
            found.stop(timeout=30)
        except docker.errors.APIError:
            pass
    try:
        found.remove(force=True)
    except docker.errors.NotFound:
        pass
