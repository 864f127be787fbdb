"""What the user gives the ``k8s`` target: its URI and the options that shape the manifests.

Every value is checked here, once, with an error that says what a valid one looks like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.deployment.base import check_known_options, option_flag, option_int
from workbench.errors import InvalidInputError

__all__ = ["TARGET_OPTIONS", "KubernetesOptions", "RolloutOptions", "parse_target_uri"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


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
    #: Resource requests per pod (``{"cpu": "500m", "memory": "1Gi"}``); unset ones come from the
    #: server's measured footprint.
    requests: Mapping[str, str] = field(default_factory=dict)
    #: Resource limits per pod; unset ones come from the server's measured footprint.
    limits: Mapping[str, str] = field(default_factory=dict)
    #: One KServe InferenceService instead of Deployment, Service, autoscaler and budget.
    kserve: bool = False
    #: ``NAME`` or ``NAMESPACE/NAME`` of the Gateway the HTTPRoute attaches to; ``None``: the route
    #: attaches to the deployment's Service (a service mesh's way, GAMMA) and exists only with a challenger.
    gateway: str | None = None
    #: Host names the HTTPRoute answers for.
    hostnames: tuple[str, ...] = ()
    #: The Service's port (the pods listen on 8080).
    port: int = 80
    #: The Service's type: ClusterIP, NodePort or LoadBalancer.
    service_type: str = "ClusterIP"
    #: The ServiceAccount the pods run as; ``None``: the namespace's default.
    service_account: str | None = None
    #: Secrets the pods pull the image with, from a private registry.
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
        check_known_options("k8s", options, set(cls.__dataclass_fields__) | TARGET_OPTIONS)
        ns = namespace or options.get("namespace") or None
        if ns is not None and (not _DNS_LABEL.match(str(ns)) or len(str(ns)) > 63):
            raise InvalidInputError(f"{ns!r} is not a valid namespace name")
        replicas = option_int(options, "replicas", cls.replicas, 1, 1000)
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
        kserve = option_flag(options, "kserve", False)
        return cls(
            namespace=str(ns) if ns else None,
            replicas=replicas,
            max_replicas=None if max_replicas is None else option_int(options, "max_replicas", 0, replicas, 10_000),
            cpu_utilization=option_int(options, "cpu_utilization", cls.cpu_utilization, 1, 1000),
            requests=_string_map(options.get("requests"), "requests"),
            limits=_string_map(options.get("limits"), "limits"),
            kserve=kserve,
            gateway=str(gateway) if gateway else None,
            hostnames=_names(options.get("hostnames"), "hostnames", _HOSTNAME),
            port=option_int(options, "port", cls.port, 1, 65535),
            service_type=service_type,
            service_account=str(options["service_account"]) if options.get("service_account") else None,
            image_pull_secrets=_names(options.get("image_pull_secrets"), "image_pull_secrets", _HOSTNAME),
            log_claim=str(options["log_claim"]) if options.get("log_claim") else None,
            network_policy=option_flag(options, "network_policy", cls.network_policy),
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
class RolloutOptions:
    """The options the target reads itself (the rest shape the manifests, see :class:`KubernetesOptions`):
    where the image comes from, the address clients use, and how long a rollout may take."""

    #: An image already in a registry the cluster pulls from.
    image: str | None = None
    #: A registry to package the model and push it to (the manifests name the pushed digest).
    registry: str | None = None
    #: The base of the image packaged for ``registry``.
    base_image: str | None = None
    #: The address clients use (an Ingress, say); ``None``: found from the cluster.
    url: str | None = None
    #: Seconds a rollout may take; ``None``: the settings' health timeout, at least 300.
    timeout: float | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RolloutOptions:
        """Read the target's own options from ``options`` (the manifests' ones are left alone)."""
        timeout = options.get("timeout")
        if timeout is not None:
            try:
                timeout = float(timeout)
            except (TypeError, ValueError):
                raise InvalidInputError(f"timeout is a number of seconds, not {timeout!r}") from None

        def text(key: str) -> str | None:
            value = options.get(key)
            return str(value) if value else None

        return cls(image=text("image"), registry=text("registry"), base_image=text("base_image"), url=text("url"),
                   timeout=timeout)


#: Options the target itself reads (the rest shape the manifests, see KubernetesOptions).
TARGET_OPTIONS = frozenset(RolloutOptions.__dataclass_fields__)


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

