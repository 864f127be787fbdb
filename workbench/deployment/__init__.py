"""Deploying models: one small :class:`Target` interface, targets chosen by URI.

The API (:mod:`~workbench.deployment.manager`), the interface (:mod:`~workbench.deployment.base`), the
records (:mod:`~workbench.deployment.store`) and the machinery targets share
(:mod:`~workbench.deployment.routed`, :mod:`~workbench.deployment.warm`) live here; the built-in
targets have their own wing, :mod:`workbench.deployment.targets` (``local``, ``docker``, ``swarm``,
``k8s``). Other targets plug in through the ``workbench.targets`` entry-point group;
:func:`deploy_targets` lists what is installed, with each target's options and help.
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
from workbench.deployment.catalog import TargetInfo, TargetOption, deploy_targets, get_target_info, target_help
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
    "TargetInfo",
    "TargetOption",
    "TargetStatus",
    "TrafficPolicy",
    "abort",
    "deploy",
    "deploy_targets",
    "deployment_history",
    "deployments",
    "get_deployment",
    "get_target_info",
    "load_target",
    "log_feedback",
    "logs",
    "promote",
    "rollback",
    "set_traffic",
    "start_challenger",
    "stop",
    "target_help",
    "update",
]
