"""The manifests of a deployment: one pure function from what is served to Kubernetes objects.

:func:`build_manifests` is what ``workbench manifests`` prints for GitOps users and what the target
applies; no cluster is needed to call it.

With the router (the default, not with KServe) a deployment ``NAME`` is:

- the router: Deployment ``NAME-router`` (``workbench route``, the champion's image unless
  ``router_image`` says), its route table in ConfigMap ``NAME-router`` and its admin token in Secret
  ``NAME-router`` (env ``WORKBENCH_ROUTER_TOKEN``), the clients' Service ``NAME``, a
  PodDisruptionBudget with more than one router pod, and a NetworkPolicy: in on the server's port,
  out to the model servers and the cluster's DNS only;
- the versions: Deployment and Service ``NAME-champion`` (and ``NAME-challenger``), each with its
  autoscaler, budget and NetworkPolicy. The route table names them by Service DNS name
  (``http://NAME-champion.NAMESPACE.svc:80``).

The ConfigMap is the route table's only home: a change of routes is a new ConfigMap, and the router
pods' template carries the table's hash, so the router Deployment rolls to it (new pods read the new
table; the router answers 409 to ``PUT /workbench/router`` there). Each router pod keeps its own
bandit (state in an emptyDir), fed by the feedback that reaches it.

The prediction log: with ``log_secret`` or ``log_url`` every pod writes the shared store
(``WORKBENCH_LOG_URL`` from the Secret's key ``url``; the pod's emptyDir only spools while the store is
away); with ``log_claim`` a shared volume; else (one pod per version only) an emptyDir.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.config import Settings, get_settings
from workbench.deployment.base import DeploymentSpec, TrafficPolicy
from workbench.deployment.targets.kubernetes.objects import (
    LABEL_PREFIX,
    ROLE_LABEL,
    ServedVersion,
    check_name,
    labels as object_labels,
    log_secret_name,
    metadata,
    object_name,
    pod_selector,
    restricted_pod,
    secret,
    security_context,
    served_hosts,
)
from workbench.deployment.targets.kubernetes.options import KubernetesOptions
from workbench.deployment.targets.kubernetes.router_objects import ROUTER_CONTAINER, route_table, router_objects
from workbench.deployment.targets.kubernetes.sizing import default_resources
from workbench.errors import InvalidInputError
from workbench.packaging.context import LOG_DIR, SERVER_PORT

__all__ = ["CONTAINER", "KSERVE_CONTAINER", "ROLE_LABEL", "ROUTER_CONTAINER", "ServedVersion", "build_manifests",
           "canary_percent", "check_name", "check_policy", "log_secret_name", "manifests_yaml", "object_name",
           "pod_selector", "render", "route_table"]

CONTAINER = "model-server"
#: KServe finds the predictor's own container by this name, and reads its protocol from PROTOCOL.
KSERVE_CONTAINER = "kserve-container"


def _server_env(name: str, settings: Settings, opts: KubernetesOptions) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "WORKBENCH_MAX_BATCH_SIZE", "value": str(settings.max_batch_size)},
        {"name": "WORKBENCH_MAX_BATCH_WAIT_MS", "value": str(settings.max_batch_wait_ms)},
        {"name": "WORKBENCH_MAX_BODY_BYTES", "value": str(settings.max_body_bytes)},
        {"name": "WORKBENCH_ALLOWED_HOSTS", "value": served_hosts(name, opts, settings.allowed_hosts)},
    ]
    secret = log_secret_name(name, opts)
    if secret:
        # Every pod of both versions writes the store under the deployment's name; the URL (and its
        # password) comes from the Secret, never from a manifest.
        env.append({"name": "WORKBENCH_LOG_URL", "valueFrom": {"secretKeyRef": {"name": secret, "key": "url"}}})
        env.append({"name": "WORKBENCH_DEPLOYMENT", "value": name})
    if opts.kserve:  # how KServe learns a custom predictor's protocol (its CustomSpecProtocolEnvVarKey)
        env.append({"name": "PROTOCOL", "value": "v2"})
    return env


def _log_volume(opts: KubernetesOptions) -> tuple[str, dict[str, Any]]:
    """The volume at the server's log folder: the claim that holds the log, the spool of a store
    (kept while the store is away, drained when it returns), or the log of a single pod."""
    if opts.log_claim:
        return "predictions", {"persistentVolumeClaim": {"claimName": opts.log_claim}}
    if opts.log_store:
        return "log-spool", {"emptyDir": {}}
    return "predictions", {"emptyDir": {}}


def _container(name: str, version: ServedVersion, opts: KubernetesOptions, settings: Settings) -> dict[str, Any]:
    kserve = opts.kserve
    container: dict[str, Any] = {
        "name": KSERVE_CONTAINER if kserve else CONTAINER,
        "image": version.image,
        # A digest never changes, so a node's copy is the image; a tag may have moved since: ask again.
        "imagePullPolicy": "IfNotPresent" if "@" in version.image else "Always",
        # Knative (KServe's serverless mode) accepts only the port names http1 and h2c.
        "ports": [{"name": "http1" if kserve else "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": _server_env(name, settings, opts),
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
    container["securityContext"] = security_context()
    container["volumeMounts"] = [{"name": _log_volume(opts)[0], "mountPath": LOG_DIR},
                                 {"name": "tmp", "mountPath": "/tmp"}]
    return container


def _volumes(opts: KubernetesOptions) -> list[dict[str, Any]]:
    log_name, log = _log_volume(opts)
    return [{"name": log_name, **log}, {"name": "tmp", "emptyDir": {}}]


def _pod_spec(name: str, role: str, version: ServedVersion, opts: KubernetesOptions,
              settings: Settings) -> dict[str, Any]:
    return restricted_pod({
        "containers": [_container(name, version, opts, settings)],
        "volumes": _volumes(opts),
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": pod_selector(name, role)},
        }],
    }, opts)


def _scrape_annotations() -> dict[str, str]:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(SERVER_PORT), "prometheus.io/path": "/metrics"}


def _model_server(name: str, role: str, version: ServedVersion, opts: KubernetesOptions,
                  settings: Settings) -> list[dict[str, Any]]:
    """Deployment, Service, autoscaler, NetworkPolicy and disruption budget of one version."""
    obj = object_name(name, role, routed=opts.routed)
    labels = object_labels(name, version, role)
    selector = pod_selector(name, role)
    uri_note = {LABEL_PREFIX + "model-uri": version.model_uri}
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
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(obj, opts, labels, uri_note),
         "spec": deployment_spec},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(obj, opts, labels),
         # Behind the router, a version's Service is the router's backend, inside the cluster only.
         "spec": {"type": "ClusterIP" if opts.routed else opts.service_type, "selector": selector,
                  "ports": [{"name": "http", "port": opts.port, "targetPort": "http", "protocol": "TCP",
                             "appProtocol": "http"}]}},
    ]
    if autoscaled:
        # Every pod has a CPU request (sizing's default or the user's): scale on utilization of it.
        target: dict[str, Any] = {"type": "Utilization", "averageUtilization": opts.cpu_utilization}
        manifests.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata(obj, opts, labels),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": obj},
                     "minReplicas": opts.replicas, "maxReplicas": opts.autoscaler_ceiling,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]},
        })
    if opts.network_policy:
        # Ingress only on the server's port (from anywhere: the router, clients, gateways, Prometheus);
        # every other port of the pods is closed. Egress is left alone: the cluster's own policy
        # decides (a server reaches its log store).
        manifests.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(obj, opts, labels),
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"port": SERVER_PORT, "protocol": "TCP"}]}]},
        })
    manifests.append({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(obj, opts, labels),
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
    """The HTTPRoute in front of the version Services (Gateway API v1, standard channel); with the
    router, the Gateway's route to the router's Service, which shares the traffic itself."""
    if opts.gateway:
        gw_ns, _, gw_name = opts.gateway.rpartition("/")
        parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw_name}
        if gw_ns:
            parent["namespace"] = gw_ns
    else:  # GAMMA: a mesh routes calls to the Service by this route
        parent = {"group": "", "kind": "Service", "name": name}

    def backend(role: str) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": object_name(name, role), "port": opts.port}

    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    if opts.routed:
        rule["backendRefs"] = [{"group": "", "kind": "Service", "name": name, "port": opts.port}]
    elif challenger is None or policy is None:
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
    labels = {k: v for k, v in object_labels(name, champion, "champion").items() if k != ROLE_LABEL}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": metadata(name, opts, labels), "spec": spec}


def _inference_service(name: str, opts: KubernetesOptions, version: ServedVersion, canary: int | None,
                       settings: Settings) -> dict[str, Any]:
    """A KServe InferenceService whose predictor is our own container (custom predictor, V2)."""
    container = _container(name, version, opts, settings)
    predictor: dict[str, Any] = {"minReplicas": opts.replicas, "maxReplicas": opts.autoscaler_ceiling}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    predictor["labels"] = object_labels(name, version, "champion")
    predictor["annotations"] = {**_scrape_annotations(), LABEL_PREFIX + "model-uri": version.model_uri}
    if opts.service_account:
        predictor["serviceAccountName"] = opts.service_account
    if opts.image_pull_secrets:
        predictor["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    # Knative takes only some pod-level security fields by default: the restrictions sit on the
    # container, which is all "restricted" asks (emptyDir volumes are writable by any uid).
    predictor["containers"] = [container]
    predictor["volumes"] = _volumes(opts)
    labels = object_labels(name, version, "champion")
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": metadata(name, opts, labels, {LABEL_PREFIX + "model-uri": version.model_uri}),
            "spec": {"predictor": predictor}}


def canary_percent(policy: TrafficPolicy) -> int:
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


def check_policy(policy: TrafficPolicy | None, opts: KubernetesOptions) -> None:
    """Refuse a traffic policy these manifests cannot follow, before anything is built or applied:
    only the router follows a bandit (an HTTPRoute's weights and a KServe canary's percent are
    static), and KServe's canary neither mirrors nor takes fractions of a per cent."""
    if policy is not None and opts.kserve and policy.mode != "bandit":
        canary_percent(policy)
    if policy is not None and policy.mode == "bandit" and not opts.routed:
        way = "a KServe canary's percent is" if opts.kserve else "an HTTPRoute's weights are"
        raise InvalidInputError(
            f"a bandit needs the workbench router: {way} fixed until changed, nothing moves it by the rewards "
            "fed back. Deploy with the router (router=True, the default; not with kserve), or use a share "
            "(share=0.1) or shadow=True"
        )


def render(name: str, opts: KubernetesOptions, champion: ServedVersion, challenger: ServedVersion | None,
           policy: TrafficPolicy | None, settings: Settings, *, router_token: str | None = None) -> list[dict[str, Any]]:
    """Every object of a deployment, in the order they are applied (see :mod:`.rollout`).

    ``router_token``: the router's admin token, written into its Secret (``None``: no Secret).
    """
    check_name(name)
    if challenger is not None and policy is None:
        policy = TrafficPolicy()
    check_policy(policy if challenger is not None else None, opts)
    manifests: list[dict[str, Any]] = []
    if opts.log_url:
        labels = {k: v for k, v in object_labels(name, champion, "champion").items() if k != ROLE_LABEL}
        manifests.append(secret(f"{name}-log", opts, labels, {"url": opts.log_url}))
    if opts.kserve:
        if challenger is None or policy is None:
            return [*manifests, _inference_service(name, opts, champion, None, settings)]
        # KServe keeps the last ready revision (the champion) for the rest of the traffic.
        return [*manifests, _inference_service(name, opts, challenger, canary_percent(policy), settings)]
    manifests += _model_server(name, "champion", champion, opts, settings)
    if challenger is not None:
        manifests += _model_server(name, "challenger", challenger, opts, settings)
    if opts.routed:
        manifests += router_objects(name, opts, champion, route_table(name, opts, champion, challenger, policy),
                             router_token, settings)
        if opts.gateway:
            manifests.append(_route(name, opts, champion, challenger, policy))
    elif challenger is not None or opts.gateway:
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
    size of the model's files, set the default memory request (:mod:`~workbench.deployment.targets.kubernetes.sizing`;
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
    return render(spec.name, opts, ServedVersion.of(spec, image, model_bytes), second, policy,
                   settings or get_settings())


def manifests_yaml(manifests: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """Multi-document YAML (``---`` between objects), as ``kubectl apply -f`` and GitOps tools read it;
    ``header`` lines become comments at the top."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # a value used twice is written twice, never as &id001
            return True

    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.dump_all([dict(m) for m in manifests], Dumper=Dumper, sort_keys=False,
                                    default_flow_style=False, explicit_start=True)

