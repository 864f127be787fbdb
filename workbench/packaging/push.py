"""Images in a registry: what a cluster's nodes pull, named by digest so every node runs the same bytes."""

from __future__ import annotations

import re

from workbench._docker import docker_client
from workbench.errors import DeploymentError

__all__ = ["push_image", "registry_tag"]


def _split_reference(reference: str) -> tuple[str, str]:
    """``host:5000/team/model:3`` -> (``host:5000/team/model``, ``3``)."""
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, "latest"
    return repository, tag


def registry_tag(registry: str, model_name: str, version: str) -> str:
    """The tag of a model's image in ``registry`` (``REGISTRY/PATH``): ``REGISTRY/PATH/<model>:<version>``."""
    repository = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    return f"{registry.rstrip('/')}/{repository}:{version}"


def push_image(reference: str) -> str:
    """Push a local image to its registry (Docker SDK, the engine's credentials); returns the
    reference by digest (``REPOSITORY@sha256:...``) so what runs is exactly what was pushed."""
    import docker.errors

    repository, tag = _split_reference(reference)
    registry = repository.split("/", 1)[0]
    digest = None
    try:
        for line in docker_client().api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise DeploymentError(
                    f"pushing {reference} failed: {line['error']}. Check the registry name; if it needs "
                    f"credentials, log in first (`docker login {registry}`); a registry served over plain "
                    f"HTTP must be in the engine's insecure-registries"
                )
            digest = (line.get("aux") or {}).get("Digest") or digest
    except docker.errors.APIError as exc:
        raise DeploymentError(f"the Docker engine could not push {reference}: {exc.explanation or exc}") from exc
    return f"{repository}@{digest}" if digest else reference
