"""Rollouts on a cluster: apply manifests, wait like ``kubectl rollout status``, undo what fails.

A rollout that fails is reported with the conditions, the pods' container states and events, and
the last lines of a container that stopped, then undone: the objects before are applied again and
the new ones removed.

Objects go in four steps, each waiting for its Deployments: Secrets (the pods read them), the model
servers, the router (its route table first, then its Deployment, which rolls to a new table), and
last the clients' Service and the HTTPRoutes. So a route never names a version before it is ready, and a version the routes
no longer name is removed only once every router pod has the new table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.deployment.targets.kubernetes.api import Cluster, condition, describe_pod, event_lines
from workbench.deployment.targets.kubernetes.manifests import CONTAINER, KSERVE_CONTAINER, ROLE_LABEL
from workbench.errors import HealthCheckError, WorkbenchError

__all__ = ["reconcile"]


def _key(manifest: Mapping[str, Any]) -> tuple[str, str, str]:
    return manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]


def _step(manifest: Mapping[str, Any]) -> int:
    """When an object is applied: Secrets, model servers, the router, routes."""
    if manifest["kind"] == "Secret" and _role(manifest) != "router":
        return 0
    if manifest["kind"] == "HTTPRoute":
        return 3
    if _role(manifest) == "router":  # the clients' Service turns to the router once it is ready
        return 3 if manifest["kind"] == "Service" else 2
    return 1


def _role(manifest: Mapping[str, Any]) -> str | None:
    return ((manifest.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL)


def reconcile(cluster: Cluster, before: list[dict[str, Any]], after: list[dict[str, Any]], ns: str,
              timeout: float) -> None:
    """Make the cluster look like ``after`` (manifests) in namespace ``ns``: apply step by step (see
    the module docs), waiting for each step's rollouts, then remove what is no longer wanted. A
    rollout that fails puts ``before`` back and removes what was new, then raises
    :class:`HealthCheckError` with the pods' events and container states."""
    try:
        for step in range(3):
            applied = [cluster.apply(m, ns) for m in after if _step(m) == step]
            for obj in applied:
                if obj["kind"] == "Deployment":
                    _wait_for_deployment(cluster, obj, ns, timeout)
                elif obj["kind"] == "InferenceService":
                    _wait_for_inference_service(cluster, obj, ns, timeout)
    except HealthCheckError as exc:
        _undo(cluster, before, after, ns)
        outcome = "The version before keeps serving." if before else "Nothing was left behind."
        raise HealthCheckError(f"{exc}\n{outcome}") from exc
    except BaseException:
        _undo(cluster, before, after, ns)
        raise
    for route in (m for m in after if _step(m) == 3):  # only once every backend it names is ready
        cluster.apply(route, ns)
    wanted = {_key(m) for m in after}
    # Routes go before the Services they name, the router before the versions it reaches.
    for m in sorted(before, key=lambda m: (m["kind"] != "HTTPRoute", _role(m) != "router")):
        if _key(m) not in wanted:
            cluster.delete(m["apiVersion"], m["kind"], m["metadata"]["name"], ns)

def _undo(cluster: Cluster, before: list[dict[str, Any]], after: list[dict[str, Any]], ns: str) -> None:
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

def _wait_for_deployment(cluster: Cluster, applied: Mapping[str, Any], ns: str, timeout: float) -> None:
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
            if condition(dep, "Progressing").get("reason") == "ProgressDeadlineExceeded":
                raise HealthCheckError(_failure(cluster, dep, ns, "made no progress"))
            if condition(dep, "ReplicaFailure").get("status") == "True":
                raise HealthCheckError(_failure(cluster, dep, ns, "cannot create pods"))
            if any(describe_pod(p)[1] for p in _new_pods(cluster, dep, ns)):
                raise HealthCheckError(_failure(cluster, dep, ns, "has pods that cannot start"))
        if time.monotonic() > deadline:
            raise HealthCheckError(_failure(cluster, dep, ns, f"did not roll out within {timeout:.0f} s"))
        time.sleep(2)

def _new_pods(cluster: Cluster, dep: Mapping[str, Any], ns: str) -> list[dict[str, Any]]:
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

def _failure(cluster: Cluster, dep: Mapping[str, Any], ns: str, what: str) -> str:
    """What went wrong: conditions, container states, events and the log of a failing container."""
    name = dep["metadata"]["name"]
    lines = [f"Deployment {ns}/{name} {what}."]
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True" or cond.get("type") == "ReplicaFailure":
            lines.append(f"condition {cond.get('type')}={cond.get('status')}: {cond.get('reason')}: "
                         f"{cond.get('message')}")
    pods = _new_pods(cluster, dep, ns)
    lines += _pods_report(cluster, pods, ns, CONTAINER)
    events = [e for e in cluster.list("v1", "Event", ns, fields="involvedObject.kind=ReplicaSet")
              if str((e.get("involvedObject") or {}).get("name", "")).startswith(name + "-")
              and e.get("type") == "Warning"]
    events += cluster.list("v1", "Event", ns, fields=f"involvedObject.kind=Deployment,involvedObject.name={name}")
    if events:
        lines.append("events of the Deployment and its replica sets:")
        lines += event_lines(events)
    return "\n".join(lines)

def _pods_report(cluster: Cluster, pods: Sequence[Mapping[str, Any]], ns: str, container: str) -> list[str]:
    lines: list[str] = []
    shown_log = False
    for pod in list(pods)[:4]:
        pod_lines, _ = describe_pod(pod)
        lines += pod_lines
        pod_name = pod["metadata"]["name"]
        events = cluster.list("v1", "Event", ns, fields=f"involvedObject.name={pod_name}")
        lines += event_lines(events, limit=6)
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

def _wait_for_inference_service(cluster: Cluster, applied: Mapping[str, Any], ns: str,
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
        if current and condition(isvc, "Ready").get("status") == "True":
            return
        pods = cluster.list("v1", "Pod", ns, labels={"serving.kserve.io/inferenceservice": name})
        hopeless = any(describe_pod(p)[1] for p in pods)
        if hopeless or time.monotonic() > deadline:
            lines = [f"InferenceService {ns}/{name} "
                     f"{'has pods that cannot start' if hopeless else f'was not ready within {timeout:.0f} s'}."]
            for cond in (isvc.get("status") or {}).get("conditions") or []:
                if cond.get("status") != "True":
                    lines.append(f"condition {cond.get('type')}={cond.get('status')}: {cond.get('reason')}: "
                                 f"{cond.get('message')}")
            lines += _pods_report(cluster, pods, ns, KSERVE_CONTAINER)
            raise HealthCheckError("\n".join(lines))
        time.sleep(2)
