"""What every object of a deployment shares: its names, labels and metadata, the version it serves,
and the restricted pod its containers run in (model servers and the router alike)."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.deployment.base import DeploymentSpec
from workbench.deployment.targets.kubernetes.options import KubernetesOptions
from workbench.errors import InvalidInputError
from workbench.packaging.context import USER_ID

__all__ = ["LABEL_PREFIX", "ROLE_LABEL", "ServedVersion", "check_name", "labels", "log_secret_name", "metadata",
           "object_name", "pod_selector", "restricted_pod", "secret", "security_context",
           "served_hosts"]

LABEL_PREFIX = "workbench.io/"
#: The label naming an object's part of a deployment: champion, challenger or router.
ROLE_LABEL = LABEL_PREFIX + "role"
_CHALLENGER_SUFFIX = "-challenger"
_MAX_NAME = 63 - len(_CHALLENGER_SUFFIX)
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


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


def check_name(name: str) -> None:
    """Refuse a deployment name that cannot name its Kubernetes objects (with its longest suffix)."""
    if not _NAME.match(name) or len(name) > _MAX_NAME:
        raise InvalidInputError(
            f"{name!r} cannot name Kubernetes objects: use lowercase letters, digits and '-', starting "
            f"with a letter, at most {_MAX_NAME} characters (a challenger adds {_CHALLENGER_SUFFIX!r})"
        )


def object_name(name: str, role: str, *, routed: bool = False) -> str:
    """The name of the objects of ``role`` (champion, challenger, router). Without the router the champion's
    objects take the deployment's own name; with it the clients' Service does, in front of the router."""
    if role == "champion":
        return name + "-champion" if routed else name
    return name + ("-router" if role == "router" else _CHALLENGER_SUFFIX)


def log_secret_name(name: str, opts: KubernetesOptions) -> str | None:
    """The Secret whose key ``url`` holds the log store's URL (``None``: no store)."""
    return opts.log_secret or (f"{name}-log" if opts.log_url else None)


def pod_selector(name: str, role: str) -> dict[str, str]:
    """The labels that select the pods of ``role`` (champion, challenger, router)."""
    # Never changes over a Deployment's life (its selector is immutable), unlike the model labels.
    return {"app.kubernetes.io/instance": name, LABEL_PREFIX + "role": role}


def labels(name: str, version: ServedVersion, role: str) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` and ``workbench.io/*`` labels of the objects of ``role``."""
    model = _label_value(version.model_name) or "model"
    labels = {
        "app.kubernetes.io/name": model,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": _label_value(version.model_version or ""),
        "app.kubernetes.io/component": "router" if role == "router" else "model-server",
        "app.kubernetes.io/part-of": "workbench",
        "app.kubernetes.io/managed-by": "workbench",
        LABEL_PREFIX + "deployment": name,
        LABEL_PREFIX + "role": role,
        LABEL_PREFIX + "model-name": model,
        LABEL_PREFIX + "model-version": _label_value(version.model_version or ""),
    }
    return {k: v for k, v in labels.items() if v}


def metadata(name: str, opts: KubernetesOptions, labels: Mapping[str, str],
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An object's metadata: its name, the namespace when the options name one, labels, annotations."""
    meta: dict[str, Any] = {"name": name}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": USER_ID,
    "runAsGroup": USER_ID,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}



def security_context() -> dict[str, Any]:
    """A container's restricted security context (a copy: each container writes its own)."""
    return copy.deepcopy(_SECURITY_CONTEXT)


def restricted_pod(parts: dict[str, Any], opts: KubernetesOptions) -> dict[str, Any]:
    """A pod spec of ``parts`` (containers, volumes, ...) with what model server and router pods
    share: no API token, no service links, the restricted security context, the user's service
    account and pull secrets."""
    spec: dict[str, Any] = {
        # Neither a model server nor the router talks to the Kubernetes API.
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
        **parts,
    }
    if opts.service_account:
        spec["serviceAccountName"] = opts.service_account
    if opts.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    return spec


def secret(name: str, opts: KubernetesOptions, labels: Mapping[str, str], data: Mapping[str, str]) -> dict[str, Any]:
    """An Opaque Secret holding ``data`` (base64, as the API keeps it: applied again, it is unchanged)."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(name, opts, labels), "type": "Opaque",
            "data": encoded}


def served_hosts(name: str, opts: Any, allowed_hosts: tuple[str, ...]) -> str:
    """``WORKBENCH_ALLOWED_HOSTS`` of a deployment's pods (the servers' and the router's DNS
    rebinding guard): the deployment's Service names, bare and in the namespace's DNS (names inside
    the cluster, which no outside page can re-point), the HTTPRoute's host names and the user's
    own. Under KServe any name: Knative's ingress routes only the host names it assigned."""
    if opts.kserve:
        return "*"
    ns = opts.namespace or "default"
    bare = [name, *(f"{name}-{role}" for role in ("champion", "challenger", "router"))]
    names = [*bare, f".{ns}.svc", f".{ns}.svc.cluster.local", *opts.hostnames, *allowed_hosts]
    return ",".join(dict.fromkeys(names))
