"""The ``docker`` target: a model image running as a container on the local engine.

Each revision is one container (``init`` as PID 1 so SIGTERM reaches the server, the port published
on 127.0.0.1, restart unless stopped). The prediction log lives on a named volume per deployment,
``workbench-<name>-predictions``, so it survives containers being replaced or removed.
"""

from __future__ import annotations

import re
from typing import Any

from workbench._docker import docker_client
from workbench.config import get_settings
from workbench.deployment.base import DeploymentSpec, Placement, TargetStatus, probe_ready, wait_until_ready
from workbench.errors import DeploymentError, HealthCheckError, InvalidInputError, PortInUseError
from workbench.packaging.context import LOG_DIR, SERVER_PORT

__all__ = ["DockerTarget", "container_name", "volume_name"]

_LABEL = "io.workbench.deployment"


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-.") or "model"


def volume_name(deployment: str) -> str:
    """The named volume holding a deployment's prediction log."""
    return f"workbench-{_slug(deployment)}-predictions"


def container_name(deployment: str, revision: int) -> str:
    """The container of one revision of a deployment."""
    return f"workbench-{_slug(deployment)}-r{revision}"


class DockerTarget:
    """Runs model images on the local Docker engine; updates are blue/green."""

    def __init__(self, uri: str = "docker") -> None:
        self.uri = uri

    def _image(self, spec: DeploymentSpec, client: Any) -> str:
        import docker.errors

        image = spec.options.get("image")
        if image:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound as exc:
                raise InvalidInputError(
                    f"image {image!r} does not exist on this Docker engine: build it with "
                    f"`workbench package {spec.model_uri} --tag {image}`, or leave the image out and "
                    "the model is packaged first"
                ) from exc
            return str(image)
        from workbench.packaging import package

        record = package(spec.model_uri, on_event=spec.options.get("on_event"),
                         base_image=spec.options.get("base_image"))
        return record.tag

    def deploy(self, spec: DeploymentSpec) -> Placement:
        """Package the model (unless an image is given), run it, wait until it is ready."""
        import docker.errors

        client = docker_client()
        image = self._image(spec, client)
        settings = get_settings()
        port = spec.options.get("port")
        try:
            container = client.containers.run(
                image,
                name=container_name(spec.name, spec.revision),
                detach=True,
                init=True,
                ports={f"{SERVER_PORT}/tcp": ("127.0.0.1", int(port) if port else None)},
                restart_policy={"Name": "unless-stopped"},
                volumes={volume_name(spec.name): {"bind": LOG_DIR, "mode": "rw"}},
                environment={
                    "WORKBENCH_MAX_BATCH_SIZE": str(settings.max_batch_size),
                    "WORKBENCH_MAX_BATCH_WAIT_MS": str(settings.max_batch_wait_ms),
                    "WORKBENCH_MAX_BODY_BYTES": str(settings.max_body_bytes),
                },
                labels={_LABEL: spec.name, "io.workbench.revision": str(spec.revision)},
            )
        except docker.errors.APIError as exc:
            _remove_quietly(client, container_name(spec.name, spec.revision))
            message = str(exc.explanation or exc)
            if "port is already allocated" in message or "address already in use" in message:
                raise PortInUseError(f"port {port} on 127.0.0.1 is taken: choose another --port") from exc
            if "Conflict" in message and "already in use" in message:
                raise DeploymentError(f"a container named {container_name(spec.name, spec.revision)} exists "
                                      "already: remove it with docker rm -f") from exc
            raise DeploymentError(f"the Docker engine refused to start the container: {message}") from exc
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"][f"{SERVER_PORT}/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{host_port}"

        def stopped() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                return container.logs(tail=15).decode(errors="replace")
            return None

        try:
            wait_until_ready(url, settings.health_timeout, still_starting=stopped,
                             describe=f"container {container.name}")
        except HealthCheckError:
            _remove_quietly(client, container.name)
            raise
        return Placement(url=url, handle={
            "container": container.name, "container_id": container.id, "image": image,
            "volume": volume_name(spec.name),
        })

    def update(self, current: Placement, spec: DeploymentSpec) -> Placement:
        """Start the new revision's container; remove the old one once the new one is ready."""
        if spec.options.get("port"):
            raise DeploymentError(
                f"deployment {spec.name!r} was given a fixed port, which the new and the old container "
                "cannot share during an update: deploy without --port to update without downtime"
            )
        new = self.deploy(spec)
        self.delete(current)
        return new

    def status(self, placement: Placement) -> TargetStatus:
        """The container's state on the engine, and whether the server answers."""
        import docker.errors

        client = docker_client()
        try:
            container = client.containers.get(placement.handle["container_id"])
        except docker.errors.NotFound:
            return TargetStatus("gone", False, "the container was removed")
        if container.status != "running":
            return TargetStatus("exited", False, f"container {container.status}")
        ready = probe_ready(placement.url)
        return TargetStatus("running" if ready else "unhealthy", ready, f"container {container.name}")

    def logs(self, placement: Placement, tail: int = 100) -> str:
        """The container's output."""
        import docker.errors

        try:
            container = docker_client().containers.get(placement.handle["container_id"])
        except docker.errors.NotFound:
            return "(the container was removed)"
        return str(container.logs(tail=tail).decode(errors="replace"))

    def delete(self, placement: Placement) -> None:
        """Stop (SIGTERM: in-flight requests finish, the log is flushed) and remove the container."""
        _remove_quietly(docker_client(), placement.handle["container_id"], stop=True)


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
