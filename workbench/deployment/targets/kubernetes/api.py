"""The Kubernetes API as the ``k8s`` target needs it: one context, a few verbs, readable failures.

The ``kubernetes`` client is imported only when a cluster is used. Its errors are translated here,
at the border, into workbench errors that say what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from workbench.errors import DeploymentError, EngineUnavailableError

__all__ = ["FIELD_MANAGER", "Cluster", "condition", "describe_pod", "event_lines"]

#: The field manager of every server-side apply: `kubectl` shows it as the owner of our fields.
FIELD_MANAGER = "workbench"
# Waiting reasons after which a pod will not start by itself: stop waiting and report at once.
_HOPELESS = frozenset({"ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                       "CreateContainerError", "CrashLoopBackOff"})
_NO_CLUSTER = (
    "point KUBECONFIG at your cluster's kubeconfig (`export KUBECONFIG=/path/to/kubeconfig`, as "
    "kubectl uses it), or pick a context with `kubectl config use-context NAME`, then deploy to "
    "k8s://CONTEXT/NAMESPACE"
)


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


class Cluster:
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
        """The dynamic client's resource of a kind; a kind the cluster lacks says what to install."""
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


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The status condition of type ``kind`` of an object (empty when it has none yet)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def describe_pod(pod: Mapping[str, Any]) -> tuple[list[str], bool]:
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


def event_lines(events: Iterable[Mapping[str, Any]], limit: int = 8) -> list[str]:
    """The newest ``limit`` events, oldest first, one indented line each."""
    def when(e: Mapping[str, Any]) -> str:
        created = (e.get("metadata") or {}).get("creationTimestamp")
        return str(e.get("lastTimestamp") or e.get("eventTime") or created or "")

    chosen = sorted(events, key=when)[-limit:]
    return [f"  {e.get('type')} {e.get('reason')} ({(e.get('involvedObject') or {}).get('kind')} "
            f"{(e.get('involvedObject') or {}).get('name')}): {str(e.get('message', '')).strip()}" for e in chosen]


