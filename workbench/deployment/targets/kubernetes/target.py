"""The ``k8s`` target: applies the manifests, waits for the rollouts, undoes a rollout that fails.

Server-side apply (field manager ``workbench``), a wait like ``kubectl rollout status``, and on
failure a report of the pods' events and container states; challengers through a Gateway API
HTTPRoute or a KServe canary. Where the image comes from: ``image`` (already in a registry the
cluster pulls from) or ``registry`` (the model is packaged and pushed there, and the manifests name
the pushed digest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.config import Settings, get_settings
from workbench.deployment.base import DeploymentSpec, OnEvent, Placement, TargetStatus, TrafficPolicy
from workbench.deployment.catalog import TargetInfo, describe_options
from workbench.packaging.push import push_image, registry_tag
from workbench.deployment.targets.kubernetes.api import Cluster, condition
from workbench.deployment.targets.kubernetes.manifests import (
    CONTAINER,
    KSERVE_CONTAINER,
    ServedVersion,
    canary_percent,
    check_name,
    object_name,
    pod_selector,
    render,
)
from workbench.deployment.targets.kubernetes.options import KubernetesOptions, RolloutOptions, parse_target_uri
from workbench.deployment.targets.kubernetes.rollout import reconcile
from workbench.errors import (
    DeploymentError,
    EngineUnavailableError,
    InvalidInputError,
    WorkbenchError,
)

__all__ = ["KubernetesHandle", "KubernetesTarget", "push_image"]

_NO_IMAGE = (
    "the k8s target needs an image the cluster can pull: pass image='REGISTRY/REPOSITORY:TAG' (an "
    "image already pushed there, e.g. built with `workbench package MODEL_URI --tag ...` and "
    "`docker push`), or registry='REGISTRY/PATH' to package the model and push it there first"
)


@dataclass(frozen=True)
class KubernetesHandle:
    """The handle of a ``k8s`` placement: enough to render exactly what runs."""

    name: str
    #: The kubeconfig context resolved at deploy time (``None``: in-cluster).
    context: str | None
    namespace: str
    options: KubernetesOptions
    champion: ServedVersion
    challenger: ServedVersion | None = None
    policy: TrafficPolicy | None = None
    #: Every image pushed or given so far, by model URI (a rollback reuses its image).
    images: Mapping[str, str] = field(default_factory=dict)

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """None: the pods are reached through the cluster, not from this machine."""
        return ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KubernetesHandle:
        """Inverse of :meth:`to_dict`; a record this version cannot read is a clear error."""
        try:
            policy = data.get("policy")
            return cls(
                name=str(data["name"]), context=data.get("context"), namespace=str(data["namespace"]),
                options=KubernetesOptions.from_options(data["options"]),
                champion=ServedVersion.from_dict(data["champion"]),
                challenger=ServedVersion.from_dict(data["challenger"]) if data.get("challenger") else None,
                policy=TrafficPolicy.from_dict(policy) if policy else None, images=dict(data.get("images") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise WorkbenchError(f"the deployment record is not one this version understands: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the deployment record)."""
        return {
            "name": self.name, "context": self.context, "namespace": self.namespace,
            "kind": "kserve" if self.options.kserve else "deployment",
            "options": self.options.to_dict(),
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "policy": self.policy.to_dict() if self.policy and self.challenger else None,
            "images": dict(self.images),
        }

    def manifests(self, settings: Settings) -> list[dict[str, Any]]:
        """What this state looks like in the cluster."""
        return render(self.name, self.options, self.champion, self.challenger, self.policy, settings)

    def with_images(self, *versions: ServedVersion) -> KubernetesHandle:
        """The same handle, remembering the images of ``versions``."""
        return replace(self, images={**self.images, **{v.model_uri: v.image for v in versions}})

    def placement(self, url: str) -> Placement[KubernetesHandle]:
        """The placement of this state at ``url``; its prediction log is read through ``url``."""
        return Placement(url, self, log_sources=(url,))


def _model_bytes(model_uri: str) -> int | None:
    """The size of the model's files, for its default memory request; ``None`` when it cannot be read."""
    from workbench.registry import model_size

    try:
        return model_size(model_uri)
    except WorkbenchError:
        return None


class KubernetesTarget:
    """Runs model images on a Kubernetes cluster (Target and SupportsChallenger).

    ``deploy`` and ``update`` return once the rollout is complete; a rollout that fails is undone and
    raises :class:`HealthCheckError` with the pods' events and container states.
    """

    def __init__(self, uri: str = "k8s://") -> None:
        self.uri = uri
        self.context, self.namespace = parse_target_uri(uri)
        self._clusters: dict[str | None, Cluster] = {}

    @classmethod
    def describe(cls) -> TargetInfo:
        """The ``k8s`` target, for the listing of installed targets."""
        return TargetInfo(
            name="k8s", uri="k8s://CONTEXT/NAMESPACE", cluster=True,
            summary="a Deployment, Service, autoscaler and budget (or a KServe InferenceService) on Kubernetes",
            description=("CONTEXT and NAMESPACE default to the kubeconfig's (`k8s://`). The image comes from "
                         "`image` (already in a registry the cluster pulls from) or is packaged and pushed to "
                         "`registry`. `workbench manifests` prints the same manifests for GitOps."),
            options=describe_options(RolloutOptions, KubernetesOptions, skip=("namespace",)))

    def _connect(self, context: str | None) -> Cluster:
        """The cluster of ``context`` (None: the kubeconfig's current one), connected once."""
        if context not in self._clusters:
            self._clusters[context] = Cluster(context)
        return self._clusters[context]

    def _cluster_for(self, state: KubernetesHandle) -> Cluster:
        # The context resolved at deploy time, even if the kubeconfig's current context changed since.
        return self._connect(state.context)

    @staticmethod
    def _timeout(options: RolloutOptions) -> float:
        return options.timeout if options.timeout is not None else max(get_settings().health_timeout, 300.0)

    # -- images ---------------------------------------------------------------------------------

    @staticmethod
    def _check_image_source(spec: DeploymentSpec, state: KubernetesHandle | None) -> None:
        """Fail before anything is built or applied when no image can be had for ``spec``.

        An ``image`` option always belongs to ``spec``'s model: the manager never carries an image
        given for one version over to another.
        """
        given = RolloutOptions.from_options(spec.options)
        if given.image or given.registry or (state is not None and spec.model_uri in state.images):
            return
        raise InvalidInputError(_NO_IMAGE)

    def _image(self, spec: DeploymentSpec, state: KubernetesHandle | None, on_event: OnEvent | None) -> str:
        """An image of ``spec``'s model that the cluster can pull (packaged and pushed if need be)."""
        self._check_image_source(spec, state)
        given = RolloutOptions.from_options(spec.options)
        if given.image:
            return given.image
        if state is not None and spec.model_uri in state.images:
            return state.images[spec.model_uri]
        from workbench.packaging import package

        # Tagged by version for people; the manifests name the pushed digest, which never moves.
        version = spec.model_version or f"r{spec.revision}"
        tag = registry_tag(str(given.registry), spec.model_name, version)
        record = package(spec.model_uri, tag=tag, on_event=on_event, base_image=given.base_image)
        return push_image(record.tag)

    def _url(self, cluster: Cluster, state: KubernetesHandle, options: RolloutOptions) -> str:
        """Where clients reach the deployment: the ``url`` option, else what the cluster says, else
        the Service's name in the cluster's DNS."""
        if options.url:
            return options.url.rstrip("/")
        try:
            found = self._published_url(cluster, state)
        except WorkbenchError:  # e.g. not allowed to read a Gateway elsewhere: the deployment is fine
            found = None
        if found:
            return found
        port = "" if state.options.port == 80 or state.options.kserve else f":{state.options.port}"
        return f"http://{state.name}.{state.namespace}.svc.cluster.local{port}"

    @staticmethod
    def _published_url(cluster: Cluster, state: KubernetesHandle) -> str | None:
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

    def _commit(self, cluster: Cluster, before: KubernetesHandle | None, after: KubernetesHandle,
                options: RolloutOptions) -> Placement[KubernetesHandle]:
        settings = get_settings()
        reconcile(cluster, before.manifests(settings) if before else [], after.manifests(settings), after.namespace,
                  self._timeout(options))
        return after.placement(self._url(cluster, after, options))

    # -- Target ---------------------------------------------------------------------------------

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Check every option: unknown names and bad values fail before anything starts."""
        KubernetesOptions.from_options(options, namespace=self.namespace)
        RolloutOptions.from_options(options)

    def read_handle(self, data: Mapping[str, Any]) -> KubernetesHandle:
        """The handle of a placement, read back from its record."""
        return KubernetesHandle.from_dict(data)

    def deploy(self, spec: DeploymentSpec, *, on_event: OnEvent | None = None) -> Placement[KubernetesHandle]:
        """Apply the manifests and wait for the rollout; on failure nothing is left behind."""
        self.check_options(spec.options)  # bad options fail first
        check_name(spec.name)
        self._check_image_source(spec, None)
        cluster = self._connect(self.context)  # before a long build, so a missing cluster fails fast
        image = self._image(spec, None, on_event)
        namespace = (self.namespace or KubernetesOptions.from_options(spec.options).namespace
                     or cluster.default_namespace)
        version = ServedVersion.of(spec, image, _model_bytes(spec.model_uri))
        state = KubernetesHandle(spec.name, cluster.context, str(namespace), self._options(spec, str(namespace)),
                       version).with_images(version)
        return self._commit(cluster, None, state, RolloutOptions.from_options(spec.options))

    def update(self, current: Placement[KubernetesHandle], spec: DeploymentSpec, *,
               on_event: OnEvent | None = None) -> Placement[KubernetesHandle]:
        """Roll the champion to ``spec`` (any challenger is removed); a rollout that fails is undone."""
        state = current.handle
        self._check_image_source(spec, state)
        cluster = self._cluster_for(state)
        version = ServedVersion.of(spec, self._image(spec, state, on_event), _model_bytes(spec.model_uri))
        after = replace(state, options=self._options(spec, state.namespace), champion=version, challenger=None,
                        policy=None).with_images(version)
        return self._commit(cluster, state, after, RolloutOptions.from_options(spec.options))

    def status(self, placement: Placement[KubernetesHandle]) -> TargetStatus:
        """The champion's rollout and readiness, from its Deployment (or InferenceService)."""
        state = placement.handle
        try:
            cluster = self._cluster_for(state)
            if state.options.kserve:
                return self._kserve_status(cluster, state)
            return self._deployment_status(cluster, state)
        except EngineUnavailableError as exc:
            return TargetStatus("unhealthy", False, f"the cluster cannot be reached: {exc}")

    @staticmethod
    def _deployment_status(cluster: Cluster, state: KubernetesHandle) -> TargetStatus:
        dep = cluster.get("apps/v1", "Deployment", state.name, state.namespace)
        if dep is None:
            return TargetStatus("gone", False, f"Deployment {state.namespace}/{state.name} no longer exists")
        status = dep.get("status") or {}
        wanted = int((dep.get("spec") or {}).get("replicas", 1))  # the API's default
        ready = int(status.get("readyReplicas") or 0)
        detail = f"{ready}/{wanted} pods ready in {state.namespace}, version {state.champion.model_version or '-'}"
        if state.challenger is not None:
            other = cluster.get("apps/v1", "Deployment", object_name(state.name, "challenger"), state.namespace)
            ready_other = int(((other or {}).get("status") or {}).get("readyReplicas") or 0)
            mode = state.policy.mode if state.policy else "split"
            detail += f"; challenger {state.challenger.model_version or '-'} ({mode}, {ready_other} ready)"
        if wanted == 0:
            return TargetStatus("exited", False, detail + "; scaled to zero")
        progressing = condition(dep, "Progressing")
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return TargetStatus("unhealthy", ready > 0, f"{detail}; {progressing.get('message')}")
        if ready > 0 and condition(dep, "Available").get("status") == "True":
            return TargetStatus("running", True, detail)
        if int(status.get("observedGeneration") or 0) < int(dep["metadata"].get("generation") or 0) or \
                int(status.get("updatedReplicas") or 0) < wanted:
            return TargetStatus("starting", False, detail)
        return TargetStatus("unhealthy", False, f"{detail}; {condition(dep, 'Available').get('message', '')}")

    @staticmethod
    def _kserve_status(cluster: Cluster, state: KubernetesHandle) -> TargetStatus:
        isvc = cluster.get("serving.kserve.io/v1beta1", "InferenceService", state.name, state.namespace)
        if isvc is None:
            return TargetStatus("gone", False, f"InferenceService {state.namespace}/{state.name} no longer exists")
        ready = condition(isvc, "Ready")
        predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
        traffic = predictor.get("traffic") or []
        split = ", ".join(f"{t.get('revisionName')} {t.get('percent')}%" for t in traffic)
        detail = f"InferenceService {state.namespace}/{state.name}" + (f" ({split})" if split else "")
        if ready.get("status") == "True":
            return TargetStatus("running", True, detail)
        if ready.get("status") == "Unknown":
            return TargetStatus("starting", False, f"{detail}; {ready.get('reason')}: {ready.get('message')}")
        return TargetStatus("unhealthy", False, f"{detail}; {ready.get('reason')}: {ready.get('message')}")

    def logs(self, placement: Placement[KubernetesHandle], tail: int = 100) -> str:
        """The model servers' output, pod by pod (the challenger's after the champion's)."""
        state = placement.handle
        cluster = self._cluster_for(state)
        if state.options.kserve:
            return self._pod_logs(cluster, state.namespace, {"serving.kserve.io/inferenceservice": state.name},
                                  KSERVE_CONTAINER, tail)
        text = self._pod_logs(cluster, state.namespace, pod_selector(state.name, "champion"), CONTAINER, tail)
        if state.challenger is not None:
            text += "\n--- challenger ---\n" + self._pod_logs(
                cluster, state.namespace, pod_selector(state.name, "challenger"), CONTAINER, tail)
        return text

    @staticmethod
    def _pod_logs(cluster: Cluster, ns: str, labels: Mapping[str, str], container: str, tail: int) -> str:
        pods = cluster.list("v1", "Pod", ns, labels=labels)
        if not pods:
            return "(no pods)"
        return "\n".join(f"--- pod {p['metadata']['name']} ---\n"
                         + cluster.pod_log(p["metadata"]["name"], ns, container, tail) for p in pods)

    def delete(self, placement: Placement[KubernetesHandle]) -> None:
        """Delete every object of the deployment (its pods go with them)."""
        state = placement.handle
        cluster = self._cluster_for(state)
        for m in sorted(state.manifests(get_settings()), key=lambda m: m["kind"] != "HTTPRoute"):
            cluster.delete(m["apiVersion"], m["kind"], m["metadata"]["name"], state.namespace)

    # -- SupportsChallenger ---------------------------------------------------------------------

    def start_challenger(self, current: Placement[KubernetesHandle], spec: DeploymentSpec,
                         policy: TrafficPolicy, *, on_event: OnEvent | None = None) -> Placement[KubernetesHandle]:
        """Roll out ``spec`` beside the champion, then route by ``policy`` (an HTTPRoute, or a KServe
        canary); if the challenger never becomes ready, it is removed and the champion untouched."""
        _refuse_bandit(policy)
        state = current.handle
        if state.options.kserve:
            canary_percent(policy)  # a policy KServe cannot follow fails before anything changes
        self._check_image_source(spec, state)
        cluster = self._cluster_for(state)
        version = ServedVersion.of(spec, self._image(spec, state, on_event), _model_bytes(spec.model_uri))
        after = replace(state, challenger=version, policy=policy).with_images(version)
        return self._commit(cluster, state, after, RolloutOptions.from_options(spec.options))

    def set_policy(self, placement: Placement[KubernetesHandle],
                   policy: TrafficPolicy) -> Placement[KubernetesHandle]:
        """Change the split or switch between split and shadow; no pod restarts."""
        _refuse_bandit(policy)
        state = placement.handle
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger: start one first")
        return self._commit(self._cluster_for(state), state, replace(state, policy=policy),
                            RolloutOptions(url=placement.url))

    def promote(self, placement: Placement[KubernetesHandle]) -> Placement[KubernetesHandle]:
        """The challenger's version becomes the champion and the challenger's objects go."""
        state = placement.handle
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to promote")
        cluster = self._cluster_for(state)
        keep_url = RolloutOptions(url=placement.url)
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

    def abort(self, placement: Placement[KubernetesHandle]) -> Placement[KubernetesHandle]:
        """The challenger's objects go; the champion takes all traffic."""
        state = placement.handle
        if state.challenger is None:
            raise DeploymentError("this deployment has no challenger to abort")
        cluster = self._cluster_for(state)
        keep_url = RolloutOptions(url=placement.url)
        final = replace(state, challenger=None, policy=None)
        if state.options.kserve:
            # A canary of 0 % sends everything back to the champion's revision at once; then the
            # champion's spec is applied again so the InferenceService describes one version.
            back = replace(state, policy=TrafficPolicy("split", 0.0))
            self._commit(cluster, state, back, keep_url)
            return self._commit(cluster, back, final, keep_url)
        return self._commit(cluster, state, final, keep_url)


def _refuse_bandit(policy: TrafficPolicy) -> None:
    """An HTTPRoute's weights (and a KServe canary's percent) are static: no bandit on Kubernetes."""
    if policy.mode == "bandit":
        raise InvalidInputError(
            "the k8s target cannot route by a bandit strategy: an HTTPRoute's weights (and a KServe canary's "
            "percent) are fixed until changed, nothing moves them by the rewards fed back. Use a share "
            "(share=0.1) or shadow=True, or a local, docker or swarm deployment for bandit routing"
        )
