"""Deploying models: one small :class:`Target` interface, targets chosen by URI.

Built in: ``local`` (background processes) and ``docker`` (containers on the local engine), each a
router in front of model servers (:mod:`workbench.deployment.routed`), so a deployment keeps its
address through updates and can serve a challenger beside its champion. Other
targets plug in through the ``workbench.targets`` entry-point group (see :mod:`workbench.deployment.base`).
"""

from __future__ import annotations

from workbench.deployment.base import (
    DeploymentSpec,
    OnEvent,
    Placement,
    SupportsChallenger,
    Target,
    TargetHandle,
    TargetStatus,
    TrafficPolicy,
    load_target,
)
from workbench.deployment.manager import (
    Deployment,
    abort,
    deploy,
    deployment_history,
    deployments,
    get_deployment,
    log_feedback,
    logs,
    promote,
    rollback,
    set_traffic,
    start_challenger,
    stop,
    update,
)

__all__ = [
    "Deployment",
    "DeploymentSpec",
    "OnEvent",
    "Placement",
    "SupportsChallenger",
    "Target",
    "TargetHandle",
    "TargetStatus",
    "TrafficPolicy",
    "abort",
    "deploy",
    "deployment_history",
    "deployments",
    "get_deployment",
    "load_target",
    "log_feedback",
    "logs",
    "promote",
    "rollback",
    "set_traffic",
    "start_challenger",
    "stop",
    "update",
]
