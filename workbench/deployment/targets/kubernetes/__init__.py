"""The ``k8s`` target: model servers as Kubernetes Deployments, or as KServe InferenceServices.

Target URI: ``k8s://CONTEXT/NAMESPACE``. ``k8s:///NAMESPACE`` uses the kubeconfig's current context,
``k8s://`` (or ``k8s``) also that context's namespace (else ``default``). The kubeconfig is the one
``kubectl`` uses: ``KUBECONFIG``, else ``~/.kube/config``, else the in-cluster service account.

Manifests come from one pure function, :func:`build_manifests`, which ``workbench manifests`` prints
for GitOps users and the target applies:

- the workbench router as its own Deployment (``NAME-router``, ``workbench route``) behind the
  clients' Service ``NAME``: its route table a ConfigMap, its admin token a Secret, its backends the
  versions' Services by DNS name; split, shadow and bandit (see :mod:`.manifests`);
- per version (``NAME-champion``, ``NAME-challenger``) a Deployment of the model image: probes on the
  V2 health routes (startup and liveness on ``/v2/health/live``, readiness on ``/v2/health/ready``),
  the "restricted" Pod Security Standard (uid 10001, read-only root filesystem, emptyDir volumes only
  for ``/tmp`` and the log store's spool, no privilege escalation, every capability dropped,
  RuntimeDefault seccomp), Prometheus scrape annotations, the ``app.kubernetes.io/*`` labels and
  ``workbench.io/*`` labels naming the model; every pod writes the shared prediction-log store
  (``WORKBENCH_LOG_URL`` from a Secret) or a shared claim;
- a Service, a HorizontalPodAutoscaler (autoscaling/v2), a NetworkPolicy that opens the server's port
  only, and a PodDisruptionBudget (policy/v1);
- resource requests and a memory limit on every pod (never BestEffort), sized from the model and the
  server's measured footprint (:mod:`~workbench.deployment.targets.kubernetes.sizing`), overridable;
- with ``router=False``, a challenger is the same objects and a Gateway API ``HTTPRoute`` that splits
  traffic by weight or mirrors every request to the challenger (``RequestMirror``), no bandit;
- or, with ``kserve=True``, one KServe ``InferenceService`` (a custom predictor container on the
  same image and port, V2 protocol) whose challenger is a canary (``canaryTrafficPercent``).

The package, by job: :mod:`.options` (the target URI and the options, checked),
:mod:`.manifests` (rendering; :mod:`.objects` the parts every object shares,
:mod:`.router_objects` the router's), :mod:`.sizing` (default resources), :mod:`.api` (the Kubernetes API
wrapper), :mod:`.rollout` (apply, wait, undo) and :mod:`.target` (the target and its handle).

Applying needs the ``kubernetes`` client, imported only when a cluster is used: server-side apply
(field manager ``workbench``), a wait for the rollout, and on failure a report of the pods' events
and container states. Options (``wb.deploy(uri, target="k8s://ctx/ns", **options)``):

- where the image comes from: ``image`` (already in a registry the cluster pulls from) or
  ``registry`` (the model is packaged and pushed there, and the manifests name the pushed digest);
- manifests: ``replicas`` (2), ``max_replicas`` (3 x replicas; equal to replicas: no autoscaler),
  ``cpu_utilization`` (70: per cent of the CPU request), ``requests`` / ``limits``
  (``{"cpu": "500m", "memory": "1Gi"}`` or ``"cpu=500m,memory=1Gi"``; by default a CPU request and a
  memory request and limit from the model's size, see :mod:`~workbench.deployment.targets.kubernetes.sizing`), ``kserve``,
  ``gateway`` (``NAME`` or ``NAMESPACE/NAME`` of the Gateway the HTTPRoute attaches to; without one
  the route attaches to the Service, for a service mesh), ``hostnames``, ``port`` (the Service's, 80),
  ``service_type``, ``service_account``, ``image_pull_secrets``, ``network_policy`` (True),
  ``namespace``;
- the prediction log: ``log_secret`` (a Secret whose key ``url`` holds the store's URL), ``log_url``
  (the target writes that Secret; default: the settings' ``WORKBENCH_LOG_URL``) or ``log_claim`` (a
  ReadWriteMany claim); without any, more than one pod per version is refused;
- the router: ``router`` (True), ``router_replicas`` (2), ``router_image`` (the champion's);
- ``url`` (the address clients use, e.g. an Ingress; default: found from the cluster) and
  ``timeout`` (seconds a rollout may take).
"""

from __future__ import annotations

from workbench.deployment.targets.kubernetes.api import FIELD_MANAGER
from workbench.deployment.targets.kubernetes.manifests import ServedVersion, build_manifests, manifests_yaml
from workbench.deployment.targets.kubernetes.options import KubernetesOptions, parse_target_uri
from workbench.deployment.targets.kubernetes.target import KubernetesHandle, KubernetesTarget, push_image

__all__ = [
    "FIELD_MANAGER",
    "KubernetesHandle",
    "KubernetesOptions",
    "KubernetesTarget",
    "ServedVersion",
    "build_manifests",
    "manifests_yaml",
    "parse_target_uri",
    "push_image",
]
