"""The workbench router on Kubernetes: its route table (ConfigMap), admin token (Secret), Deployment,
the clients' Service, its NetworkPolicy and disruption budget (see :mod:`.manifests` for the whole)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from workbench.config import Settings
from workbench.deployment.base import TrafficPolicy
from workbench.deployment.targets.kubernetes.objects import (
    LABEL_PREFIX,
    ServedVersion,
    labels,
    metadata,
    object_name,
    pod_selector,
    restricted_pod,
    secret,
    security_context,
    served_hosts,
)
from workbench.deployment.targets.kubernetes.options import KubernetesOptions
from workbench.deployment.targets.kubernetes.sizing import router_resources
from workbench.packaging.context import SERVER_PORT
from workbench.routing.router import ROUTER_TOKEN_ENV, RouteTable
from workbench.serving.command import PROGRAM, route_args

__all__ = ["ROUTER_CONTAINER", "ROUTE_TABLE_ANNOTATION", "route_table", "router_objects"]

ROUTER_CONTAINER = "router"
_ROUTER_DIR = "/etc/workbench-router"
_ROUTER_STATE = "/var/lib/workbench-router"
#: The router pods' annotation holding the route table's hash: a new table rolls them.
ROUTE_TABLE_ANNOTATION = "workbench.io/route-table-sha256"


def route_table(name: str, opts: KubernetesOptions, champion: ServedVersion, challenger: ServedVersion | None,
                policy: TrafficPolicy | None) -> RouteTable:
    """The router's table: each version by its Service's DNS name (``http://NAME-champion.NS.svc:80``;
    without a namespace, the short name the router's own namespace resolves), never a pod's address."""
    suffix = f".{opts.namespace}.svc" if opts.namespace else ""

    def url(role: str) -> str:
        return f"http://{object_name(name, role, routed=True)}{suffix}:{opts.port}"

    bandit = challenger is not None and policy is not None and policy.mode == "bandit"
    return RouteTable(
        champion=(url("champion"),),
        challenger=(url("challenger"),) if challenger is not None else (),
        mode=policy.mode if policy is not None and challenger is not None else "split",
        challenger_share=policy.challenger_share if policy is not None and challenger is not None and not bandit
        else 0.0,
        champion_version=champion.model_version or "",
        challenger_version=(challenger.model_version or "") if challenger is not None else "",
        strategy=(policy.strategy or "thompson") if bandit and policy is not None else "thompson",
        epsilon=(policy.epsilon or 0.1) if bandit and policy is not None else 0.1,
        # One log for every pod (the store, or a shared claim): any server records any feedback.
        shared_log=opts.log_store or bool(opts.log_claim),
    )


def router_objects(name: str, opts: KubernetesOptions, champion: ServedVersion, table: RouteTable, token: str | None,
            settings: Settings) -> list[dict[str, Any]]:
    """The router: its table (ConfigMap), token (Secret), Deployment, the clients' Service, its
    NetworkPolicy and, with more than one pod, its disruption budget."""
    obj = object_name(name, "router")
    router_labels = labels(name, champion, "router")
    selector = pod_selector(name, "router")
    config = json.dumps({"table": table.to_dict()}, sort_keys=True)
    digest = hashlib.sha256(config.encode()).hexdigest()
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(obj, opts, router_labels),
         "data": {"router.json": config}},
    ]
    if token:
        manifests.append(secret(obj, opts, router_labels, {"token": token}))
    image = opts.router_image or champion.image
    container: dict[str, Any] = {
        "name": ROUTER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent" if "@" in image else "Always",
        # command replaces the model image's entry point, and without args its CMD too.
        "command": [*PROGRAM, *route_args(f"{_ROUTER_DIR}/router.json", host="0.0.0.0", port=SERVER_PORT,
                                          state_dir=_ROUTER_STATE)],
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "WORKBENCH_MAX_BODY_BYTES", "value": str(settings.max_body_bytes)},
            {"name": "WORKBENCH_ALLOWED_HOSTS", "value": served_hosts(name, opts, settings.allowed_hosts)},
            # optional: `workbench manifests` writes no Secret; without a token no one changes routes
            # through the router (the ConfigMap is where they change anyway).
            {"name": ROUTER_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": obj, "key": "token",
                                                                       "optional": True}}},
        ],
        "resources": router_resources().to_dict(),
        # The router's own route: readiness and liveness never depend on a model server.
        "readinessProbe": {"httpGet": {"path": "/workbench/router", "port": SERVER_PORT},
                           "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/workbench/router", "port": SERVER_PORT},
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "startupProbe": {"httpGet": {"path": "/workbench/router", "port": SERVER_PORT},
                         "periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 30},
        "lifecycle": {"preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(5)"]}}},
        "securityContext": security_context(),
        "volumeMounts": [{"name": "route-table", "mountPath": _ROUTER_DIR, "readOnly": True},
                         {"name": "router-state", "mountPath": _ROUTER_STATE},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = restricted_pod({
        "containers": [container],
        "volumes": [{"name": "route-table", "configMap": {"name": obj}},
                    {"name": "router-state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": pod_selector(name, "router")},
        }],
    }, opts)
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(SERVER_PORT),
                   "prometheus.io/path": "/workbench/router/metrics",
                   # a new table is a new pod template: the router pods roll to it
                   ROUTE_TABLE_ANNOTATION: digest}
    manifests += [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(obj, opts, router_labels),
         "spec": {"replicas": opts.router_replicas, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 600,
                  "selector": {"matchLabels": selector},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                  "template": {"metadata": {"labels": router_labels, "annotations": annotations}, "spec": pod}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(name, opts, router_labels),
         "spec": {"type": opts.service_type, "selector": selector,
                  "ports": [{"name": "http", "port": opts.port, "targetPort": "http", "protocol": "TCP",
                             "appProtocol": "http"}]}},
    ]
    if opts.network_policy:
        models = {"matchLabels": {"app.kubernetes.io/instance": name},
                  "matchExpressions": [{"key": LABEL_PREFIX + "role", "operator": "In",
                                        "values": ["champion", "challenger"]}]}
        manifests.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(obj, opts, router_labels),
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"port": SERVER_PORT, "protocol": "TCP"}]}],
                     # out: to this deployment's model servers, and to DNS to find them (port 53 anywhere:
                     # the cluster's DNS may be a pod, or a node-local cache on a link-local address)
                     "egress": [{"to": [{"podSelector": models}],
                                 "ports": [{"port": SERVER_PORT, "protocol": "TCP"}]},
                                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]},
        })
    if opts.router_replicas > 1:
        manifests.append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(obj, opts, router_labels),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector},
                     "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        })
    return manifests
