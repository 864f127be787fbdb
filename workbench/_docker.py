"""The one way the workbench reaches a Docker engine: a client, or an error that says how to start one."""

from __future__ import annotations

from typing import Any

from workbench.errors import EngineUnavailableError, MissingDependencyError

__all__ = ["docker_client"]


def docker_client(timeout: int = 120) -> Any:
    """A docker-py client that has answered a ping."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a core dependency
        raise MissingDependencyError("talking to Docker", "docker") from exc
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise EngineUnavailableError(
            f"no Docker engine answers ({exc}). Start one (`sudo systemctl start docker`, or as root "
            "`dockerd &`), or point DOCKER_HOST at a running engine; scripts/setup-system installs and "
            "starts one on Debian"
        ) from exc
    return client
