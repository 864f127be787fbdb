"""Deployment options: each target reads typed options, checked where the target is chosen.

An option a target does not know, or a value it cannot use, is an error naming what it knows, raised
before a name is reserved, an image built or a server started.
"""

from __future__ import annotations

from typing import Any

import pytest

import workbench as wb
from workbench.deployment.targets.docker import DockerOptions
from workbench.deployment.targets.local import LocalOptions
from workbench.deployment.targets.swarm import SwarmOptions
from workbench.errors import InvalidInputError


@pytest.mark.parametrize(("target", "options", "message"), [
    ("local", {"replica": 2}, "unknown option(s) for the local target: replica; known: host, port"),
    ("local", {"port": "eighty"}, "port must be a whole number from 0 to 65535, not 'eighty'"),
    ("docker", {"replicas": 2, "tag": "x"},
     "unknown option(s) for the docker target: replicas, tag; known: base_image, explain, image, port"),
    ("swarm", {"replicas": 101}, "replicas must be a whole number from 1 to 100, not 101"),
    ("swarm", {"gpus": 1}, "unknown option(s) for the swarm target: gpus; known: base_image, explain, image, network, "
                           "port, registry, replicas"),
    ("k8s://lab/models", {"replica": 3}, "unknown option(s) for the k8s target: replica; known: "),
    ("k8s://lab/models", {"timeout": "soon"}, "timeout is a number of seconds, not 'soon'"),
])
def test_a_bad_option_fails_before_anything_is_reserved(registered_model, target: str, options: dict[str, Any],
                                                        message: str) -> None:
    name = "bad-options"
    with pytest.raises(InvalidInputError) as caught:
        wb.deploy(registered_model.uri, target=target, name=name, **options)
    assert str(caught.value).startswith(message)
    assert name not in [d.name for d in wb.deployments()]  # no reservation left behind


def test_a_swarm_without_a_shared_log_store_is_refused_before_anything_starts(registered_model) -> None:
    # Replicas on several nodes cannot each keep their log on their node's disk.
    assert wb.get_settings().log_url is None
    with pytest.raises(wb.ConfigurationError, match="set WORKBENCH_LOG_URL=postgresql://"):
        wb.deploy(registered_model.uri, target="swarm", name="no-store", replicas=12)
    assert "no-store" not in [d.name for d in wb.deployments()]


def test_options_are_read_into_typed_values() -> None:
    assert LocalOptions.from_options({}) == LocalOptions("127.0.0.1", 0)
    assert LocalOptions.from_options({"port": "8080", "host": "0.0.0.0"}) == LocalOptions("0.0.0.0", 8080)
    assert DockerOptions.from_options({"image": "churn:3", "port": 8000}) == DockerOptions("churn:3", 8000)
    swarm = SwarmOptions.from_options({"replicas": 3, "base_image": "python:3.11-slim"})
    assert (swarm.replicas, swarm.base_image, swarm.image, swarm.port) == (3, "python:3.11-slim", None, 0)
    assert SwarmOptions.from_options({}).replicas == 2
