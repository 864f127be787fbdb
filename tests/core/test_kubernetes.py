"""The ``k8s`` target: manifests a platform team accepts, validated offline, and its clear errors.

No cluster runs on these machines. Every manifest variant is validated against the official schemas
(kubernetes-validate for the core kinds, JSON schemas written from the Gateway API and KServe CRDs
for HTTPRoute and InferenceService: see k8s_schemas.py). The model image is run on the local Docker
engine under the pod's security context. The target's rollouts (undo on failure, challenger, promote,
abort) run against an in-memory stand-in for the API server. One live test deploys, updates, rolls
back and deletes on a real cluster when KUBECONFIG offers one (see the ``live_cluster`` fixture).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from k8s_schemas import K8S_VERSIONS, check_object_syntax, validate
from kubernetes_validate.utils import ValidationError as K8sValidationError

import workbench as wb
import workbench.registry
from workbench.deployment import Placement, SupportsChallenger, Target, TrafficPolicy, load_target
from workbench.deployment.base import DeploymentSpec
from workbench.deployment.targets.kubernetes import (
    KubernetesTarget,
    build_manifests,
    manifests_yaml,
    parse_target_uri,
    push_image,
)
from workbench.deployment.targets.kubernetes import KubernetesOptions as KubernetesOptionsForTest
from workbench.deployment.targets.kubernetes.sizing import SERVER_FOOTPRINT_MIB, default_resources, quantity_value
from workbench.errors import DeploymentError, EngineUnavailableError, HealthCheckError, InvalidInputError
from workbench.packaging.context import LOG_DIR, SERVER_PORT, USER_ID

BIN = Path(sys.executable).parent / "workbench"
CHAMPION_IMAGE = "workbench/churn@sha256:" + "a" * 64
CHALLENGER_IMAGE = "workbench/churn:4"
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                   "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")
WORKBENCH_LABELS = ("workbench.io/deployment", "workbench.io/model-name", "workbench.io/model-version")
RESOURCES = {"requests": "cpu=500m,memory=1Gi", "limits": {"memory": "2Gi"}}


STORE_SECRET = "churn-log-store"


def spec(version: str = "3", name: str = "churn", **options: Any) -> DeploymentSpec:
    """A deployment spec as the manager makes it (no MLflow needed: manifests are a pure function).
    The log goes to the shared store (``log_secret``) unless the options say where (``None``: nowhere)."""
    if not {"log_secret", "log_url", "log_claim"} & set(options):
        options = {"log_secret": STORE_SECRET, **options}
    options = {k: v for k, v in options.items() if v is not None}
    return DeploymentSpec(name=name, model_uri=f"models:/churn/{version}", model_name="churn", model_version=version,
                          revision=int(version), workdir=Path("/nonexistent"), options=options)


def render(options: dict[str, Any] | None = None, policy: TrafficPolicy | None = None,
           challenger: bool = False) -> list[dict[str, Any]]:
    return build_manifests(spec(**(options or {})), CHAMPION_IMAGE,
                           challenger=spec("4") if challenger or policy else None,
                           challenger_image=CHALLENGER_IMAGE if challenger or policy else None, policy=policy)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str = "churn") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod metadata, pod spec) of every workload: Deployment templates and KServe predictors."""
    pods = [(d["spec"]["template"]["metadata"], d["spec"]["template"]["spec"]) for d in by_kind(docs, "Deployment")]
    pods += [({"labels": p["labels"], "annotations": p["annotations"]}, p)
             for p in (d["spec"]["predictor"] for d in by_kind(docs, "InferenceService"))]
    assert pods
    return pods


NO_ROUTER = {"router": False}
VARIANTS = {
    "plain": ({}, None, {"Deployment": 2, "Service": 2, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 2,
                         "ConfigMap": 1, "NetworkPolicy": 2, "HTTPRoute": 0}),
    "plain-without-router": (NO_ROUTER, None, {"Deployment": 1, "Service": 1, "HorizontalPodAutoscaler": 1,
                                               "PodDisruptionBudget": 1, "ConfigMap": 0}),
    "plain-with-resources": (RESOURCES, None, {"Deployment": 2, "HorizontalPodAutoscaler": 1}),
    "fixed-replicas": ({"replicas": 3, "max_replicas": 3}, None, {"Deployment": 2, "HorizontalPodAutoscaler": 0}),
    "gateway": ({"gateway": "infra/public", "hostnames": "churn.models.test", "namespace": "models"}, None,
                {"HTTPRoute": 1}),
    "log-claim": ({"log_claim": "churn-predictions", "service_account": "churn", "image_pull_secrets": "pull"},
                  None, {"Deployment": 2}),
    "log-url": ({"log_url": "postgresql://wb:s3cret@pg.data.svc:5432/predictions"}, TrafficPolicy("split", 0.1),
                {"Secret": 1, "Deployment": 3}),
    "one-pod-emptydir-log": ({"log_secret": None, "replicas": 1, "max_replicas": 1, "router_replicas": 1}, None,
                             {"Deployment": 2, "PodDisruptionBudget": 1}),
    "split": ({}, TrafficPolicy("split", 0.1), {"Deployment": 3, "Service": 3, "HorizontalPodAutoscaler": 2,
                                                "PodDisruptionBudget": 3, "ConfigMap": 1, "HTTPRoute": 0}),
    "split-with-resources-and-gateway": ({**RESOURCES, "gateway": "public"}, TrafficPolicy("split", 0.25),
                                         {"Deployment": 3, "HTTPRoute": 1}),
    "shadow": ({}, TrafficPolicy("shadow"), {"Deployment": 3, "ConfigMap": 1, "HTTPRoute": 0}),
    "bandit-thompson": ({"namespace": "models"}, TrafficPolicy.bandit("thompson"), {"Deployment": 3, "ConfigMap": 1}),
    "bandit-epsilon-greedy": ({"router_replicas": 3}, TrafficPolicy.bandit("epsilon_greedy", 0.2),
                              {"Deployment": 3, "ConfigMap": 1}),
    "split-httproute": (NO_ROUTER, TrafficPolicy("split", 0.1),
                        {"Deployment": 2, "Service": 2, "HorizontalPodAutoscaler": 2, "PodDisruptionBudget": 2,
                         "HTTPRoute": 1, "ConfigMap": 0}),
    "split-httproute-with-resources-and-gateway": ({**NO_ROUTER, **RESOURCES, "gateway": "public"},
                                                   TrafficPolicy("split", 0.25), {"Deployment": 2, "HTTPRoute": 1}),
    "shadow-httproute": (NO_ROUTER, TrafficPolicy("shadow"), {"Deployment": 2, "HTTPRoute": 1}),
    "kserve": ({"kserve": True}, None, {"InferenceService": 1, "Deployment": 0, "Service": 0}),
    "kserve-with-resources": ({"kserve": True, **RESOURCES}, None, {"InferenceService": 1}),
    "kserve-canary": ({"kserve": True}, TrafficPolicy("split", 0.1), {"InferenceService": 1, "HTTPRoute": 0}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_manifest_variant_is_valid_against_the_official_schemas(variant: str) -> None:
    options, policy, kinds = VARIANTS[variant]
    docs = render(options, policy)
    for kind, count in kinds.items():
        assert len(by_kind(docs, kind)) == count, kind
    for doc in docs:
        for version in K8S_VERSIONS:
            validate(doc, version)
        assert check_object_syntax(doc) == []
    # and the YAML a GitOps user commits reads back to the same objects, written out in full (no anchors)
    text = manifests_yaml(docs, header="made by a test")
    assert list(yaml.safe_load_all(text)) == docs
    assert "&id0" not in text and "*id0" not in text


def test_the_validators_catch_what_a_cluster_would_reject() -> None:
    plain, split, kserve = render(NO_ROUTER), render(NO_ROUTER, TrafficPolicy("split", 0.1)), render({"kserve": True})

    def broken(doc: dict[str, Any], change: Any) -> dict[str, Any]:
        copied = copy.deepcopy(doc)
        change(copied)
        return copied

    deployment = one(plain, "Deployment")
    with pytest.raises(K8sValidationError, match="readinessProb"):
        validate(broken(deployment, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinessProb={})))
    with pytest.raises(K8sValidationError):
        validate(broken(one(plain, "HorizontalPodAutoscaler"), lambda d: d["spec"].update(maxReplicas="many")))
    route = one(split, "HTTPRoute")
    with pytest.raises(jsonschema.ValidationError, match="port"):
        validate(broken(route, lambda d: d["spec"]["rules"][0]["backendRefs"][1].pop("port")))
    with pytest.raises(jsonschema.ValidationError):
        validate(broken(route, lambda d: d["spec"]["rules"][0]["backendRefs"][1].update(weight=2_000_000)))
    with pytest.raises(jsonschema.ValidationError, match="requestMirror"):
        validate(broken(route, lambda d: d["spec"]["rules"][0].update(filters=[{"type": "RequestMirror"}])))
    with pytest.raises(jsonschema.ValidationError):
        validate(broken(route, lambda d: d["metadata"].update(labelz={})))
    isvc = kserve[0]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken(isvc, lambda d: d["metadata"].update(name="1churn")))
    with pytest.raises(jsonschema.ValidationError, match="imagePulPolicy"):
        validate(broken(isvc, lambda d: d["spec"]["predictor"]["containers"][0].update(imagePulPolicy="Always")))
    too_long = broken(deployment, lambda d: d["metadata"]["labels"].update({"workbench.io/model-name": "x" * 64}))
    assert check_object_syntax(too_long)


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    routed = render(RESOURCES, TrafficPolicy("shadow"))
    claimed = render({**NO_ROUTER, "log_secret": None, "log_claim": "logs"})
    for docs in (routed, render({"kserve": True}), claimed):
        for _, pod in pod_specs(docs):
            assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
            assert all("hostPath" not in v for v in pod["volumes"])
            assert pod.get("automountServiceAccountToken", False) is False
            pod_sc = pod.get("securityContext", {})
            for container in pod["containers"]:
                sc = container["securityContext"]
                assert sc["runAsNonRoot"] is True and sc["runAsUser"] == USER_ID == 10001
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"] == {"drop": ["ALL"]}
                assert (sc.get("seccompProfile") or pod_sc["seccompProfile"]) == {"type": "RuntimeDefault"}
                assert "privileged" not in sc
                assert set(container["resources"]["requests"]) == {"cpu", "memory"}  # never BestEffort
                assert "memory" in container["resources"]["limits"]
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                volumes = {v["name"]: v for v in pod["volumes"]}
                assert container["ports"][0]["containerPort"] == SERVER_PORT == 8080
                if container["name"] == "router":
                    # writable: the bandit's state and /tmp (emptyDir); the route table is a read-only ConfigMap
                    assert mounts == {"/etc/workbench-router": "route-table", "/var/lib/workbench-router":
                                      "router-state", "/tmp": "tmp"}
                    assert volumes["route-table"] == {"name": "route-table", "configMap": {"name": "churn-router"}}
                    assert all("emptyDir" in volumes[n] for n in ("router-state", "tmp"))
                    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                        assert container[probe]["httpGet"] == {"path": "/workbench/router", "port": SERVER_PORT}
                    continue
                # the only writable places: the log folder (the store's spool, or a claim) and /tmp
                assert set(mounts) == {LOG_DIR, "/tmp"} and "emptyDir" in volumes[mounts["/tmp"]]
                log_volume = volumes[mounts[LOG_DIR]]
                assert ("persistentVolumeClaim" in log_volume) if docs is claimed else (
                    "emptyDir" in log_volume and log_volume["name"] == "log-spool")
                assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": SERVER_PORT}
                assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": SERVER_PORT}
            if pod_sc:  # Deployments: the pod level says it too
                assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == USER_ID
                probes = pod["containers"][0]["startupProbe"]["httpGet"]["path"]
                assert probes in ("/v2/health/live", "/workbench/router")
    assert {c["name"] for _, pod in pod_specs(routed) for c in pod["containers"]} == {"model-server", "router"}


def test_labels_annotations_and_selectors_a_platform_team_looks_for() -> None:
    docs = render({"namespace": "models", **NO_ROUTER}, TrafficPolicy("split", 0.1))
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert set(STANDARD_LABELS + WORKBENCH_LABELS) <= set(labels), doc["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "workbench"
        assert labels["app.kubernetes.io/instance"] == "churn"
        assert doc["metadata"]["namespace"] == "models"
    for meta, _ in pod_specs(docs):
        assert meta["annotations"]["prometheus.io/scrape"] == "true"
        assert meta["annotations"]["prometheus.io/port"] == "8080"
        assert meta["annotations"]["prometheus.io/path"] == "/metrics"
        assert meta["labels"]["workbench.io/model-name"] == "churn"
    assert one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]["workbench.io/model-version"] == "3"
    assert one(docs, "Deployment", "churn-challenger")["metadata"]["labels"]["app.kubernetes.io/version"] == "4"
    # each Service, autoscaler and budget reaches exactly its own Deployment's pods
    deployments = by_kind(docs, "Deployment")
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for kind, selected in (("Service", lambda d: d["spec"]["selector"]),
                           ("PodDisruptionBudget", lambda d: d["spec"]["selector"]["matchLabels"])):
        for doc in by_kind(docs, kind):
            matching = [d["metadata"]["name"] for d in deployments
                        if selected(doc).items() <= d["spec"]["template"]["metadata"]["labels"].items()]
            assert matching == [doc["metadata"]["name"]], kind
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": hpa["metadata"]["name"]}
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1  # never blocks a node drain, even with one replica


def test_resources_and_autoscaling_follow_the_options() -> None:
    # Never BestEffort: without options, a CPU request and memory sized from the server's footprint
    # (the model's size is unknown to a bare render: 256 MiB is allowed for it).
    bare = render(NO_ROUTER)
    container = one(bare, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    hpa = one(bare, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "replicas" not in one(bare, "Deployment")["spec"]  # the autoscaler owns the count

    # the model's size moves the memory request: a 12 MB forest, a 2 GB model
    small = build_manifests(spec(**NO_ROUTER), CHAMPION_IMAGE, model_bytes=12_000_000)
    assert one(small, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "448Mi"}, "limits": {"memory": "896Mi"}}
    big = build_manifests(spec(**NO_ROUTER), CHAMPION_IMAGE, model_bytes=2 * 10**9)
    big_resources = one(big, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert big_resources["requests"]["memory"] == "5184Mi" and big_resources["limits"]["memory"] == "10368Mi"

    sized = render({**RESOURCES, "cpu_utilization": 60, "max_replicas": 10, **NO_ROUTER})
    container = one(sized, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    target = one(sized, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["target"]
    assert target == {"type": "Utilization", "averageUtilization": 60}

    # an override never leaves a default that contradicts it
    low_limit = render({"limits": "cpu=100m,memory=256Mi", **NO_ROUTER})
    resources = one(low_limit, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "100m", "memory": "256Mi"}}
    high_request = render({"requests": "memory=4Gi", **NO_ROUTER})
    resources = one(high_request, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "250m", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}

    fixed = render({"replicas": 3, "max_replicas": 3, **NO_ROUTER})
    assert one(fixed, "Deployment")["spec"]["replicas"] == 3 and not by_kind(fixed, "HorizontalPodAutoscaler")

    kserve = render({"kserve": True, **RESOURCES, "replicas": 1})[0]["spec"]["predictor"]
    assert (kserve["minReplicas"], kserve["maxReplicas"]) == (1, 3)
    assert kserve["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_the_default_memory_request_covers_the_measured_server(registered_model, serve_model) -> None:
    """Measure the real server's resident memory with a real model: the default request must hold it."""
    server = serve_model(registered_model.uri)
    deadline = time.monotonic() + 120
    while httpx.get(f"{server.url}/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline, server.output.read_text()
        time.sleep(0.2)
    rows = wb.load_profile(registered_model.uri).sample.drop(columns=["label"], errors="ignore").head(50)
    for _ in range(20):
        answer = httpx.post(f"{server.url}/invocations", json={"dataframe_split": rows.to_dict(orient="split")})
        assert answer.status_code == 200, answer.text
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    rss_bytes = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) * 1024
    requested = default_resources(wb.registry.model_size(registered_model.uri)).requests["memory"]
    assert rss_bytes <= quantity_value(requested), (rss_bytes / 2**20, requested)
    # and the footprint in the sizing module is what was measured, not a guess far above it
    assert rss_bytes >= 0.5 * SERVER_FOOTPRINT_MIB * 2**20, rss_bytes / 2**20


# -- an outside reviewer: checkov's Kubernetes checks -------------------------------------------------

#: Checks the manifests do not meet on purpose, and why (the README lists them too).
CHECKOV_SKIPS = {
    "CKV_K8S_11": "CPU limits: a limit throttles a busy model server in 100 ms slices (latency spikes) while "
                  "its CPU request already guarantees its share; give --limits cpu=... where a quota needs one",
    "CKV_K8S_35": "secrets as environment variables: the model server reads its log store's URL from "
                  "WORKBENCH_LOG_URL and the router its token from WORKBENCH_ROUTER_TOKEN, each a secretKeyRef, so "
                  "no manifest holds the value",
}
#: What a user who gives a tag and no namespace sees on top, and the option that clears each.
CHECKOV_USER_CHOICES = {
    "CKV_K8S_21": "--namespace: without it `kubectl apply -n` (or Kustomize, Argo CD) chooses the namespace",
    "CKV_K8S_43": "an image by digest (REGISTRY/NAME@sha256:...), as the k8s target's registry= option writes",
}
DIGEST_IMAGE = "registry.test/churn@sha256:" + "b" * 64


def checkov_failures(checkov: Path, docs: list[dict[str, Any]], folder: Path) -> tuple[set[str], int]:
    """Run checkov's Kubernetes checks on ``docs`` (as `workbench manifests` writes them): the IDs of the
    failed checks, and how many passed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifests.yaml").write_text(manifests_yaml(docs))
    result = subprocess.run(
        [str(checkov), "--directory", str(folder), "--framework", "kubernetes", "--output", "json", "--quiet",
         "--compact", "--skip-download", "--skip-check", ",".join(CHECKOV_SKIPS)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}
    passed = sum(int(r["summary"]["passed"]) for r in reports)
    return failed, passed


def test_checkov_passes_every_manifest_variant_but_the_documented_skips(checkov_bin: Path, tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = []
    for variant, (options, policy, _) in VARIANTS.items():
        with_challenger = policy is not None
        rendered = build_manifests(
            spec(name=variant.replace("-with-", "-w-")[:40], **{**options, "namespace": "models"}), DIGEST_IMAGE,
            challenger=spec("4") if with_challenger else None,
            challenger_image=DIGEST_IMAGE if with_challenger else None, policy=policy, model_bytes=5_000_000)
        docs += rendered
    failed, passed = checkov_failures(checkov_bin, docs, tmp_path / "all")
    assert failed == set(), failed
    assert passed > 200  # the checks ran on every Deployment, Service and InferenceService

    # A tag and no namespace: exactly the two checks the user's choices decide, each named in the README.
    failed, _ = checkov_failures(checkov_bin, render(), tmp_path / "tagged")
    assert failed <= set(CHECKOV_USER_CHOICES) and "CKV_K8S_21" in failed
    tagged = build_manifests(spec(), "registry.test/churn:3")
    assert checkov_failures(checkov_bin, tagged, tmp_path / "tag")[0] == set(CHECKOV_USER_CHOICES)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for check in (*CHECKOV_SKIPS, *CHECKOV_USER_CHOICES):
        assert check in readme, f"the README does not list {check}"


@pytest.mark.parametrize(("share", "weights"), [(0.1, (90, 10)), (0.05, (95, 5)), (0.125, (875, 125)),
                                                (0.0, (100, 0)), (1.0, (0, 100))])
def test_split_weights_send_the_asked_share_to_the_challenger(share: float, weights: tuple[int, int]) -> None:
    route = one(render(NO_ROUTER, TrafficPolicy("split", share)), "HTTPRoute")
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["port"], r["weight"]) for r in refs] == [("churn", 80, weights[0]),
                                                                  ("churn-challenger", 80, weights[1])]
    assert refs[1]["weight"] / sum(r["weight"] for r in refs) == pytest.approx(share)
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "churn"}]  # a mesh's route


def test_shadow_answers_from_the_champion_and_mirrors_to_the_challenger() -> None:
    docs = render({"gateway": "infra/public", "hostnames": "churn.models.test", **NO_ROUTER}, TrafficPolicy("shadow"))
    route = one(docs, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "public", "namespace": "infra"}]
    assert route["spec"]["hostnames"] == ["churn.models.test"]
    rule = route["spec"]["rules"][0]
    assert [r["name"] for r in rule["backendRefs"]] == ["churn"]  # only the champion answers
    assert rule["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": "churn-challenger", "port": 80}}}]
    service_names = {d["metadata"]["name"] for d in by_kind(docs, "Service")}
    assert {"churn", "churn-challenger"} == service_names


def test_kserve_runs_the_same_image_as_a_v2_custom_predictor_and_canaries_the_challenger() -> None:
    isvc = render({"kserve": True})[0]
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    # KServe's custom predictor: the container named kserve-container, its protocol from PROTOCOL
    assert container["name"] == "kserve-container" and container["image"] == CHAMPION_IMAGE
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    # Knative accepts only http1/h2c port names, no startupProbe and no lifecycle hooks
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert not {"startupProbe", "lifecycle"} & set(container)
    assert "canaryTrafficPercent" not in predictor

    canary = render({"kserve": True}, TrafficPolicy("split", 0.1))[0]["spec"]["predictor"]
    assert canary["canaryTrafficPercent"] == 10
    assert canary["containers"][0]["image"] == CHALLENGER_IMAGE
    assert canary["labels"]["workbench.io/model-version"] == "4"


def test_bad_options_are_clear_errors() -> None:
    cases = [
        ({"requests": "cpu=lots"}, "not a Kubernetes quantity"),
        ({"replica": 3}, "unknown option"),
        ({"replicas": 0}, "replicas must be a whole number from 1"),
        ({"replicas": 4, "max_replicas": 2}, "max_replicas"),
        ({"gateway": "a/b/c"}, "gateway is NAME or NAMESPACE/NAME"),
        ({"service_type": "External"}, "service_type must be one of"),
        ({"namespace": "Models"}, "not a valid namespace"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            render(options)
    for name in ("9lives", "x" * 53):
        with pytest.raises(InvalidInputError, match="cannot name Kubernetes objects"):
            build_manifests(spec(name=name), CHAMPION_IMAGE)
    with pytest.raises(InvalidInputError, match="cannot mirror"):
        render({"kserve": True}, TrafficPolicy("shadow"))
    with pytest.raises(InvalidInputError, match="whole per cent"):
        render({"kserve": True}, TrafficPolicy("split", 0.125))
    with pytest.raises(InvalidInputError, match="challenger needs its own image"):
        build_manifests(spec(), CHAMPION_IMAGE, challenger=spec("4"))


def test_target_uris_name_a_context_and_a_namespace() -> None:
    assert parse_target_uri("k8s://prod/models") == ("prod", "models")
    assert parse_target_uri("k8s:///models") == (None, "models")
    assert parse_target_uri("k8s://") == (None, None)
    assert parse_target_uri("k8s") == (None, None)
    assert parse_target_uri("k8s://kind-dev") == ("kind-dev", None)
    assert parse_target_uri("k8s://arn:aws:eks:eu-west-1:1:cluster/prod/models") == (
        "arn:aws:eks:eu-west-1:1:cluster/prod", "models")
    with pytest.raises(InvalidInputError, match="namespace"):
        parse_target_uri("k8s://prod/Models")
    target = load_target("k8s://prod/models")
    assert isinstance(target, KubernetesTarget) and isinstance(target, Target)
    assert isinstance(target, SupportsChallenger)


def test_importing_the_target_leaves_the_kubernetes_client_unloaded() -> None:
    code = ("import sys, workbench.deployment.targets.kubernetes, workbench.cli.kubernetes; "
            "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# -- clear errors -------------------------------------------------------------------------------


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": server}}],
        "users": [{"name": "me", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me", "namespace": "models"}}],
    }))
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_image_and_no_registry_is_a_clear_error_before_any_cluster_is_needed(
        registered_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    name = f"k8s-noimage-{uuid.uuid4().hex[:6]}"
    with pytest.raises(InvalidInputError) as caught:
        wb.deploy(registered_model.uri, target="k8s://lab/models", name=name, log_secret="store")
    assert "image='REGISTRY/REPOSITORY:TAG'" in str(caught.value) and "registry='REGISTRY/PATH'" in str(caught.value)
    assert name not in {d.name for d in wb.deployments()}  # nothing left behind


def test_no_cluster_is_a_clear_error_that_says_how_to_point_at_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_image = spec(image=CHAMPION_IMAGE)
    # no kubeconfig at all
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EngineUnavailableError, match="no Kubernetes cluster is configured") as caught:
        KubernetesTarget("k8s://").deploy(with_image)
    assert "export KUBECONFIG=/path/to/kubeconfig" in str(caught.value)
    # a kubeconfig that does not exist, or has no such context
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(EngineUnavailableError, match="KUBECONFIG"):
        KubernetesTarget("k8s:///models").deploy(with_image)
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", f"https://127.0.0.1:{_closed_port()}")))
    with pytest.raises(EngineUnavailableError, match=r"has no context 'prod' \(it has: lab\)"):
        KubernetesTarget("k8s://prod/models").deploy(with_image)
    # a cluster that does not answer
    with pytest.raises(EngineUnavailableError, match="does not answer") as caught:
        KubernetesTarget("k8s://lab/models").deploy(with_image)
    assert "KUBECONFIG" in str(caught.value)
    # a deployment whose cluster went away shows as unhealthy with the reason, without raising
    target = KubernetesTarget("k8s://lab/models")
    placement = Placement.from_dict({"url": "http://churn.models.svc.cluster.local", "handle": {
        "name": "churn", "context": "lab", "namespace": "models", "options": {},
        "champion": {"model_uri": "models:/churn/3", "model_name": "churn", "model_version": "3",
                     "image": CHAMPION_IMAGE}}}, target.read_handle)
    status = target.status(placement)
    assert (status.state, status.healthy) == ("unhealthy", False) and "does not answer" in status.detail


def _scratch_image() -> Any:
    import docker

    client = docker.from_env()
    image, _ = client.images.build(fileobj=io.BytesIO(b"FROM scratch\nLABEL io.workbench.test=push\n"), rm=True)
    return client, image


@pytest.mark.docker
def test_a_push_the_registry_refuses_is_a_clear_error(docker_engine) -> None:
    client, image = _scratch_image()
    reference = f"127.0.0.1:{_closed_port()}/workbench-test/push:{uuid.uuid4().hex[:8]}"
    image.tag(reference)
    try:
        with pytest.raises(DeploymentError, match=r"pushing .* failed: .*docker login 127\.0\.0\.1"):
            push_image(reference)
    finally:
        client.images.remove(reference)


def _run_as_pod(client: Any, image: str, pod: dict[str, Any], container: dict[str, Any], name: str, network: str,
                extra_env: dict[str, str] | None = None, binds: dict[str, dict[str, str]] | None = None) -> Any:
    """One container of a rendered pod, on the local engine under the pod's restrictions: read-only
    root, its user, no capabilities, no privilege escalation, its emptyDirs as tmpfs, its command."""
    sc = container["securityContext"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # The kubelet makes an emptyDir 0777 (and group-owned by fsGroup). Docker resets the mode of a
    # tmpfs laid over an image's VOLUME path, so the same write access is given by ownership.
    owner = f"uid={pod['securityContext']['runAsUser']},gid={pod['securityContext']['fsGroup']}"
    empty_dirs = {mounts[v["name"]]: owner for v in pod["volumes"] if "emptyDir" in v}
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return client.containers.run(
        image, name=name, detach=True, init=True, network=network, read_only=sc["readOnlyRootFilesystem"],
        user=f"{sc['runAsUser']}:{sc['runAsGroup']}", cap_drop=sc["capabilities"]["drop"],
        security_opt=[] if sc["allowPrivilegeEscalation"] else ["no-new-privileges"], tmpfs=empty_dirs,
        environment={**env, **(extra_env or {})}, volumes=binds or {},
        entrypoint=container.get("command"), command=[] if "command" in container else None,
        ports={f"{container['ports'][0]['containerPort']}/tcp": ("127.0.0.1", None)},
    )


def _published(running: Any, ready_path: str) -> str:
    running.reload()
    url = f"http://127.0.0.1:{running.attrs['NetworkSettings']['Ports']['8080/tcp'][0]['HostPort']}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        running.reload()
        assert running.status == "running", running.logs().decode()
        assert time.monotonic() < deadline, running.logs().decode()
        time.sleep(0.5)


@pytest.mark.docker
@pytest.mark.slow
def test_the_model_image_serves_and_routes_under_the_pods_security_context(docker_engine, registered_model,
                                                                          numeric_data, tmp_path: Path) -> None:
    """The restrictions of the generated pods, applied to the real image by the local engine: the model
    server, and the router in front of it with its route table mounted read-only (the ConfigMap) and
    its token from the environment (the Secret), reaching the server by its Service's name."""
    import docker

    record = wb.package(registered_model.uri)
    name = f"fx{uuid.uuid4().hex[:8]}"
    # one pod per version, so its emptyDir log is allowed; the Service port is the server's own (no
    # kube-proxy here: the engine's DNS gives the container's address, as a Service's would)
    docs = build_manifests(spec(name=name, log_secret=None, replicas=1, max_replicas=1, router_replicas=1,
                                port=SERVER_PORT), record.tag)
    client = docker.from_env()
    network = client.networks.create(f"wb-k8s-{name}", driver="bridge")
    started: list[Any] = []
    try:
        deployment = one(docs, "Deployment", f"{name}-champion")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        # the router's table names the Service, which is the container's name on this network
        started.append(_run_as_pod(client, record.tag, pod, container, f"{name}-champion", network.name))
        url = _published(started[-1], container["readinessProbe"]["httpGet"]["path"])
        for probe in ("livenessProbe", "startupProbe"):
            assert httpx.get(url + container[probe]["httpGet"]["path"], timeout=5).status_code == 200
        assert httpx.get(url + "/metrics", timeout=5).status_code == 200  # what the scrape annotations name
        rows = numeric_data[0].head(2)
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        direct = httpx.post(url + "/invocations", json=body, timeout=30)
        assert direct.status_code == 200, direct.text

        router = one(docs, "Deployment", f"{name}-router")
        router_pod = router["spec"]["template"]["spec"]
        (router_container,) = router_pod["containers"]
        config_map = one(docs, "ConfigMap", f"{name}-router")
        table_dir = tmp_path / "route-table"
        table_dir.mkdir(mode=0o755)
        table_dir.chmod(0o755)
        (table_dir / "router.json").write_text(config_map["data"]["router.json"])
        (table_dir / "router.json").chmod(0o644)
        (table_mount,) = [m for m in router_container["volumeMounts"] if m["name"] == "route-table"]
        token = "a-token-from-the-secret"
        started.append(_run_as_pod(client, record.tag, router_pod, router_container, f"{name}-router", network.name,
                                   extra_env={"WORKBENCH_ROUTER_TOKEN": token},
                                   binds={str(table_dir): {"bind": table_mount["mountPath"], "mode": "ro"}}))
        routed = _published(started[-1], router_container["readinessProbe"]["httpGet"]["path"])
        answer = httpx.post(routed + "/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == direct.json() and answer.headers["x-workbench-variant"] == "champion"
        described = httpx.get(routed + "/workbench/router", timeout=10).json()
        assert described["champion"] == [f"http://{name}-champion:{SERVER_PORT}"]
        # routes live in the ConfigMap: the router refuses to change them, with the token or without
        change = {**described, "mode": "shadow"}
        change.pop("bandit", None)
        assert httpx.put(routed + "/workbench/router", json=change, timeout=10).status_code == 401
        refused = httpx.put(routed + "/workbench/router", json=change, timeout=10,
                            headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 409, refused.text
        # feedback through the router reaches the server that logged the answer
        logged = httpx.get(url + "/workbench/predictions", timeout=10).json()
        assert len(logged["records"]) == 2  # the prediction log is writable on a read-only root
        request_id = answer.headers["x-request-id"]
        # the router is reached on the pod's address, not loopback: feedback carries the deployment's token
        from workbench.routing.router import feedback_token_for

        feedback = httpx.post(f"{routed}/v2/models/{registered_model.name}/feedback",
                              json={"request_id": request_id, "row": 0, "truth": 1}, timeout=30,
                              headers={"authorization": f"Bearer {feedback_token_for(token)}"})
        assert feedback.status_code == 200 and feedback.json()["results"][0]["status"] == "recorded", feedback.text
        for running in started:
            assert running.logs().decode().count("Traceback") == 0
    finally:
        for running in started:
            running.remove(force=True)
        network.remove()


def test_manifests_command_prints_yaml_documents_for_gitops(registered_model, session_workspace) -> None:
    env = {**os.environ, "WORKBENCH_HOME": str(session_workspace.home)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), "manifests", registered_model.uri, *args], capture_output=True,
                              text=True, env=env, timeout=180)

    # more than one pod per version and no store: refused, saying what to give
    nowhere = run("--image", CHAMPION_IMAGE)
    assert nowhere.returncode == 1 and "log_secret=" in nowhere.stderr and "log_claim=" in nowhere.stderr

    plain = run("--image", CHAMPION_IMAGE, "--namespace", "models", "--requests", "cpu=250m,memory=512Mi",
                "--log-secret", "predictions-store")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(f"# Generated by `workbench manifests` for {registered_model.uri}")
    docs = list(yaml.safe_load_all(plain.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy",
                                         "PodDisruptionBudget", "ConfigMap", "Deployment", "Service",
                                         "NetworkPolicy", "PodDisruptionBudget"]
    assert "Secret" not in {d["kind"] for d in docs}  # no secret to commit to a repository
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Service"] == ["fixture-rf-champion", "fixture-rf"]
    # sized from the model: its files (a small forest) and the server's footprint, never BestEffort
    resources = docs[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "250m", "memory": "512Mi"}  # the --requests given win
    # the default limit: twice the 384Mi the small forest needs (footprint 300 MiB + model, + a quarter)
    assert resources["limits"] == {"memory": "768Mi"}
    assert docs[0]["metadata"]["name"] == "fixture-rf-champion" and docs[0]["metadata"]["namespace"] == "models"
    assert docs[0]["metadata"]["labels"]["workbench.io/model-version"] == registered_model.version
    for doc in docs:
        validate(doc)

    bandit = run("--image", CHAMPION_IMAGE, "--name", "churn", "--challenger", registered_model.uri,
                 "--challenger-image", CHALLENGER_IMAGE, "--strategy", "epsilon_greedy", "--epsilon", "0.2",
                 "--log-claim", "churn-predictions", "--router-replicas", "3")
    assert bandit.returncode == 0, bandit.stderr
    docs = list(yaml.safe_load_all(bandit.stdout))
    table = json.loads(one(docs, "ConfigMap", "churn-router")["data"]["router.json"])["table"]
    assert (table["mode"], table["strategy"], table["epsilon"]) == ("bandit", "epsilon_greedy", 0.2)
    assert table["champion"] == ["http://churn-champion:80"] and table["challenger"] == ["http://churn-challenger:80"]
    assert one(docs, "Deployment", "churn-router")["spec"]["replicas"] == 3
    assert "epsilon_greedy bandit" in bandit.stdout.split("---")[0]
    for doc in docs:
        validate(doc)
    no_router = run("--image", CHAMPION_IMAGE, "--challenger", registered_model.uri, "--challenger-image",
                    CHALLENGER_IMAGE, "--strategy", "thompson", "--log-secret", "s", "--no-router")
    assert no_router.returncode == 1 and "a bandit needs the workbench router" in no_router.stderr

    canary = run("--image", CHAMPION_IMAGE, "--kserve", "--name", "churn", "--challenger", registered_model.uri,
                 "--challenger-image", CHALLENGER_IMAGE, "--share", "0.2", "--log-secret", "predictions-store")
    assert canary.returncode == 0, canary.stderr
    (isvc,) = yaml.safe_load_all(canary.stdout)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20
    validate(isvc)
    assert "# KServe canary: apply once" in canary.stdout

    shadow = run("--image", CHAMPION_IMAGE, "--challenger", registered_model.uri, "--shadow")
    assert shadow.returncode == 1
    assert shadow.stderr.strip() == ("error: --challenger needs --challenger-image: the image the cluster pulls "
                                     "for it")


# -- the target's rollouts, on a stand-in for the API server ---------------------------------------


class ApiServerStandIn:
    """What the target needs of a cluster, in memory, since no API server can run on these machines.

    Server-side apply of complete manifests stores them (the generation moves when the spec does); a
    Deployment controller rolls out at once, except an image whose name says ``unpullable``, whose
    new pod waits in ImagePullBackOff with the kubelet's event, as on a real node.
    """

    context, default_namespace, server = "lab", "default", "https://stand-in"

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def _store(self, kind: str, ns: str, obj: dict[str, Any]) -> None:
        self.objects[(kind, ns, obj["metadata"]["name"])] = obj

    def apply(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        key = (manifest["kind"], namespace, manifest["metadata"]["name"])
        old = self.objects.get(key)
        obj = copy.deepcopy(manifest)
        obj["metadata"]["namespace"] = namespace
        if manifest["kind"] == "Deployment":
            obj["spec"].setdefault("replicas", 1)  # the API server's default
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        content = (lambda o: o.get("spec", o.get("data")))  # a ConfigMap or Secret has data, no spec
        obj["metadata"]["generation"] = generation + (old is None or content(old) != content(obj))
        obj["status"] = (old or {}).get("status", {})
        self.objects[key] = obj
        if manifest["kind"] == "Deployment":
            self._roll_out(obj, namespace, (old or {}).get("metadata", {}).get("annotations", {}))
        return copy.deepcopy(obj)

    def _roll_out(self, dep: dict[str, Any], ns: str, old_annotations: dict[str, str]) -> None:
        revision = str(dep["metadata"]["generation"])
        dep["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision
        selector = dep["spec"]["selector"]["matchLabels"]
        name = dep["metadata"]["name"]
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        labels = {**selector, "pod-template-hash": f"h{revision}"}
        self._store("ReplicaSet", ns, {"metadata": {"name": f"{name}-h{revision}", "labels": labels, "annotations": {
            "deployment.kubernetes.io/revision": revision}}})
        pod = f"{name}-h{revision}-x1"
        wanted = dep["spec"].get("replicas", 1)
        if "unpullable" in image:
            waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
            self._store("Pod", ns, {"metadata": {"name": pod, "labels": labels}, "status": {
                "phase": "Pending", "containerStatuses": [
                    {"name": "model-server", "ready": False, "restartCount": 0, "state": {"waiting": waiting}}]}})
            self._store("Event", ns, {"metadata": {"name": f"{pod}.1"}, "type": "Warning", "reason": "Failed",
                                      "involvedObject": {"kind": "Pod", "name": pod},
                                      "message": f'Failed to pull image "{image}": not found'})
            dep["status"] = {**dep["status"], "observedGeneration": dep["metadata"]["generation"],
                             "updatedReplicas": 0}
            return
        self._store("Pod", ns, {"metadata": {"name": pod, "labels": labels}, "status": {
            "phase": "Running", "containerStatuses": [
                {"name": "model-server", "ready": True, "restartCount": 0, "state": {"running": {}}}]}})
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": wanted,
                         "updatedReplicas": wanted, "availableReplicas": wanted, "readyReplicas": wanted,
                         "conditions": [{"type": "Available", "status": "True"}]}

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def list(self, api_version: str, kind: str, namespace: str, *, labels: dict[str, str] | None = None,
             fields: str | None = None) -> list[dict[str, Any]]:
        wanted = dict(pair.split("=", 1) for pair in fields.split(",")) if fields else {}
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items() if k == kind and ns == namespace
                and (labels or {}).items() <= o["metadata"].get("labels", {}).items()
                and all(o.get("involvedObject", {}).get(f.split(".")[1]) == v for f, v in wanted.items())]

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    def pod_log(self, pod: str, namespace: str, container: str, tail: int, previous: bool = False) -> str:
        return "workbench: serving churn"

    def workloads(self) -> dict[str, str]:
        """Deployment name -> image; and the HTTPRoute, if any."""
        return {name: o["spec"]["template"]["spec"]["containers"][0]["image"]
                for (kind, _, name), o in self.objects.items() if kind == "Deployment"}

    def kinds(self) -> list[str]:
        return sorted(kind for kind, _, _ in self.objects if kind in {
            "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "HTTPRoute"})


def test_rollouts_updates_challengers_promote_and_abort_leave_one_version(monkeypatch) -> None:
    """Without the router (router=False): a Gateway API HTTPRoute shares the traffic."""

    def spec(version: str, **options: Any) -> DeploymentSpec:
        return globals()["spec"](version, router=False, **options)

    cluster = ApiServerStandIn()
    target = KubernetesTarget("k8s://lab/models")
    target._clusters["lab"] = cluster
    monkeypatch.setattr(time, "sleep", lambda seconds: None)

    with pytest.raises(HealthCheckError, match="Nothing was left behind"):
        target.deploy(spec("3", image="workbench/unpullable:3"))
    assert cluster.kinds() == []
    placement = target.deploy(spec("3", image="workbench/churn:3"))
    assert placement.url == "http://churn.models.svc.cluster.local"
    assert cluster.workloads() == {"churn": "workbench/churn:3"}
    assert cluster.kinds() == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    assert target.status(placement).state == "running" and "serving churn" in target.logs(placement)
    # images pushed earlier for other versions, as a rollback finds them in the handle
    placement = Placement(placement.url, dataclasses.replace(placement.handle, images={
        **placement.handle.images, "models:/churn/4": "workbench/churn:4",
        "models:/churn/5": "workbench/unpullable:5"}), placement.log_sources)

    placement = target.update(placement, spec("4"))
    assert cluster.workloads() == {"churn": "workbench/churn:4"}
    with pytest.raises(HealthCheckError) as failed:
        target.update(placement, spec("5"))
    report = str(failed.value)
    assert report.startswith("Deployment models/churn has pods that cannot start.")
    assert report.endswith("The version before keeps serving.")
    assert "ImagePullBackOff" in report and 'Failed to pull image "workbench/unpullable:5"' in report
    assert cluster.workloads() == {"churn": "workbench/churn:4"}  # the failed rollout was undone

    with pytest.raises(HealthCheckError):
        target.start_challenger(placement, spec("5"), TrafficPolicy("split", 0.1))
    assert cluster.workloads() == {"churn": "workbench/churn:4"}  # nothing of the challenger is left

    placement = target.start_challenger(placement, spec("3"), TrafficPolicy("split", 0.1))
    assert cluster.workloads() == {"churn": "workbench/churn:4", "churn-challenger": "workbench/churn:3"}
    route = cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", "churn", "models")
    assert [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    # An HTTPRoute's weights are static: without the router a bandit is refused before anything changes.
    for bandit in (TrafficPolicy.bandit("thompson"), TrafficPolicy.bandit("epsilon_greedy")):
        with pytest.raises(InvalidInputError, match="a bandit needs the workbench router.*router=True.*share=0.1"):
            target.set_policy(placement, bandit)
        with pytest.raises(InvalidInputError, match="a bandit needs the workbench router"):
            target.start_challenger(placement, spec("5"), bandit)
    assert [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    assert cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", "churn", "models") == route
    placement = target.set_policy(placement, TrafficPolicy("shadow"))
    route = cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", "churn", "models")
    assert route["spec"]["rules"][0]["filters"][0]["type"] == "RequestMirror"
    assert "version 4; challenger 3 (shadow, 1 ready)" in target.status(placement).detail

    promoted = target.promote(placement)
    assert cluster.workloads() == {"churn": "workbench/churn:3"}  # one version: the challenger's
    assert cluster.kinds() == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    assert promoted.handle.champion.model_uri == "models:/churn/3" and promoted.handle.challenger is None

    again = target.start_challenger(promoted, spec("4"), TrafficPolicy("split", 0.5))
    assert len(cluster.workloads()) == 2
    aborted = target.abort(again)
    assert cluster.workloads() == {"churn": "workbench/churn:3"}  # one version: the champion's
    assert "HTTPRoute" not in cluster.kinds()

    target.delete(aborted)
    assert cluster.kinds() == []


# -- the router and the shared log ----------------------------------------------------------------


def _table(docs: list[dict[str, Any]], name: str = "churn") -> dict[str, Any]:
    return json.loads(one(docs, "ConfigMap", f"{name}-router")["data"]["router.json"])["table"]


@pytest.mark.parametrize(("policy", "mode", "share", "strategy"), [
    (TrafficPolicy("split", 0.25), "split", 0.25, "thompson"),
    (TrafficPolicy("shadow"), "shadow", 0.1, "thompson"),  # the share is unused in shadow mode
    (TrafficPolicy.bandit("thompson"), "bandit", 0.0, "thompson"),
    (TrafficPolicy.bandit("epsilon_greedy", 0.3), "bandit", 0.0, "epsilon_greedy"),
])
def test_the_router_fronts_both_versions_by_their_service_dns_names(policy, mode, share, strategy) -> None:
    docs = render({"namespace": "models"}, policy)
    table = _table(docs)
    # the backends are the versions' Services in the cluster's DNS, never a pod or a loopback address
    assert table["champion"] == ["http://churn-champion.models.svc:80"]
    assert table["challenger"] == ["http://churn-challenger.models.svc:80"]
    assert (table["mode"], table["challenger_share"], table["strategy"]) == (mode, share, strategy)
    assert (table["champion_version"], table["challenger_version"]) == ("3", "4")
    assert table["shared_log"] is True  # one store: any server records any feedback
    assert "127.0.0.1" not in json.dumps(docs) and "localhost" not in json.dumps(docs)
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    assert services["churn-champion"]["spec"]["selector"] == {"app.kubernetes.io/instance": "churn",
                                                              "workbench.io/role": "champion"}
    assert services["churn-challenger"]["spec"]["selector"]["workbench.io/role"] == "challenger"
    # the clients' Service is the router's
    assert services["churn"]["spec"]["selector"] == {"app.kubernetes.io/instance": "churn", "workbench.io/role": "router"}
    router = one(docs, "Deployment", "churn-router")
    pod = router["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "workbench", "route", "--config", "/etc/workbench-router/router.json",
                                    "--host", "0.0.0.0", "--port", "8080", "--state-dir", "/var/lib/workbench-router"]
    assert "args" not in container and container["image"] == CHAMPION_IMAGE
    assert {"name": "WORKBENCH_ROUTER_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "churn-router", "key": "token", "optional": True}}} in container["env"]
    assert router["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget", "churn-router")["spec"]["maxUnavailable"] == 1
    # the router reaches the model pods (their policy admits the port) and nothing else but DNS
    policy_doc = one(docs, "NetworkPolicy", "churn-router")["spec"]
    assert policy_doc["policyTypes"] == ["Ingress", "Egress"]
    to_models = policy_doc["egress"][0]
    assert to_models["ports"] == [{"port": 8080, "protocol": "TCP"}]
    model_labels = [one(docs, "Deployment", n)["spec"]["template"]["metadata"]["labels"]
                    for n in ("churn-champion", "churn-challenger")]
    selector = to_models["to"][0]["podSelector"]
    for labels in model_labels:
        assert selector["matchLabels"].items() <= labels.items()
        assert labels["workbench.io/role"] in selector["matchExpressions"][0]["values"]
    assert "workbench.io/role" not in selector["matchLabels"]
    assert policy_doc["egress"][1] == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert len(policy_doc["egress"]) == 2  # nothing else
    for name in ("churn-champion", "churn-challenger"):
        ingress = one(docs, "NetworkPolicy", name)["spec"]["ingress"]
        assert ingress == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]  # from any pod, the router's too
    assert not by_kind(docs, "HTTPRoute")


def test_the_router_is_labelled_like_the_rest_and_a_gateway_reaches_it() -> None:
    docs = render({"namespace": "models", "gateway": "infra/public", "hostnames": "churn.models.test"},
                  TrafficPolicy.bandit("thompson"))
    for doc in docs:
        assert set(STANDARD_LABELS + WORKBENCH_LABELS) <= set(doc["metadata"]["labels"]), doc["kind"]
        assert doc["metadata"]["namespace"] == "models"
    router_objects = [d for d in docs if d["metadata"]["labels"].get("workbench.io/role") == "router"]
    assert {d["kind"] for d in router_objects} == {"ConfigMap", "Deployment", "Service", "NetworkPolicy",
                                                   "PodDisruptionBudget"}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/component"] == "router" for d in router_objects)
    route = one(docs, "HTTPRoute")
    # the Gateway sends everything to the router's Service, which shares it by the bandit
    assert route["spec"]["rules"][0]["backendRefs"] == [{"group": "", "kind": "Service", "name": "churn", "port": 80}]
    assert route["spec"]["hostnames"] == ["churn.models.test"]
    # only the router follows a bandit: KServe's canary and an HTTPRoute say so before anything is made
    for options in ({"kserve": True}, NO_ROUTER):
        with pytest.raises(InvalidInputError, match="a bandit needs the workbench router"):
            render(options, TrafficPolicy.bandit("thompson"))
    with pytest.raises(InvalidInputError, match="whole per cent"):
        KubernetesTarget("k8s://lab/models").start_challenger(
            Placement("http://x", KubernetesTarget("k8s://lab/models").read_handle({
                "name": "churn", "context": "lab", "namespace": "models", "options": {"kserve": True,
                                                                                      "log_secret": "s"},
                "champion": {"model_uri": "models:/churn/3", "model_name": "churn", "model_version": "3",
                             "image": CHAMPION_IMAGE}}), ()), spec("4"), TrafficPolicy("split", 0.125))


def test_a_new_route_table_rolls_the_router_and_nothing_else() -> None:
    split, bandit = render(policy=TrafficPolicy("split", 0.1)), render(policy=TrafficPolicy.bandit("thompson"))

    def annotations(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
        return one(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]

    assert annotations(split, "churn-router") != annotations(bandit, "churn-router")
    assert annotations(split, "churn-router")["workbench.io/route-table-sha256"] == hashlib.sha256(
        one(split, "ConfigMap", "churn-router")["data"]["router.json"].encode()).hexdigest()
    for name in ("churn-champion", "churn-challenger"):
        assert one(split, "Deployment", name) == one(bandit, "Deployment", name)


def test_the_log_goes_to_the_store_from_a_secret_never_an_empty_dir() -> None:
    for docs in (render(policy=TrafficPolicy.bandit("thompson")),
                 render({"log_url": "postgresql://wb:s3cret@pg.data.svc/predictions", "log_secret": None},
                        TrafficPolicy("shadow"))):
        secret = "churn-log" if by_kind(docs, "Secret") else STORE_SECRET
        for _, pod in pod_specs(docs):
            for container in pod["containers"]:
                env = {e["name"]: e for e in container["env"]}
                if container["name"] == "router":
                    assert "WORKBENCH_LOG_URL" not in env
                    continue
                assert env["WORKBENCH_LOG_URL"] == {"name": "WORKBENCH_LOG_URL", "valueFrom": {
                    "secretKeyRef": {"name": secret, "key": "url"}}}
                assert env["WORKBENCH_DEPLOYMENT"]["value"] == "churn"  # both versions write one deployment's log
                # the emptyDir at the log folder is the store's spool only
                log_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == LOG_DIR)
                assert log_mount["name"] == "log-spool"
        assert "s3cret" not in json.dumps([d for d in docs if d["kind"] != "Secret"])
    (written,) = by_kind(docs, "Secret")
    assert written["metadata"]["name"] == "churn-log"
    assert base64.b64decode(written["data"]["url"]).decode() == "postgresql://wb:s3cret@pg.data.svc/predictions"

    # a claim holds the log itself; without either, only one pod per version may run
    claimed = render({"log_claim": "churn-predictions"})
    for _, pod in pod_specs(claimed):
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "log-spool" not in volumes and all("emptyDir" not in v for n, v in volumes.items() if n == "predictions")
    assert _table(claimed)["shared_log"] is True
    lone = render({"log_secret": None, "replicas": 1, "max_replicas": 1})
    assert _table(lone)["shared_log"] is False  # each version's one pod: feedback goes to both
    for options in ({"log_secret": None}, {"log_secret": None, "replicas": 1}, {"log_secret": None, "kserve": True}):
        with pytest.raises(InvalidInputError, match="emptyDir, lost with the pod.*log_secret=.*log_url=.*log_claim="):
            render(options)
    with pytest.raises(InvalidInputError, match="log_secret and log_claim both say"):
        render({"log_claim": "c"} | {"log_secret": "s"})
    with pytest.raises(InvalidInputError, match="postgresql://"):
        render({"log_url": "mysql://db/x", "log_secret": None})
    assert "s3cret" not in repr(KubernetesOptionsForTest.from_options({"log_url": "postgresql://u:s3cret@h/d"}))


def test_rollouts_through_the_router_switch_its_table_after_the_versions_are_ready(monkeypatch) -> None:
    """Deploy, challenge with a bandit, change the policy, promote, abort and delete through the router,
    on the stand-in API server: the router's table (ConfigMap) changes only once the versions it
    names are ready, and the router pods roll to it before a version it no longer names goes."""
    cluster = ApiServerStandIn()
    applied: list[tuple[str, str]] = []
    apply, delete = cluster.apply, cluster.delete
    monkeypatch.setattr(cluster, "apply", lambda m, ns: applied.append(("apply", f"{m['kind']}/{m['metadata']['name']}"))
                        or apply(m, ns))
    monkeypatch.setattr(cluster, "delete", lambda v, k, n, ns: applied.append(("delete", f"{k}/{n}"))
                        or delete(v, k, n, ns))
    target = KubernetesTarget("k8s://lab/models")
    target._clusters["lab"] = cluster
    monkeypatch.setattr(time, "sleep", lambda seconds: None)

    def table() -> dict[str, Any]:
        return json.loads(cluster.get("v1", "ConfigMap", "churn-router", "models")["data"]["router.json"])["table"]

    placement = target.deploy(spec("3", image="workbench/churn:3"))
    assert placement.url == "http://churn.models.svc.cluster.local"
    assert cluster.workloads() == {"churn-champion": "workbench/churn:3", "churn-router": "workbench/churn:3"}
    token = cluster.get("v1", "Secret", "churn-router", "models")["data"]["token"]
    assert base64.b64decode(token).decode() == placement.handle.token and len(placement.handle.token) >= 32
    assert "token" not in repr(placement.handle) or placement.handle.token not in repr(placement.handle)
    assert table()["champion"] == ["http://churn-champion.models.svc:80"] and table()["challenger"] == []
    # the versions first, then the router's table, token and pods; the clients' Service once it is ready
    order = [what for verb, what in applied if verb == "apply"]
    assert order.index("Deployment/churn-champion") < order.index("ConfigMap/churn-router")
    assert order.index("Secret/churn-router") < order.index("Deployment/churn-router")
    assert order.index("Deployment/churn-router") < order.index("Service/churn")
    assert target.status(placement).state == "running"
    assert "router 2/2 ready" in target.status(placement).detail and "--- router ---" in target.logs(placement)

    images = {**placement.handle.images, "models:/churn/4": "workbench/churn:4", "models:/churn/5": "workbench/unpullable:5"}
    placement = Placement(placement.url, dataclasses.replace(placement.handle, images=images), placement.log_sources)
    before = table()
    with pytest.raises(HealthCheckError):
        target.start_challenger(placement, spec("5"), TrafficPolicy.bandit("thompson"))
    assert table() == before and "churn-challenger" not in cluster.workloads()  # the router never named it

    applied.clear()
    placement = target.start_challenger(placement, spec("4"), TrafficPolicy.bandit("thompson"))
    assert (table()["mode"], table()["strategy"], table()["challenger"]) == (
        "bandit", "thompson", ["http://churn-challenger.models.svc:80"])
    order = [what for verb, what in applied if verb == "apply"]
    assert order.index("Deployment/churn-challenger") < order.index("ConfigMap/churn-router")
    router_revision = cluster.get("apps/v1", "Deployment", "churn-router", "models")["metadata"]["generation"]
    placement = target.set_policy(placement, TrafficPolicy.bandit("epsilon_greedy", 0.2))
    assert (table()["strategy"], table()["epsilon"]) == ("epsilon_greedy", 0.2)
    assert cluster.get("apps/v1", "Deployment", "churn-router", "models")["metadata"]["generation"] > router_revision
    assert "challenger 4 (bandit, 1 ready)" in target.status(placement).detail

    applied.clear()
    promoted = target.promote(placement)
    assert cluster.workloads() == {"churn-champion": "workbench/churn:4", "churn-router": "workbench/churn:4"}
    assert table()["challenger"] == [] and table()["champion_version"] == "4"
    # the challenger's Deployment goes only after the router's last roll to a table without it
    last_router_roll = max(i for i, step in enumerate(applied) if step == ("apply", "Deployment/churn-router"))
    assert applied.index(("delete", "Deployment/churn-challenger")) > last_router_roll

    again = target.start_challenger(promoted, spec("3"), TrafficPolicy("shadow"))
    assert table()["mode"] == "shadow"
    aborted = target.abort(again)
    assert cluster.workloads() == {"churn-champion": "workbench/churn:4", "churn-router": "workbench/churn:4"}
    assert table()["challenger"] == []
    target.delete(aborted)
    assert cluster.kinds() == [] and not [k for k in cluster.objects if k[0] in ("ConfigMap", "Secret")]


def test_the_settings_log_store_is_the_default_and_its_password_stays_in_a_secret(monkeypatch) -> None:
    """Like the swarm target, a deployment that names no place for its log writes the settings' store
    (WORKBENCH_LOG_URL): the target writes it into Secret NAME-log, and the deployment's log source is
    the store itself, without the password."""
    from workbench.config import configure, get_settings

    cluster = ApiServerStandIn()
    target = KubernetesTarget("k8s://lab/models")
    target._clusters["lab"] = cluster
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    url = "postgresql://wb:s3cret@pg.data.svc:5432/predictions"
    before = get_settings()
    try:
        configure(log_url=None)
        with pytest.raises(InvalidInputError, match="emptyDir, lost with the pod"):
            target.deploy(spec("3", image="workbench/churn:3", log_secret=None))
        configure(log_url=url)
        placement = target.deploy(spec("3", image="workbench/churn:3", log_secret=None))
    finally:
        configure(before)
    secret = cluster.get("v1", "Secret", "churn-log", "models")
    assert base64.b64decode(secret["data"]["url"]).decode() == url
    env = {e["name"]: e for e in cluster.get("apps/v1", "Deployment", "churn-champion", "models")[
        "spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WORKBENCH_LOG_URL"]["valueFrom"] == {"secretKeyRef": {"name": "churn-log", "key": "url"}}
    (source,) = placement.log_sources
    assert source.startswith("postgresql://wb@pg.data.svc:5432/predictions") and "deployment=churn" in source
    assert "s3cret" not in source and "s3cret" not in repr(placement.handle)
    target.delete(placement)
    assert cluster.get("v1", "Secret", "churn-log", "models") is None


def test_a_deployment_from_before_the_router_moves_behind_it_on_its_next_update(monkeypatch) -> None:
    """A record written before the router keeps its layout (the champion's objects named NAME) until its
    next update, which brings the router in: the clients' Service NAME keeps its name and turns to the
    router once it is ready, and the champion's old objects go."""
    cluster = ApiServerStandIn()
    target = KubernetesTarget("k8s://lab/models")
    target._clusters["lab"] = cluster
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    old = target.deploy(spec("3", image="workbench/churn:3", router=False))
    record = json.loads(json.dumps(old.to_dict()))
    for key in ("router", "router_replicas", "router_image", "log_secret", "log_url"):
        record["handle"]["options"].pop(key)  # as a record from before wrote it
    record["handle"].pop("token")
    placement = Placement.from_dict(record, target.read_handle)
    assert placement.handle.options.router is False and target.status(placement).state == "running"
    assert cluster.workloads() == {"churn": "workbench/churn:3"}

    updated = target.update(placement, spec("4", image="workbench/churn:4"))
    assert cluster.workloads() == {"churn-champion": "workbench/churn:4", "churn-router": "workbench/churn:4"}
    service = cluster.get("v1", "Service", "churn", "models")
    assert service["spec"]["selector"]["workbench.io/role"] == "router"
    assert updated.url == old.url and updated.handle.token
    assert target.status(updated).state == "running"


# -- a real cluster -----------------------------------------------------------------------------

def test_live_cluster_deploy_update_rollback_and_delete(live_cluster, register_versions) -> None:
    """Deploy, check ready, update, roll back and delete on a live cluster (opted into with KUBECONFIG)."""
    from kubernetes import client, config
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    context, namespace, registry = live_cluster.context, live_cluster.namespace, live_cluster.registry
    v1, v2 = register_versions(
        [RandomForestClassifier(n_estimators=10, random_state=0), GradientBoostingClassifier(random_state=0)],
        "k8s-live", "k8s-live")
    model_name = v1.name
    api = config.new_client_from_config(context=context)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)

    def served_version(name: str) -> list[str]:
        # through the API server's service proxy: no port-forward or ingress needed
        body = core.connect_get_namespaced_service_proxy_with_path(f"{name}:http", namespace,
                                                                   f"v2/models/{model_name}")
        return list((json.loads(body) if isinstance(body, str) else body)["versions"])

    name = f"live-{uuid.uuid4().hex[:6]}"
    target = f"k8s://{context}/{namespace}"
    # one pod per version (an emptyDir log is allowed then), behind the router
    dep = wb.deploy(v1.uri, target=target, name=name, registry=registry, replicas=1, max_replicas=1,
                    router_replicas=1)
    try:
        assert (dep.state, dep.healthy) == ("running", True), dep.detail
        assert served_version(name) == [v1.version]
        assert "serving" in wb.logs(name)
        updated = wb.update(name, v2.uri)
        assert (updated.model_version, updated.healthy) == (v2.version, True)
        assert served_version(name) == [v2.version]
        back = wb.rollback(name)
        assert (back.model_version, back.healthy) == (v1.version, True)
        assert served_version(name) == [v1.version]
    finally:
        wb.stop(name)
    for deployment in (f"{name}-champion", f"{name}-router"):
        with pytest.raises(client.ApiException) as gone:
            apps.read_namespaced_deployment(deployment, namespace)
        assert gone.value.status == 404


def _run_live_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The live test in a pytest of its own, under CI's strict mode, with ``env`` as its only cluster settings."""
    clean = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith("WORKBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         f"{__file__}::test_live_cluster_deploy_update_rollback_and_delete"],
        env={**clean, "WORKBENCH_STRICT_TESTS": "1", **env}, cwd=tmp_path, capture_output=True, text=True,
        timeout=300)


def test_the_live_test_is_skipped_by_name_without_kubeconfig_and_fails_in_ci_with_a_dead_one(tmp_path: Path) -> None:
    """The live cluster goes through the strict-mode rule: no KUBECONFIG is a deliberate, named skip
    (CI has no cluster); a KUBECONFIG whose cluster does not answer fails in CI instead of skipping."""
    unset = _run_live_test(tmp_path)
    assert unset.returncode == 0, unset.stdout + unset.stderr
    assert "1 skipped" in unset.stdout
    assert "no live Kubernetes cluster" in unset.stdout and "set KUBECONFIG to run this test" in unset.stdout

    dead = _kubeconfig(tmp_path / "config", f"https://127.0.0.1:{_closed_port()}")
    offered = _run_live_test(tmp_path, KUBECONFIG=str(dead), WORKBENCH_TEST_REGISTRY="127.0.0.1:5000/models")
    assert offered.returncode == 1, offered.stdout + offered.stderr
    assert "1 error" in offered.stdout and " skipped" not in offered.stdout.splitlines()[-1]  # failed in its fixture
    assert "the cluster of context 'lab' does not answer" in offered.stdout
    assert "WORKBENCH_STRICT_TESTS=1: CI must provide it" in offered.stdout
