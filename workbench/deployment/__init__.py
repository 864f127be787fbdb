"""Deploying models: one small :class:`Target` interface, targets chosen by URI.

Built in: ``local`` (a background process) and ``docker`` (a container on the local engine). Other
targets plug in through the ``workbench.targets`` entry-point group (see :mod:`workbench.deployment.base`).
"""

from __future__ import annotations

from workbench.deployment.base import DeploymentSpec, Placement, Target, TargetStatus, load_target
from workbench.deployment.manager import (
    Deployment,
    deploy,
    deployment_history,
    deployments,
    get_deployment,
    logs,
    rollback,
    stop,
    update,
)

__all__ = [
    "Deployment",
    "DeploymentSpec",
    "Placement",
    "Target",
    "TargetStatus",
    "deploy",
    "deployment_history",
    "deployments",
    "get_deployment",
    "load_target",
    "logs",
    "rollback",
    "stop",
    "update",
]
