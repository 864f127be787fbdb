"""The ``k8s`` target: model servers as Kubernetes Deployments, or as KServe InferenceServices.

Target URI: ``k8s://CONTEXT/NAMESPACE``. ``k8s:///NAMESPACE`` uses the kubeconfig's current context,
``k8s://`` (or ``k8s``) also that context's namespace (else ``default``). The kubeconfig is the one
``kubectl`` uses: ``KUBECONFIG``, else ``~/.kube/config``, else the in-cluster service account.

Manifests come from one pure function, :func:`build_manifests`, which ``workbench manifests`` prints
for GitOps users and the target applies:

- a Deployment of the model image: probes on the V2 health routes (startup and liveness on
  ``/v2/health/live``, readiness on ``/v2/health/ready``), the "restricted" Pod Security Standard
  (uid 10001, read-only root filesystem with emptyDir volumes for the prediction log and ``/tmp``,
  no privilege escalation, every capability dropped, RuntimeDefault seccomp), Prometheus scrape
  annotations, the ``app.kubernetes.io/*`` labels and ``workbench.io/*`` labels naming the model;
- a Service, a HorizontalPodAutoscaler (autoscaling/v2), a NetworkPolicy that opens the server's port
  only, and a PodDisruptionBudget (policy/v1);
- resource requests and a memory limit on every pod (never BestEffort), sized from the model and the
  server's measured footprint (:mod:`workbench.deployment.sizing`), overridable;
- with a challenger: the same four objects for it, and a Gateway API ``HTTPRoute`` that splits traffic
  by weight or mirrors every request to the challenger (``RequestMirror``);
- or, with ``kserve=True``, one KServe ``InferenceService`` (a custom predictor container on the
  same image and port, V2 protocol) whose challenger is a canary (``canaryTrafficPercent``).

Applying needs the ``kubernetes`` client, imported only when a cluster is used: server-side apply
(field manager ``workbench``), a wait for the rollout, and on failure a report of the pods' events
and container states. Options (``wb.deploy(uri, target="k8s://ctx/ns", **options)``):

- where the image comes from: ``image`` (already in a registry the cluster pulls from) or
  ``registry`` (the model is packaged and pushed there, and the manifests name the pushed digest);
- manifests: ``replicas`` (2), ``max_replicas`` (3 x replicas; equal to replicas: no autoscaler),
  ``cpu_utilization`` (70: per cent of the CPU request), ``requests`` / ``limits``
  (``{"cpu": "500m", "memory": "1Gi"}`` or ``"cpu=500m,memory=1Gi"``; by default a CPU request and a
  memory request and limit from the model's size, see :mod:`workbench.deployment.sizing`), ``kserve``,
  ``gateway`` (``NAME`` or ``NAMESPACE/NAME`` of the Gateway the HTTPRoute attaches to; without one
  the route attaches to the Service, for a service mesh), ``hostnames``, ``port`` (the Service's, 80),
  ``service_type``, ``service_account``, ``image_pull_secrets``, ``log_claim`` (a
  PersistentVolumeClaim for the prediction log instead of an emptyDir), ``network_policy`` (True),
  ``namespace``;
- ``url`` (the address clients use, e.g. an Ingress; default: found from the cluster) and
  ``timeout`` (seconds a rollout may take).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.config import Settings, get_settings
from workbench.deployment.base import DeploymentSpec, Placement, TargetStatus, TrafficPolicy
from workbench.deployment.sizing import default_resources
from workbench.errors import (
    DeploymentError,
    EngineUnavailableError,
    HealthCheckError,
    InvalidInputError,
    WorkbenchError,
)
from workbench.packaging.context import LOG_DIR, SERVER_PORT, USER_ID

__all__ = [
    "FIELD_MANAGER",
    "KubernetesOptions",
    "KubernetesTarget",
    "ServedVersion",
    "build_manifests",
    "manifests_yaml",
    "parse_target_uri",
    "push_image",
]

#: The field manager of every server-side apply: `kubectl` shows it as the owner of our fields.
FIELD_MANAGER = "workbench"
_LABEL_PREFIX = "workbench.io/"
_CONTAINER = "model-server"
#: KServe finds the predictor's own container by this name, and reads its protocol from PROTOCOL.
_KSERVE_CONTAINER = "kserve-container"
_CHALLENGER_SUFFIX = "-challenger"
_MAX_NAME = 63 - len(_CHALLENGER_SUFFIX)
# A Service name is an RFC 1035 label (it starts with a letter); every object we create shares it.
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# Options the target itself reads (the rest shape the manifests, see KubernetesOptions).
_TARGET_OPTIONS = frozenset({"image", "registry", "base_image", "on_event", "url", "timeout"})
# Waiting reasons after which a pod will not start by itself: stop waiting and report at once.
_HOPELESS = frozenset({"ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                       "CreateContainerError", "CrashLoopBackOff"})
_NO_CLUSTER = (
    "point KUBECONFIG at your cluster's kubeconfig (`export KUBECONFIG=/path/to/kubeconfig`, as "
    "kubectl uses it), or pick a context with `kubectl config use-context NAME`, then deploy to "
    "k8s://CONTEXT/NAMESPACE"
)
_NO_IMAGE = (
    "the k8s target needs an image the cluster can pull: pass image='REGISTRY/REPOSITORY:TAG' (an "
    "image already pushed there, e.g. built with `workbench package MODEL_URI --tag ...` and "
    "`docker push`), or registry='REGISTRY/PATH' to package the model and push it there first"
)


# -- what is rendered ---------------------------------------------------------------------------


def _string_map(value: Any, what: str) -> dict[str, str]:
    """``{"cpu": "500m"}`` or ``"cpu=500m,memory=1Gi"`` -> a checked dict of resource quantities."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        if not all("=" in p for p in pairs):
            raise InvalidInputError(f"{what} takes KEY=QUANTITY pairs such as 'cpu=500m,memory=1Gi', not {value!r}")
        value = dict(p.split("=", 1) for p in pairs)
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping such as {{'cpu': '500m', 'memory': '1Gi'}}")
    checked: dict[str, str] = {}
    for key, quantity in value.items():
        key, quantity = str(key).strip(), str(quantity).strip()
        if not _RESOURCE_NAME.match(key):
            raise InvalidInputError(f"{what}: {key!r} is not a resource name (cpu, memory, nvidia.com/gpu, ...)")
        if not _QUANTITY.match(quantity):
            raise InvalidInputError(
                f"{what}: {quantity!r} for {key} is not a Kubernetes quantity (such as 500m, 2, 512Mi, 1Gi)"
            )
        checked[key] = quantity
    return checked


def _names(value: Any, what: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items if str(v).strip())
    for name in names:
        if not pattern.match(name) or len(name) > 253:
            raise InvalidInputError(f"{what}: {name!r} is not a valid name")
    return names


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{key} is True or False, not {value!r}")
    return value


def _int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():  # from the CLI or a stored record
        number = int(value)
    if number is None or not low <= number <= high:
        raise InvalidInputError(f"{key} must be a whole number from {low} to {high}, not {value!r}")
    return number


@dataclass(frozen=True)
class KubernetesOptions:
    """The options that shape a deployment's manifests (the rest of ``DeploymentSpec.options`` is
    read by the target). Build one with :meth:`from_options`, which checks every value."""

    #: Written into every manifest when set; ``None`` leaves it to ``kubectl apply -n`` (GitOps).
    namespace: str | None = None
    #: Pods per version; also the autoscaler's floor.
    replicas: int = 2
    #: The autoscaler's ceiling; ``None``: 3 x replicas. Equal to ``replicas``: no autoscaler.
    max_replicas: int | None = None
    #: The autoscaler's CPU target: per cent of the CPU request, or of one core without one.
    cpu_utilization: int = 70
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    #: One KServe InferenceService instead of Deployment, Service, autoscaler and budget.
    kserve: bool = False
    #: ``NAME`` or ``NAMESPACE/NAME`` of the Gateway the HTTPRoute attaches to; ``None``: the route
    #: attaches to the deployment's Service (a service mesh's way, GAMMA) and exists only with a challenger.
    gateway: str | None = None
    hostnames: tuple[str, ...] = ()
    #: The Service's port (the pods listen on 8080).
    port: int = 80
    service_type: str = "ClusterIP"
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    #: A PersistentVolumeClaim for the prediction log (shared by the replicas, it outlives pods);
    #: ``None``: an emptyDir per pod.
    log_claim: str | None = None
    #: A NetworkPolicy that lets traffic reach the pods on the server's port only.
    network_policy: bool = True

    def __post_init__(self) -> None:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise InvalidInputError(f"max_replicas ({self.max_replicas}) cannot be below replicas ({self.replicas})")

    @property
    def autoscaler_ceiling(self) -> int:
        """The autoscaler's ceiling; no autoscaler when it equals ``replicas``."""
        return self.max_replicas if self.max_replicas is not None else 3 * self.replicas

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, namespace: str | None = None) -> KubernetesOptions:
        """Check ``options`` (as given to ``wb.deploy``) and keep those that shape manifests.

        ``namespace``, when given, wins over ``options["namespace"]`` (the target URI names it).
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(options) - known - _TARGET_OPTIONS)
        if unknown:
            raise InvalidInputError(
                f"unknown option(s) for the k8s target: {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known | _TARGET_OPTIONS - {'on_event'}))}"
            )
        ns = namespace or options.get("namespace") or None
        if ns is not None and (not _DNS_LABEL.match(str(ns)) or len(str(ns)) > 63):
            raise InvalidInputError(f"{ns!r} is not a valid namespace name")
        replicas = _int(options, "replicas", cls.replicas, 1, 1000)
        max_replicas = options.get("max_replicas")
        service_type = str(options.get("service_type") or cls.service_type)
        if service_type not in _SERVICE_TYPES:
            raise InvalidInputError(f"service_type must be one of {', '.join(_SERVICE_TYPES)}, not {service_type!r}")
        gateway = options.get("gateway") or None
        if gateway is not None:
            parts = str(gateway).split("/")
            if len(parts) > 2 or not all(_DNS_LABEL.match(p) for p in parts):
                raise InvalidInputError(f"gateway is NAME or NAMESPACE/NAME of a Gateway, not {gateway!r}")
        for key in ("service_account", "log_claim"):
            value = options.get(key)
            if value is not None and not _HOSTNAME.match(str(value)):
                raise InvalidInputError(f"{key}: {value!r} is not a valid name")
        kserve = _flag(options, "kserve", False)
        return cls(
            namespace=str(ns) if ns else None,
            replicas=replicas,
            max_replicas=None if max_replicas is None else _int(options, "max_replicas", 0, replicas, 10_000),
            cpu_utilization=_int(options, "cpu_utilization", cls.cpu_utilization, 1, 1000),
            requests=_string_map(options.get("requests"), "requests"),
            limits=_string_map(options.get("limits"), "limits"),
            kserve=kserve,
            gateway=str(gateway) if gateway else None,
            hostnames=_names(options.get("hostnames"), "hostnames", _HOSTNAME),
            port=_int(options, "port", cls.port, 1, 65535),
            service_type=service_type,
            service_account=str(options["service_account"]) if options.get("service_account") else None,
            image_pull_secrets=_names(options.get("image_pull_secrets"), "image_pull_secrets", _HOSTNAME),
            log_claim=str(options["log_claim"]) if options.get("log_claim") else None,
            network_policy=_flag(options, "network_policy", cls.network_policy),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_options` reads it back."""
        return {
            "namespace": self.namespace, "replicas": self.replicas, "max_replicas": self.max_replicas,
            "cpu_utilization": self.cpu_utilization, "requests": dict(self.requests), "limits": dict(self.limits),
            "kserve": self.kserve, "gateway": self.gateway, "hostnames": list(self.hostnames), "port": self.port,
            "service_type": self.service_type, "service_account": self.service_account,
            "image_pull_secrets": list(self.image_pull_secrets), "log_claim": self.log_claim,
            "network_policy": self.network_policy,
        }


@dataclass(frozen=True)
class ServedVersion:
    """One model version as the cluster runs it: which model, from which image."""

    model_uri: str
    model_name: str
    model_version: str | None
    image: str
    #: Size of the model's files; sets the default memory request (``None``: unknown).
    model_bytes: int | None = None

    @classmethod
    def of(cls, spec: DeploymentSpec, image: str, model_bytes: int | None = None) -> ServedVersion:
        """The version a deployment spec asks for, run from ``image``."""
        return cls(spec.model_uri, spec.model_name, spec.model_version, image, model_bytes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (kept in the placement handle)."""
        return {"model_uri": self.model_uri, "model_name": self.model_name,
                "model_version": self.model_version, "image": self.image, "model_bytes": self.model_bytes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServedVersion:
        """Inverse of :meth:`to_dict`."""
        size = data.get("model_bytes")
        return cls(str(data["model_uri"]), str(data["model_name"]), data.get("model_version"), str(data["image"]),
                   int(size) if size is not None else None)


def _label_value(text: str) -> str:
    """``text`` made into a valid label value (at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric ends)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def _check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > _MAX_NAME:
        raise InvalidInputError(
            f"{name!r} cannot name Kubernetes objects: use lowercase letters, digits and '-', starting "
            f"with a letter, at most {_MAX_NAME} characters (a challenger adds {_CHALLENGER_SUFFIX!r})"
        )


def _object_name(name: str, role: str) -> str:
    return name if role == "champion" else name + _CHALLENGER_SUFFIX


def _selector(name: str, role: str) -> dict[str, str]:
    # Never changes over a Deployment's life (its selector is immutable), unlike the model labels.
    return {"app.kubernetes.io/instance": name, _LABEL_PREFIX + "role": role}


def _labels(name: str, version: ServedVersion, role: str) -> dict[str, str]:
    model = _label_value(version.model_name) or "model"
    labels = {
        "app.kubernetes.io/name": model,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": _label_value(version.model_version or ""),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "workbench",
        "app.kubernetes.io/managed-by": "workbench",
        _LABEL_PREFIX + "deployment": name,
        _LABEL_PREFIX + "role": role,
        _LABEL_PREFIX + "model-name": model,
        _LABEL_PREFIX + "model-version": _label_value(version.model_version or ""),
    }
    return {k: v for k, v in labels.items() if v}


def _metadata(name: str, opts: KubernetesOptions, labels: Mapping[str, str],
              annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _server_env(settings: Settings, kserve: bool) -> list[dict[str, str]]:
    env = [
        {"name": "WORKBENCH_MAX_BATCH_SIZE", "value": str(settings.max_batch_size)},
        {"name": "WORKBENCH_MAX_BATCH_WAIT_MS", "value": str(settings.max_batch_wait_ms)},
        {"name": "WORKBENCH_MAX_BODY_BYTES", "value": str(settings.max_body_bytes)},
    ]
    if kserve:  # how KServe learns a custom predictor's protocol (its CustomSpecProtocolEnvVarKey)
        env.append({"name": "PROTOCOL", "value": "v2"})
    return env


def _container(version: ServedVersion, opts: KubernetesOptions, settings: Settings) -> dict[str, Any]:
    kserve = opts.kserve
    container: dict[str, Any] = {
        "name": _KSERVE_CONTAINER if kserve else _CONTAINER,
        "image": version.image,
        # A digest never changes, so a node's copy is the image; a tag may have moved since: ask again.
        "imagePullPolicy": "IfNotPresent" if "@" in version.image else "Always",
        # Knative (KServe's serverless mode) accepts only the port names http1 and h2c.
        "ports": [{"name": "http1" if kserve else "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": _server_env(settings, kserve),
    }
    # Never BestEffort: requests (and a memory limit) from the model's size and the server's measured
    # footprint, the user's options winning key by key.
    container["resources"] = default_resources(version.model_bytes, requests=opts.requests,
                                               limits=opts.limits).to_dict()
    container["readinessProbe"] = {"httpGet": {"path": "/v2/health/ready", "port": SERVER_PORT},
                                   "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3}
    container["livenessProbe"] = {"httpGet": {"path": "/v2/health/live", "port": SERVER_PORT},
                                  "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    if not kserve:
        # The server binds before it loads the model: the startup probe gives loading the settings'
        # health timeout before the liveness probe may restart the pod. (Knative manages start-up
        # itself and refuses startupProbe and lifecycle hooks, so KServe pods go without.)
        container["startupProbe"] = {"httpGet": {"path": "/v2/health/live", "port": SERVER_PORT},
                                     "periodSeconds": 5, "timeoutSeconds": 3,
                                     "failureThreshold": max(1, math.ceil(settings.health_timeout / 5))}
        # Endpoints drop a terminating pod a moment after SIGTERM: keep answering meanwhile.
        container["lifecycle"] = {"preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(5)"]}}}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container["volumeMounts"] = [{"name": "predictions", "mountPath": LOG_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    return container


def _volumes(opts: KubernetesOptions) -> list[dict[str, Any]]:
    log: dict[str, Any] = ({"persistentVolumeClaim": {"claimName": opts.log_claim}} if opts.log_claim
                           else {"emptyDir": {}})
    return [{"name": "predictions", **log}, {"name": "tmp", "emptyDir": {}}]


def _pod_spec(name: str, role: str, version: ServedVersion, opts: KubernetesOptions,
              settings: Settings) -> dict[str, Any]:
    spec: dict[str, Any] = {
        # A model server never talks to the Kubernetes API.
        "automountServiceAccountToken": False,
        # Service-link variables would shadow the server's settings: a Service named "workbench"
        # injects WORKBENCH_PORT=tcp://...
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,  # a PersistentVolumeClaim for the log is writable by the server
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(version, opts, settings)],
        "volumes": _volumes(opts),
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": _selector(name, role)},
        }],
    }
    if opts.service_account:
        spec["serviceAccountName"] = opts.service_account
    if opts.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    return spec


def _scrape_annotations() -> dict[str, str]:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(SERVER_PORT), "prometheus.io/path": "/metrics"}


def _model_server(name: str, role: str, version: ServedVersion, opts: KubernetesOptions,
                  settings: Settings) -> list[dict[str, Any]]:
    """Deployment, Service, autoscaler and disruption budget of one version."""
    obj = _object_name(name, role)
    labels = _labels(name, version, role)
    selector = _selector(name, role)
    uri_note = {_LABEL_PREFIX + "model-uri": version.model_uri}
    autoscaled = opts.autoscaler_ceiling > opts.replicas
    deployment_spec: dict[str, Any] = {}
    if not autoscaled:
        # With an autoscaler the replica count is its to set: applying one here would undo its work.
        deployment_spec["replicas"] = opts.replicas
    deployment_spec.update({
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": selector},
        # New pods come up before old ones go: a version that never becomes ready serves nothing.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": labels, "annotations": {**_scrape_annotations(), **uri_note}},
            "spec": _pod_spec(name, role, version, opts, settings),
        },
    })
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(obj, opts, labels, uri_note),
         "spec": deployment_spec},
        {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(obj, opts, labels),
         "spec": {"type": opts.service_type, "selector": selector,
                  "ports": [{"name": "http", "port": opts.port, "targetPort": "http", "protocol": "TCP",
                             "appProtocol": "http"}]}},
    ]
    if autoscaled:
        # Every pod has a CPU request (sizing's default or the user's): scale on utilization of it.
        target: dict[str, Any] = {"type": "Utilization", "averageUtilization": opts.cpu_utilization}
        manifests.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(obj, opts, labels),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": obj},
                     "minReplicas": opts.replicas, "maxReplicas": opts.autoscaler_ceiling,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]},
        })
    if opts.network_policy:
        # Ingress only on the server's port (from anywhere: clients, gateways, Prometheus); every other
        # port of the pods is closed. Egress is left alone: the cluster's own policy decides.
        manifests.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _metadata(obj, opts, labels),
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"port": SERVER_PORT, "protocol": "TCP"}]}]},
        })
    manifests.append({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _metadata(obj, opts, labels),
        # maxUnavailable (not minAvailable) never blocks a node drain, even with one replica;
        # AlwaysAllow lets a drain evict pods that are not ready anyway.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    })
    return manifests


def _weights(share: float) -> tuple[int, int]:
    """(champion, challenger) HTTPRoute weights for a challenger share, in the smallest exact scale."""
    scale = next((s for s in (100, 1000, 10_000) if abs(share * s - round(share * s)) < 1e-9), 10_000)
    challenger = round(share * scale)
    return scale - challenger, challenger


def _route(name: str, opts: KubernetesOptions, champion: ServedVersion, challenger: ServedVersion | None,
           policy: TrafficPolicy | None) -> dict[str, Any]:
    """The HTTPRoute in front of the version Services (Gateway API v1, standard channel)."""
    if opts.gateway:
        gw_ns, _, gw_name = opts.gateway.rpartition("/")
        parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw_name}
        if gw_ns:
            parent["namespace"] = gw_ns
    else:  # GAMMA: a mesh routes calls to the Service by this route
        parent = {"group": "", "kind": "Service", "name": name}

    def backend(role: str) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": _object_name(name, role), "port": opts.port}

    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    if challenger is None or policy is None:
        rule["backendRefs"] = [backend("champion")]
    elif policy.mode == "shadow":
        # Only the champion's answer reaches clients; the mirror's responses are dropped.
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {"backendRef": backend("challenger")}}]
        rule["backendRefs"] = [backend("champion")]
    else:
        first, second = _weights(policy.challenger_share)
        rule["backendRefs"] = [{**backend("champion"), "weight": first}, {**backend("challenger"), "weight": second}]
    spec: dict[str, Any] = {"parentRefs": [parent]}
    if opts.hostnames:
        spec["hostnames"] = list(opts.hostnames)
    spec["rules"] = [rule]
    labels = {k: v for k, v in _labels(name, champion, "champion").items() if not k.startswith(_LABEL_PREFIX + "role")}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": _metadata(name, opts, labels), "spec": spec}


def _inference_service(name: str, opts: KubernetesOptions, version: ServedVersion, canary_percent: int | None,
                       settings: Settings) -> dict[str, Any]:
    """A KServe InferenceService whose predictor is our own container (custom predictor, V2)."""
    container = _container(version, opts, settings)
    predictor: dict[str, Any] = {"minReplicas": opts.replicas, "maxReplicas": opts.autoscaler_ceiling}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    predictor["labels"] = _labels(name, version, "champion")
    predictor["annotations"] = {**_scrape_annotations(), _LABEL_PREFIX + "model-uri": version.model_uri}
    if opts.service_account:
        predictor["serviceAccountName"] = opts.service_account
    if opts.image_pull_secrets:
        predictor["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    # Knative takes only some pod-level security fields by default: the restrictions sit on the
    # container, which is all "restricted" asks (emptyDir volumes are writable by any uid).
    predictor["containers"] = [container]
    predictor["volumes"] = _volumes(opts)
    labels = _labels(name, version, "champion")
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": _metadata(name, opts, labels, {_LABEL_PREFIX + "model-uri": version.model_uri}),
            "spec": {"predictor": predictor}}


def _canary_percent(policy: TrafficPolicy) -> int:
    if policy.mode == "shadow":
        raise InvalidInputError(
            "KServe's canary rollout splits traffic and cannot mirror it: use a share of traffic with "
            "kserve, or shadow mode without kserve (a Gateway API HTTPRoute with a RequestMirror filter)"
        )
    percent = policy.challenger_share * 100
    if abs(percent - round(percent)) > 1e-9:
        raise InvalidInputError(
            f"KServe's canaryTrafficPercent is a whole per cent: {policy.challenger_share} is not "
            "(use a share such as 0.1 or 0.05)"
        )
    return round(percent)


def _render(name: str, opts: KubernetesOptions, champion: ServedVersion, challenger: ServedVersion | None,
            policy: TrafficPolicy | None, settings: Settings) -> list[dict[str, Any]]:
    _check_name(name)
    if challenger is not None and policy is None:
        policy = TrafficPolicy()
    if opts.kserve:
        if challenger is None or policy is None:
            return [_inference_service(name, opts, champion, None, settings)]
        # KServe keeps the last ready revision (the champion) for the rest of the traffic.
        return [_inference_service(name, opts, challenger, _canary_percent(policy), settings)]
    manifests = _model_server(name, "champion", champion, opts, settings)
    if challenger is not None:
        manifests += _model_server(name, "challenger", challenger, opts, settings)
    if challenger is not None or opts.gateway:
        manifests.append(_route(name, opts, champion, challenger, policy))
    return manifests


def build_manifests(
    spec: DeploymentSpec,
    image: str,
    *,
    challenger: DeploymentSpec | None = None,
    challenger_image: str | None = None,
    policy: TrafficPolicy | None = None,
    namespace: str | None = None,
    settings: Settings | None = None,
    model_bytes: int | None = None,
    challenger_model_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """The Kubernetes manifests that serve ``spec`` from ``image``: a pure function, no cluster needed.

    Options come from ``spec.options`` (see :class:`KubernetesOptions`); ``namespace`` wins over
    ``spec.options["namespace"]``. With ``challenger`` (and its image), traffic is shared by
    ``policy`` (default: 10 % split). ``settings`` (default: the current ones) give the server's
    batching limits and the start-up allowance. ``model_bytes`` (and ``challenger_model_bytes``), the
    size of the model's files, set the default memory request (:mod:`workbench.deployment.sizing`;
    ``requests`` / ``limits`` options win). Example::

        docs = build_manifests(spec, "REGISTRY/churn:3", namespace="models")
        print(manifests_yaml(docs))
    """
    opts = KubernetesOptions.from_options(spec.options, namespace=namespace)
    second = None
    if challenger is not None:
        if not challenger_image:
            raise InvalidInputError("a challenger needs its own image (challenger_image)")
        second = ServedVersion.of(challenger, challenger_image, challenger_model_bytes)
    return _render(spec.name, opts, ServedVersion.of(spec, image, model_bytes), second, policy,
                   settings or get_settings())


def manifests_yaml(manifests: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """Multi-document YAML (``---`` between objects), as ``kubectl apply -f`` and GitOps tools read it;
    ``header`` lines become comments at the top."""
    import yaml

    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.safe_dump_all([dict(m) for m in manifests], sort_keys=False, default_flow_style=False,
                                         explicit_start=True)


# -- target URIs and images ---------------------------------------------------------------------


def parse_target_uri(uri: str) -> tuple[str | None, str | None]:
    """(context, namespace) of ``k8s://CONTEXT/NAMESPACE``; ``None`` means the kubeconfig's.

    A context name may hold ``/`` (EKS names do): the namespace is what follows the last one, so
    such a context always needs a namespace after it.
    """
    scheme, _, rest = uri.partition(":")
    if scheme.strip().lower() != "k8s":
        raise InvalidInputError(f"{uri!r} is not a k8s target URI (k8s://CONTEXT/NAMESPACE)")
    rest = rest.removeprefix("//")
    context, slash, namespace = rest.rpartition("/")
    if not slash:
        context, namespace = rest, ""
    if namespace and (not _DNS_LABEL.match(namespace) or len(namespace) > 63):
        raise InvalidInputError(f"{namespace!r} in {uri!r} is not a valid namespace name")
    return context or None, namespace or None


def _split_reference(reference: str) -> tuple[str, str]:
    """``host:5000/team/model:3`` -> (``host:5000/team/model``, ``3``)."""
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, "latest"
    return repository, tag


def push_image(reference: str) -> str:
    """Push a local image to its registry (Docker SDK, the engine's credentials); returns the
    reference by digest (``REPOSITORY@sha256:...``) so manifests name exactly what was pushed."""
    import docker.errors

    from workbench._docker import docker_client

    repository, tag = _split_reference(reference)
    registry = repository.split("/", 1)[0]
    digest = None
    try:
        for line in docker_client().api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise DeploymentError(
                    f"pushing {reference} failed: {line['error']}. Check the registry name; if it needs "
                    f"credentials, log in first (`docker login {registry}`)"
                )
            digest = (line.get("aux") or {}).get("Digest") or digest
    except docker.errors.APIError as exc:
        raise DeploymentError(f"the Docker engine could not push {reference}: {exc.explanation or exc}") from exc
    return f"{repository}@{digest}" if digest else reference


def _image_repository(model_name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"


# -- the cluster --------------------------------------------------------------------------------


def _kubeconfig() -> str | None:
    """The kubeconfig kubectl would read, or None when there is none."""
    configured = os.environ.get("KUBECONFIG")
    if configured:
        return configured
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.exists() else None


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    try:
        message = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or getattr(exc, "reason", None) or exc)


class _Cluster:
    """One Kubernetes context, reached through the ``kubernetes`` client's dynamic client."""

    def __init__(self, context: str | None) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        kubeconfig = _kubeconfig()
        try:
            if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                self.api = client.ApiClient(configuration)
                self.context: str | None = None
                self.default_namespace = Path(
                    "/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip() or "default"
            elif kubeconfig is None:
                raise EngineUnavailableError(
                    f"no Kubernetes cluster is configured (KUBECONFIG is not set and ~/.kube/config does not "
                    f"exist): {_NO_CLUSTER}"
                )
            else:
                contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
                chosen = next((c for c in contexts if c["name"] == context), None) if context else active
                if chosen is None:
                    names = ", ".join(sorted(c["name"] for c in contexts)) or "none"
                    raise EngineUnavailableError(
                        f"the kubeconfig {kubeconfig} has no context {context!r} (it has: {names}): "
                        f"{_NO_CLUSTER}"
                    )
                self.context = chosen["name"]
                self.default_namespace = chosen.get("context", {}).get("namespace") or "default"
                self.api = config.new_client_from_config(config_file=kubeconfig, context=self.context)
        except ConfigException as exc:
            raise EngineUnavailableError(
                f"the kubeconfig {kubeconfig or ''} cannot be used ({exc}): {_NO_CLUSTER}") from exc
        except OSError as exc:
            raise EngineUnavailableError(f"the Kubernetes configuration cannot be read ({exc}): {_NO_CLUSTER}") from exc
        self.server = str(self.api.configuration.host)
        try:
            client.VersionApi(self.api).get_code(_request_timeout=15)
            from kubernetes.dynamic import DynamicClient

            self.dynamic = DynamicClient(self.api)
        except client.ApiException as exc:
            if exc.status in (401, 403):
                raise EngineUnavailableError(
                    f"the cluster at {self.server} refused our credentials ({_api_message(exc)}): renew them "
                    f"(`kubectl auth whoami` shows who you are there) or {_NO_CLUSTER}"
                ) from exc
            raise EngineUnavailableError(
                f"the cluster at {self.server} answered {exc.status}: {_api_message(exc)}") from exc
        except Exception as exc:  # urllib3 connection errors, TLS errors, timeouts
            raise EngineUnavailableError(
                f"the Kubernetes cluster at {self.server} (context {self.context or 'in-cluster'}) does not answer "
                f"({type(exc).__name__}: {exc}): start it or {_NO_CLUSTER}"
            ) from exc

    def resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            hint = {
                "HTTPRoute": "install the Gateway API CRDs and a gateway or mesh that implements them, "
                             "or serve one version at a time",
                "InferenceService": "install KServe, or deploy without kserve=True",
            }.get(kind, "check the cluster's Kubernetes version")
            raise DeploymentError(f"the cluster has no {kind} ({api_version}): {hint}") from exc
        except Exception as exc:  # discovery is a request too
            raise EngineUnavailableError(f"lost the cluster at {self.server} while looking up {kind}: {exc}") from exc

    def _call(self, what: str, namespace: str, action: Callable[[], Any]) -> Any:
        from kubernetes.dynamic import exceptions as k8s

        try:
            return action()
        except k8s.NotFoundError:
            raise
        except k8s.ForbiddenError as exc:
            raise DeploymentError(
                f"not allowed to {what} in namespace {namespace}: {_api_message(exc)}; ask a cluster admin for "
                "a Role that allows it"
            ) from exc
        except k8s.DynamicApiError as exc:
            raise DeploymentError(f"the cluster refused to {what}: {_api_message(exc)}") from exc
        except Exception as exc:
            raise EngineUnavailableError(f"lost the cluster at {self.server} while trying to {what}: {exc}") from exc

    def apply(self, manifest: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        """Server-side apply ``manifest``; returns the object as the cluster stored it."""
        from kubernetes.dynamic import exceptions as k8s

        kind, name = manifest["kind"], manifest["metadata"]["name"]
        resource = self.resource(manifest["apiVersion"], kind)
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
        try:
            applied = self._call(f"apply {kind} {name}", namespace, lambda: self.dynamic.server_side_apply(
                resource, body=body, name=name, namespace=namespace, field_manager=FIELD_MANAGER,
                force_conflicts=True, _request_timeout=60))
        except k8s.NotFoundError as exc:
            raise DeploymentError(
                f"cannot apply {kind} {name}: {_api_message(exc)} (does the namespace exist? "
                f"`kubectl create namespace {namespace}`)"
            ) from exc
        return dict(applied.to_dict())

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        from kubernetes.dynamic import exceptions as k8s

        resource = self.resource(api_version, kind)
        try:
            found = self._call(f"read {kind} {name}", namespace, lambda: resource.get(
                name=name, namespace=namespace, _request_timeout=30))
        except k8s.NotFoundError:
            return None
        return dict(found.to_dict())

    def list(self, api_version: str, kind: str, namespace: str, *, labels: Mapping[str, str] | None = None,
             fields: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind in ``namespace`` matching label equalities and a field selector."""
        resource = self.resource(api_version, kind)
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or None
        found = self._call(f"list {kind}", namespace, lambda: resource.get(
            namespace=namespace, label_selector=selector, field_selector=fields, _request_timeout=30))
        return list(found.to_dict().get("items") or [])

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        """Delete the object (its pods and replica sets go with it); gone already is fine."""
        from kubernetes.dynamic import exceptions as k8s
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return  # the kind was never installed, so nothing of it was made
        try:
            self._call(f"delete {kind} {name}", namespace, lambda: resource.delete(
                name=name, namespace=namespace, propagation_policy="Background", _request_timeout=60))
        except k8s.NotFoundError:
            pass

    def pod_log(self, pod: str, namespace: str, container: str, tail: int, previous: bool = False) -> str:
        """The last ``tail`` lines a container wrote (or its previous run, after a restart)."""
        from kubernetes.dynamic import exceptions as k8s

        query = [("container", container), ("tailLines", tail)] + ([("previous", "true")] if previous else [])
        try:
            response = self._call(f"read the log of pod {pod}", namespace, lambda: self.dynamic.request(
                "get", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query_params=query,
                serialize=False, _request_timeout=30))
        except (k8s.NotFoundError, DeploymentError) as exc:
            return f"(no log: {_api_message(exc)})"
        data = response.data if hasattr(response, "data") else response
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _describe_pod(pod: Mapping[str, Any]) -> tuple[list[str], bool]:
    """Lines about a pod's containers, and whether one of them will not start by itself."""
    lines, hopeless = [], False
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    scheduled: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
    if scheduled.get("status") == "False":
        lines.append(f"pod {name}: not scheduled ({scheduled.get('reason')}: {scheduled.get('message')})")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state:
            reason = state["waiting"].get("reason", "")
            hopeless |= reason in _HOPELESS
            now = f"waiting ({reason}: {state['waiting'].get('message', '')})"
        elif "terminated" in state:
            t = state["terminated"]
            now = f"terminated ({t.get('reason')}, exit code {t.get('exitCode')})"
        else:
            now = "running"
        last = (cs.get("lastState") or {}).get("terminated")
        before = f"; last run ended {last.get('reason')} with exit code {last.get('exitCode')}" if last else ""
        lines.append(f"pod {name} container {cs.get('name')}: {now}, ready={cs.get('ready')}, "
                     f"restarts={cs.get('restartCount', 0)}{before}")
    if not lines:
        lines.append(f"pod {name}: {status.get('phase', 'Pending')}")
    return lines, hopeless


def _event_lines(events: Iterable[Mapping[str, Any]], limit: int = 8) -> list[str]:
    def when(e: Mapping[str, Any]) -> str:
        created = (e.get("metadata") or {}).get("creationTimestamp")
        return str(e.get("lastTimestamp") or e.get("eventTime") or created or "")

    chosen = sorted(events, key=when)[-limit:]
    return [f"  {e.get('type')} {e.get('reason')} ({(e.get('involvedObject') or {}).get('kind')} "
            f"{(e.get('involvedObject') or {}).get('name')}): {str(e.get('message', '')).strip()}" for e in chosen]


# -- the target ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """What a placement's handle holds: enough to render exactly what runs."""

    name: str
    context: str | None
    namespace: str
    options: KubernetesOptions
    champion: ServedVersion
    challenger: ServedVersion | None = None
    policy: TrafficPolicy | None = None
    #: Every image pushed or given so far, by model URI (a rollback reuses its image).
    images: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, placement: Placement) -> _State:
        h = placement.handle
        try:
            policy = h.get("policy")
            return cls(
                name=str(h["name"]), context=h.get("context"), namespace=str(h["namespace"]),
                options=KubernetesOptions.from_options(h["options"]),
                champion=ServedVersion.from_dict(h["champion"]),
                challenger=ServedVersion.from_dict(h["challenger"]) if h.get("challenger") else None,
                policy=TrafficPolicy(**policy) if policy else None, images=dict(h.get("images") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise WorkbenchError(f"the deployment record is not one this version understands: {exc}") from exc

    def manifests(self, settings: Settings) -> list[dict[str, Any]]:
        """What this state looks like in the cluster."""
        return _render(self.name, self.options, self.champion, self.challenger, self.policy, settings)

    def with_images(self, *versions: ServedVersion) -> _State:
        return replace(self, images={**self.images, **{v.model_uri: v.image for v in versions}})

    def placement(self, url: str) -> Placement:
        return Placement(url=url, handle={
            "name": self.name, "context": self.context, "namespace": self.namespace,
            "kind": "kserve" if self.options.kserve else "deployment",
            "options": self.options.to_dict(),
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "policy": self.policy.to_dict() if self.policy and self.challenger else None,
            "images": dict(self.images),
        })


def _model_bytes(model_uri: str) -> int | None:
    """The size of the model's files, for its default memory request; ``None`` when it cannot be read."""
    from workbench.registry import model_size

    try:
        return model_size(model_uri)
    except WorkbenchError:
        return None


def _key(manifest: Mapping[str, Any]) -> tuple[str, str, str]:
    return manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]


class KubernetesTarget:
    """Runs model images on a Kubernetes cluster (Target and SupportsChallenger).

    ``deploy`` and ``update`` return once the rollout is complete; a rollout that fails is undone and
    raises :class:`HealthCheckError` with the pods' events and container states.
    """

    def __init__(self, uri: str = "k8s://") -> None:
        self.uri = uri
        self.context, self.namespace = parse_target_uri(uri)
        self._clusters: dict[str | None, _Cluster] = {}

    def _connect(self, context: str | None) -> _Cluster:
        """The cluster of ``context`` (None: the kubeconfig's current one), connected once."""
        if context not in self._clusters:
            self._clusters[context] = _Cluster(context)
        return self._clusters[context]

    def _cluster_for(self, state: _State) -> _Cluster:
        # The context resolved at deploy time, even if the kubeconfig's current context changed since.
        return self._connect(state.context)

    def _timeout(self, options: Mapping[str, Any]) -> float:
        value = options.get("timeout")
        if value is None:
            return max(get_settings().health_timeout, 300.0)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"timeout is a number of seconds, not {value!r}") from None

    # -- images ---------------------------------------------------------------------------------

    @staticmethod
    def _check_image_source(spec: DeploymentSpec, state: _State | None) -> None:
        """Fail before anything is built or applied when no image can be had for ``spec``.

        An ``image`` option always belongs to ``spec``'s model: the manager never carries an image
        given for one version over to another.
        """
        image, registry = spec.options.get("image"), spec.options.get("registry")
        if image or registry or (state is not None and spec.model_uri in state.images):
            return
        raise InvalidInputError(_NO_IMAGE)

    def _image(self, spec: DeploymentSpec, state: _State | None) -> str:
        """An image of ``spec``'s model that the cluster can pull (packaged and pushed if need be)."""
        self._check_image_source(spec, state)
        image, registry = spec.options.get("image"), spec.options.get("registry")
        if image:
            return str(image)
        if state is not None and spec.model_uri in state.images:
            return state.images[spec.model_uri]
        from workbench.packaging import package

        # Tagged by version for people; the manifests name the pushed digest, which never moves.
        version = spec.model_version or f"r{spec.revision}"
        tag = f"{str(registry).rstrip('/')}/{_image_repository(spec.model_name)}:{version}"
        record = package(spec.model_uri, tag=tag, on_event=spec.options.get("on_event"),
                         base_image=spec.options.get("base_image"))
        return push_image(record.tag)

    # -- applying -------------------------------------------------------------------------------

    def _reconcile(self, cluster: _Cluster, state_before: _State | None, state_after: _State,
                   timeout: float) -> None:
        """Make the cluster look like ``state_after``: apply, wait for the rollouts, then switch
        routes and remove what is no longer wanted. A rollout that fails puts ``state_before`` back
        and removes what was new, then raises."""
        settings = get_settings()
        before = state_before.manifests(settings) if state_before else []
        after = state_after.manifests(settings)
        ns = state_after.namespace
        routes = [m for m in after if m["kind"] == "HTTPRoute"]
        objects = [m for m in after if m["kind"] != "HTTPRoute"]
        try:
            applied = [cluster.apply(m, ns) for m in objects]
            for obj in applied:
                if obj["kind"] == "Deployment":
                    self._wait_for_deployment(cluster, obj, ns, timeout)
                elif obj["kind"] == "InferenceService":
                    self._wait_for_inference_service(cluster, obj, ns, timeout)
        except HealthCheckError as exc:
            self._undo(cluster, before, after, ns)
            outcome = "The version before keeps serving." if before else "Nothing was left behind."
            raise HealthCheckError(f"{exc}\n{outcome}") from exc
        except BaseException:
            self._undo(cluster, before, after, ns)
            raise
        for route in routes:  # only once every version it names is ready
            cluster.apply(route, ns)
        wanted = {_key(m) for m in after}
        for m in sorted(before, key=lambda m: m["kind"] != "HTTPRoute"):  # routes go before their Services
            if _key(m) not in wanted:
                cluster.delete(m["apiVersion"], m["kind"], m["metadata"]["name"], ns)

    @staticmethod
    def _undo(cluster: _Cluster, before: list[dict[str, Any]], after: list[dict[str, Any]], ns: str) -> None:
        # Old pods never stopped (maxUnavailable 0; Knative keeps the last ready revision), so
        # putting the old objects back is enough: no need to wait for them.
        try:
            for m in before:
                cluster.apply(m, ns)
            known = {_key(m) for m in before}
            for m in after:
                if _key(m) not in known:
                    cluster.delete(m["apiVersion"], m["kind"], m["metadata"]["name"], ns)
        except WorkbenchError:
            pass  # the original error says more; the cluster may be what failed

    def _wait_for_deployment(self, cluster: _Cluster, applied: Mapping[str, Any], ns: str, timeout: float) -> None:
        """Like ``kubectl rollout status``: observed generation, updated, available replicas."""
        name = applied["metadata"]["name"]
        generation = int(applied["metadata"].get("generation") or 0)
        deadline = time.monotonic() + timeout
        while True:
            dep = cluster.get("apps/v1", "Deployment", name, ns)
            if dep is None:
                raise HealthCheckError(f"Deployment {ns}/{name} was deleted while it rolled out")
            status = dep.get("status") or {}
            wanted = int((dep.get("spec") or {}).get("replicas", 1))
            # Until the controller has seen this generation, the status (and the newest replica
            # set) still describe the version before.
            if int(status.get("observedGeneration") or 0) >= generation:
                updated = int(status.get("updatedReplicas") or 0)
                if (updated >= wanted and int(status.get("replicas") or 0) <= updated
                        and int(status.get("availableReplicas") or 0) >= updated):
                    return
                if _condition(dep, "Progressing").get("reason") == "ProgressDeadlineExceeded":
                    raise HealthCheckError(self._failure(cluster, dep, ns, "made no progress"))
                if _condition(dep, "ReplicaFailure").get("status") == "True":
                    raise HealthCheckError(self._failure(cluster, dep, ns, "cannot create pods"))
                if any(_describe_pod(p)[1] for p in self._new_pods(cluster, dep, ns)):
                    raise HealthCheckError(self._failure(cluster, dep, ns, "has pods that cannot start"))
            if time.monotonic() > deadline:
                raise HealthCheckError(self._failure(cluster, dep, ns, f"did not roll out within {timeout:.0f} s"))
            time.sleep(2)

    @staticmethod
    def _new_pods(cluster: _Cluster, dep: Mapping[str, Any], ns: str) -> list[dict[str, Any]]:
        """The pods of the Deployment's newest ReplicaSet (old pods may be fine; these must start)."""
        selector = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
        revision = (dep["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        newest = next((rs for rs in cluster.list("apps/v1", "ReplicaSet", ns, labels=selector)
                       if (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
                       == revision), None)
        if newest is None:
            return []
        template_hash = (newest["metadata"].get("labels") or {}).get("pod-template-hash")
        return cluster.list("v1", "Pod", ns, labels={**selector, "pod-template-hash": str(template_hash)})

    def _failure(self, cluster: _Cluster, dep: Mapping[str, Any], ns: str, what: str) -> str:
        """What went wrong: conditions, container states, events and the log of a failing container."""
        name = dep["metadata"]["name"]
        lines = [f"Deployment {ns}/{name} {what}."]
        for cond in (dep.get("status") or {}).get("conditions") or []:
            if cond.get("status") != "True" or cond.get("type") == "ReplicaFailure":
                lines.append(f"condition {cond.get('type')}={cond.get('status')}: {cond.get('reason')}: "
                             f"{cond.get('message')}")
        pods = self._new_pods(cluster, dep, ns)
        lines += self._pods_report(cluster, pods, ns, _CONTAINER)
        events = [e for e in cluster.list("v1", "Event", ns, fields="involvedObject.kind=ReplicaSet")
                  if str((e.get("involvedObject") or {}).get("name", "")).startswith(name + "-")
                  and e.get("type") == "Warning"]
        events += cluster.list("v1", "Event", ns, fields=f"involvedObject.kind=Deployment,involvedObject.name={name}")
        if events:
            lines.append("events of the Deployment and its replica sets:")
            lines += _event_lines(events)
        return "\n".join(lines)

    @staticmethod
    def _pods_report(cluster: _Cluster, pods: Sequence[Mapping[str, Any]], ns: str, container: str) -> list[str]:
        lines: list[str] = []
        shown_log = False
        for pod in list(pods)[:4]:
            pod_lines, _ = _describe_pod(pod)
            lines += pod_lines
            pod_name = pod["metadata"]["name"]
            events = cluster.list("v1", "Event", ns, fields=f"involvedObject.name={pod_name}")
            lines += _event_lines(events, limit=6)
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            restarted = any(int(cs.get("restartCount") or 0) > 0 for cs in statuses)
            if not shown_log and (restarted or any("terminated" in (cs.get("state") or {}) for cs in statuses)):
                shown_log = True
                log = cluster.pod_log(pod_name, ns, container, 15, previous=restarted)
                lines.append(f"last lines of {pod_name}'s {'previous run' if restarted else 'log'}:")
                lines += [f"  {line}" for line in log.splitlines()]
        if not pods:
            lines.append("no pods were created")
        return lines

    def _wait_for_inference_service(self, cluster: _Cluster, applied: Mapping[str, Any], ns: str,
                                    timeout: float) -> None:
        name = applied["metadata"]["name"]
        generation = int(applied["metadata"].get("generation") or 0)
        started = time.monotonic()
        deadline = started + timeout
        while True:
            isvc = cluster.get("serving.kserve.io/v1beta1", "InferenceService", name, ns)
            if isvc is None:
                raise HealthCheckError(f"InferenceService {ns}/{name} was deleted while it rolled out")
            status = isvc.get("status") or {}
            predictor = (status.get("components") or {}).get("predictor") or {}
            if status.get("observedGeneration"):
                current = int(status["observedGeneration"]) >= generation
            else:  # a Ready left from before this change must not count: give the controller a moment,
                # then the newest revision must be the ready one
                current = (time.monotonic() - started > 5
                           and predictor.get("latestCreatedRevision") == predictor.get("latestReadyRevision"))
            if current and _condition(isvc, "Ready").get("status") == "True":
                return
            pods = cluster.list("v1", "Pod", ns, labels={"serving.kserve.io/inferenceservice": name})
            hopeless = any(_describe_pod(p)[1] for p in pods)
            if hopeless or time.monotonic() > deadline:
                lines = [f"InferenceService {ns}/{name} "
                         f"{'has pods that cannot start' if hopeless else f'was not ready within {timeout:.0f} s'}."]
                for cond in (isvc.get("status") or {}).get("conditions") or []:
                    if cond.get("status") != "True":
                        lines.append(f"condition {cond.get('type')}={cond.get('status')}: {cond.get('reason')}: "
                                     f"{cond.get('message')}")
                lines += self._pods_report(cluster, pods, ns, _KSERVE_CONTAINER)
                raise HealthCheckError("\n".join(lines))
            time.sleep(2)

    def _url(self, cluster: _Cluster, state: _State, options: Mapping[str, Any]) -> str:
        """Where clients reach the deployment: the ``url`` option, else what the cluster says, else
        the Service's name in the cluster's DNS."""
        if options.get("url"):
            return str(options["url"]).rstrip("/")
        try:
            found = self._published_url(cluster, state)
        except WorkbenchError:  # e.g. not allowed to read a Gateway elsewhere: the deployment is fine
            found = None
        if found:
            return found
        port = "" if state.options.port == 80 or state.options.kserve else f":{state.options.port}"
        return f"http://{state.name}.{state.namespace}.svc.cluster.local{port}"

    @staticmethod
    def _published_url(cluster: _Cluster, state: _State) -> str | None:
        ns, opts = state.namespace, state.options
        if opts.kserve:
            isvc = cluster.get("serving.kserve.io/v1beta1", "InferenceService", state.name, ns) or {}
            url = (isvc.get("status") or {}).get("url")
            if url:
                return str(url).rstrip("/")
        if opts.hostnames and not opts.hostnames[0].startswith("*"):
            return f"http://{opts.hostnames[0]}"
        if opts.gateway:
            gw_ns, _, gw_name = opts.gateway.rpartition("/")
            gateway = cluster.get("gateway.networking.k8s.io/v1", "Gateway", gw_name, gw_ns or ns) or {}
            addresses = (gateway.get("status") or {}).get("addresses") or []
            if addresses:
                return f"http://{addresses[0]['value']}"
        if not opts.kserve:
            service = cluster.get("v1", "Service", state.name, ns) or {}
            ingress = (((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]
            host = ingress.get("ip") or ingress.get("hostname")
            if host:
                return f"http://{host}" + ("" if opts.port == 80 else f":{opts.port}")
        return None

    def _options(self, spec: DeploymentSpec, namespace: str) -> KubernetesOptions:
        return KubernetesOptions.from_options(spec.options, namespace=namespace)

    def _commit(self, cluster: _Cluster, before: _State | None, after: _State,
                options: Mapping[str, Any]) -> Placement:
        self._reconcile(cluster, before, after, self._timeout(options))
        return after.placement(self._url(cluster, after, options))

    # -- Target ---------------------------------------------------------------------------------

    def deploy(self, spec: DeploymentSpec) -> Placement:
        """Apply the manifests and wait for the rollout; on failure nothing is left behind."""
        KubernetesOptions.from_options(spec.options, namespace=self.namespace)  # bad options fail first
        _check_name(spec.name)
        self._check_image_source(spec, None)
        cluster = self._connect(self.context)  # before a long build, so a missing cluster fails fast
        image = self._image(spec, None)
        namespace = self.namespace or spec.options.get("namespace") or cluster.default_namespace
        version = ServedVersion.of(spec, image, _model_bytes(spec.model_uri))
        state = _State(spec.name, cluster.context, str(namespace), self._options(spec, str(namespace)),
                       version).with_images(version)
        return self._commit(cluster, None, state, spec.options)

    def update(self, current: Placement, spec: DeploymentSpec) -> Placement:
        """Roll the champion to ``spec`` (any challenger is removed); a rollout that fails is undone."""
        state = _State.of(current)
        self._check_image_source(spec, state)
        cluster = self._cluster_for(state)
        version = ServedVersion.of(spec, self._image(spec, state), _model_bytes(spec.model_uri))
        after = replace(state, options=self._options(spec, state.namespace), champion=version, challenger=None,
                        policy=None).with_images(version)
        return self._commit(cluster, state, after, spec.options)

    def status(self, placement: Placement) -> TargetStatus:
        """The champion's rollout and readiness, from its Deployment (or InferenceService)."""
        state = _State.of(placement)
        try:
            cluster = self._cluster_for(state)
            if state.options.kserve:
                return self._kserve_status(cluster, state)
            return self._deployment_status(cluster, state)
        except EngineUnavailableError as exc:
            return TargetStatus("unhealthy", False, f"the cluster cannot be reached: {exc}")

    @staticmethod
    def _deployment_status(cluster: _Cluster, state: _State) -> TargetStatus:
        dep = cluster.get("apps/v1", "Deployment", state.name, state.namespace)
        if dep is None:
            return TargetStatus("gone", False, f"Deployment {state.namespace}/{state.name} no longer exists")
        status = dep.get("status") or {}
        wanted = int((dep.get("spec") or {}).get("replicas", 1))  # the API's default
        ready = int(status.get("readyReplicas") or 0)
        detail = f"{ready}/{wanted} pods ready in {state.namespace}, version {state.champion.model_version or '-'}"
        if state.challenger is not None:
            other = cluster.get("apps/v1", "Deployment", _object_name(state.name, "challenger"), state.namespace)
            ready_other = int(((other or {}).get("status") or {}).get("readyReplicas") or 0)
            mode = state.policy.mode if state.policy else "split"
            detail += f"; challenger {state.challenger.model_version or '-'} ({mode}, {ready_other} ready)"
        if wanted == 0:
            return TargetStatus("exited", False, detail + "; scaled to zero")
        progressing = _condition(dep, "Progressing")
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return TargetStatus("unhealthy", ready > 0, f"{detail}; {progressing.get('message')}")
        if ready > 0 and _condition(dep, "Available").get("status") == "True":
            return TargetStatus("running", True, detail)
        if int(status.get("observedGeneration") or 0) < int(dep["metadata"].get("generation") or 0) or \
                int(status.get("updatedReplicas") or 0) < wanted:
            return TargetStatus("starting", False, detail)
        return TargetStatus("unhealthy", False, f"{detail}; {_condition(dep, 'Available').get('message', '')}")

    @staticmethod
    def _kserve_status(cluster: _Cluster, state: _State) -> TargetStatus:
        isvc = cluster.get("serving.kserve.io/v1beta1", "InferenceService", state.name, state.namespace)
        if isvc is None:
            return TargetStatus("gone", False, f"InferenceService {state.namespace}/{state.name} no longer exists")
        ready = _condition(isvc, "Ready")
        predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
        traffic = predictor.get("traffic") or []
        split = ", ".join(f"{t.get('revisionName')} {t.get('percent')}%" for t in traffic)
        detail = f"InferenceService {state.namespace}/{state.name}" + (f" ({split})" if split else "")
        if ready.get("status") == "True":
            return TargetStatus("running", True, detail)
        if ready.get("status") == "Unknown":
            return TargetStatus("starting", False, f"{detail}; {ready.get('reason')}: {ready.get('message')}")
        return TargetStatus("unhealthy", False, f"{detail}; {ready.get('reason')}: {ready.get('message')}")

    def logs(self, placement: Placement, tail: int = 100) -> str:
        """The model servers' output, pod by pod (the challenger's after the champion's)."""
        state = _State.of(placement)
        cluster = self._cluster_for(state)
        if state.options.kserve:
            return self._pod_logs(cluster, state.namespace, {"serving.kserve.io/inferenceservice": state.name},
                                  _KSERVE_CONTAINER, tail)
        text = self._pod_logs(cluster, state.namespace, _selector(state.name, "champion"), _CONTAINER, tail)
        if state.challenger is not None:
            text += "\n--- challenger ---\n" + self._pod_logs(
                cluster, state.namespace, _selector(state.name, "challenger"), _CONTAINER, tail)
        return text

    @staticmethod
    def _pod_logs(cluster: _Cluster, ns: str, labels: Mapping[str, str], container: str, tail: int) -> str:
        pods = cluster.list("v1", "Pod", ns, labels=labels)
        if not pods:
            return "(no pods)"
        return "\n".join(f"--- pod {p['metadata']['name']} ---\n"
                         + cluster.pod_log(p["metadata"]["name"], ns, container, tail) for p in pods)

    def delete(self, placement: Placement) -> None:
        """Delete every object of the deployment (its pods go with them)."""
        state = _State.of(placement)
        cluster = self._cluster_for(state)
        for m in sorted(state.manifests(get_settings()), key=lambda m: m["kind"] != "HTTPRoute"):
            cluster.delete(m["apiVersion"], m["kind"], m["metadata"]["name"], state.namespace)

    # -- SupportsChallenger ---------------------------------------------------------------------

    def start_challenger(self, current: Placement, spec: DeploymentSpec, policy: TrafficPolicy) -> Placement:
        """Roll out ``spec`` beside the champion, then route by ``policy`` (an HTTPRoute, or a KServe
        canary); if the challenger never becomes ready, it is removed and the champion untouched."""
        state = _State.of(current)
        if state.options.kserve:
            _canary_percent(policy)  # a policy KServe cannot follow fails before anything changes
        self._check_image_source(spec, state)
        cluster = self._cluster_for(state)
        version = ServedVersion.of(spec, self._image(spec, state), _model_bytes(spec.model_uri))
        after = replace(state, challenger=version, policy=policy).with_images(version)
        return self._commit(cluster, state, after, spec.options)

    def set_policy(self, placement: Placement, policy: TrafficPolicy) -> Placement:
        """Change the split or switch between split and shadow; no pod restarts."""
        state = _State.of(placement)
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger: start one first")
        return self._commit(self._cluster_for(state), state, replace(state, policy=policy), {"url": placement.url})

    def promote(self, placement: Placement) -> Placement:
        """The challenger's version becomes the champion and the challenger's objects go."""
        state = _State.of(placement)
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to promote")
        cluster = self._cluster_for(state)
        keep_url = {"url": placement.url}
        final = replace(state, champion=state.challenger, challenger=None, policy=None)
        if state.options.kserve:
            # Dropping canaryTrafficPercent sends all traffic to the latest revision, the challenger's.
            return self._commit(cluster, state, final, keep_url)
        # All traffic to the challenger while the champion's Deployment rolls to its version, then
        # the champion's Deployment serves it alone: the names clients and routes use never change.
        everything_to_challenger = replace(state, policy=TrafficPolicy("split", 1.0))
        self._commit(cluster, state, everything_to_challenger, keep_url)
        rolled = replace(everything_to_challenger, champion=state.challenger)
        try:
            self._commit(cluster, everything_to_challenger, rolled, keep_url)
        except WorkbenchError:
            self._commit(cluster, everything_to_challenger, state, keep_url)
            raise
        return self._commit(cluster, rolled, final, keep_url)

    def abort(self, placement: Placement) -> Placement:
        """The challenger's objects go; the champion takes all traffic."""
        state = _State.of(placement)
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to abort")
        cluster = self._cluster_for(state)
        keep_url = {"url": placement.url}
        final = replace(state, challenger=None, policy=None)
        if state.options.kserve:
            # A canary of 0 % sends everything back to the champion's revision at once; then the
            # champion's spec is applied again so the InferenceService describes one version.
            back = replace(state, policy=TrafficPolicy("split", 0.0))
            self._commit(cluster, state, back, keep_url)
            return self._commit(cluster, back, final, keep_url)
        return self._commit(cluster, state, final, keep_url)
