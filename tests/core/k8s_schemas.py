"""Offline validation of Kubernetes manifests: the official schemas, and what the API server checks.

- Core kinds (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget) are validated by
  ``kubernetes-validate`` against the JSON schemas of the Kubernetes release's OpenAPI, in strict
  mode (an unknown field is an error, as with ``kubectl apply --validate=strict``).
- kubernetes-validate has no schemas for custom resources, so HTTPRoute and InferenceService are
  validated against the JSON schemas below, written from the projects' own CRD definitions.
- :func:`check_object_syntax` adds what the API server validates beyond the OpenAPI schema (name,
  label and port-name syntax, from k8s.io/apimachinery's validation rules).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

#: Kubernetes releases every core manifest is validated against: the newest kubernetes-validate ships
#: and the oldest still supported by the big managed offerings.
K8S_VERSIONS = ("1.37", "1.30")
_DEFS = "https://kubernetes.io/api/_definitions.json"


@cache
def _definitions(version: str) -> dict[str, Any]:
    folder = f"v{version}.0-local-strict"
    path = resources.files("kubernetes_validate") / "kubernetes-json-schema" / folder / "_definitions.json"
    return json.loads(path.read_text())


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"{_DEFS}#/$defs/{name}"}


# -- Gateway API HTTPRoute v1 ------------------------------------------------------------------
# Written from the Gateway API standard-channel CRD for HTTPRoute, version v1 (kubernetes-sigs/
# gateway-api, config/crd/standard/gateway.networking.k8s.io_httproutes.yaml; the same openAPIV3Schema
# as published in JSON form in datreeio/CRDs-catalog, gateway.networking.k8s.io/httproute_v1.json).
# Types, bounds, enums, patterns and required fields are the CRD's. additionalProperties: false is
# what the API server does with a structural schema under strict field validation. The CEL rules
# (x-kubernetes-validations) that concern what workbench writes are expressed with if/then/not.

_GROUP = {"type": "string", "maxLength": 253,
          "pattern": r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_KIND = {"type": "string", "minLength": 1, "maxLength": 63, "pattern": r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"}
_OBJECT_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_NAMESPACE = {"type": "string", "minLength": 1, "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_SECTION_NAME = {"type": "string", "minLength": 1, "maxLength": 253,
                 "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_HOSTNAME = {"type": "string", "minLength": 1, "maxLength": 253,
             "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_PRECISE_HOSTNAME = {**_HOSTNAME, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_HEADER_NAME = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"}
_DURATION = {"type": "string", "pattern": r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"}

# CEL "Must have port for Service reference":
#   (size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true
# group defaults to "" and kind to "Service", so an absent one counts as those.
_SERVICE_NEEDS_PORT = {"if": {"properties": {"group": {"const": ""}, "kind": {"const": "Service"}}},
                       "then": {"required": ["port"]}}

_BACKEND_OBJECT_REFERENCE = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"group": _GROUP, "kind": _KIND, "name": _OBJECT_NAME, "namespace": _NAMESPACE, "port": _PORT},
    **_SERVICE_NEEDS_PORT,
}
_HEADERS = {"type": "array", "maxItems": 16, "items": {
    "type": "object", "required": ["name", "value"], "additionalProperties": False,
    "properties": {"name": _HEADER_NAME, "value": {"type": "string", "minLength": 1, "maxLength": 4096}},
}}
_HEADER_MODIFIER = {"type": "object", "additionalProperties": False, "properties": {
    "add": _HEADERS, "set": _HEADERS, "remove": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
}}
_PATH_MODIFIER = {
    "type": "object", "required": ["type"], "additionalProperties": False,
    "properties": {"type": {"enum": ["ReplaceFullPath", "ReplacePrefixMatch"]},
                   "replaceFullPath": {"type": "string", "maxLength": 1024},
                   "replacePrefixMatch": {"type": "string", "maxLength": 1024}},
}
_REQUEST_MIRROR = {
    "type": "object", "required": ["backendRef"], "additionalProperties": False,
    "properties": {
        "backendRef": _BACKEND_OBJECT_REFERENCE,
        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "fraction": {"type": "object", "required": ["numerator"], "additionalProperties": False,
                     "properties": {"numerator": {"type": "integer", "minimum": 0},
                                    "denominator": {"type": "integer", "minimum": 1}}},
    },
    # CEL: "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"
    "not": {"required": ["percent", "fraction"]},
}
_FILTER_FIELDS = {"RequestHeaderModifier": "requestHeaderModifier", "ResponseHeaderModifier": "responseHeaderModifier",
                  "RequestMirror": "requestMirror", "RequestRedirect": "requestRedirect", "URLRewrite": "urlRewrite",
                  "ExtensionRef": "extensionRef"}
_FILTER = {
    "type": "object", "required": ["type"], "additionalProperties": False,
    "properties": {
        "type": {"enum": list(_FILTER_FIELDS)},
        "requestHeaderModifier": _HEADER_MODIFIER,
        "responseHeaderModifier": _HEADER_MODIFIER,
        "requestMirror": _REQUEST_MIRROR,
        "requestRedirect": {"type": "object", "additionalProperties": False, "properties": {
            "hostname": _PRECISE_HOSTNAME, "path": _PATH_MODIFIER, "port": _PORT,
            "scheme": {"enum": ["http", "https"]}, "statusCode": {"enum": [301, 302]}}},
        "urlRewrite": {"type": "object", "additionalProperties": False,
                       "properties": {"hostname": _PRECISE_HOSTNAME, "path": _PATH_MODIFIER}},
        "extensionRef": {"type": "object", "required": ["group", "kind", "name"], "additionalProperties": False,
                         "properties": {"group": _GROUP, "kind": _KIND, "name": _OBJECT_NAME}},
    },
    # CEL: "filter.<field> must be specified for <Type> filter.type" and "must be nil if the
    # filter.type is not <Type>", for each of the six types.
    "allOf": [{"if": {"properties": {"type": {"const": kind}}}, "then": {"required": [name]},
               "else": {"not": {"required": [name]}}} for kind, name in _FILTER_FIELDS.items()],
}
_FILTERS = {"type": "array", "maxItems": 16, "items": _FILTER}
_PATH_MATCH = {
    "type": "object", "additionalProperties": False,
    "properties": {"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                   "value": {"type": "string", "maxLength": 1024}},
    # CEL: an Exact or PathPrefix value is an absolute path ("must be an absolute path and start
    # with '/'", "must not contain '//'", and the valid-characters rule); type defaults to PathPrefix.
    "if": {"properties": {"type": {"enum": ["Exact", "PathPrefix"]}}},
    "then": {"properties": {"value": {"pattern": r"^/(?!.*//)(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})*$"}}},
}
_MATCH = {"type": "object", "additionalProperties": False, "properties": {
    "path": _PATH_MATCH,
    "method": {"enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]},
    "headers": {"type": "array", "maxItems": 16, "items": {
        "type": "object", "required": ["name", "value"], "additionalProperties": False,
        "properties": {"name": _HEADER_NAME, "type": {"enum": ["Exact", "RegularExpression"]},
                       "value": {"type": "string", "minLength": 1, "maxLength": 4096}}}},
    "queryParams": {"type": "array", "maxItems": 16, "items": {
        "type": "object", "required": ["name", "value"], "additionalProperties": False,
        "properties": {"name": _HEADER_NAME, "type": {"enum": ["Exact", "RegularExpression"]},
                       "value": {"type": "string", "minLength": 1, "maxLength": 1024}}}},
}}
_HTTP_BACKEND_REF = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"group": _GROUP, "kind": _KIND, "name": _OBJECT_NAME, "namespace": _NAMESPACE, "port": _PORT,
                   "weight": {"type": "integer", "minimum": 0, "maximum": 1_000_000}, "filters": _FILTERS},
    **_SERVICE_NEEDS_PORT,
}
_RULE = {"type": "object", "additionalProperties": False, "properties": {
    "matches": {"type": "array", "maxItems": 64, "items": _MATCH},
    "filters": _FILTERS,
    "backendRefs": {"type": "array", "maxItems": 16, "items": _HTTP_BACKEND_REF},
    "timeouts": {"type": "object", "additionalProperties": False,
                 "properties": {"request": _DURATION, "backendRequest": _DURATION}},
}}
_PARENT_REFERENCE = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"group": _GROUP, "kind": _KIND, "name": _OBJECT_NAME, "namespace": _NAMESPACE,
                   "sectionName": _SECTION_NAME, "port": _PORT},
}
HTTPROUTE_V1 = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {"allOf": [_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), {"required": ["name"]}]},
        "spec": {"type": "object", "additionalProperties": False, "properties": {
            "parentRefs": {"type": "array", "maxItems": 32, "items": _PARENT_REFERENCE},
            "hostnames": {"type": "array", "maxItems": 16, "items": _HOSTNAME},
            "rules": {"type": "array", "maxItems": 16, "items": _RULE},
        }},
        "status": {"type": "object"},
    },
}


# -- KServe InferenceService v1beta1 -----------------------------------------------------------
# Written from KServe's CRD for InferenceService v1beta1 (kserve/kserve,
# config/crd/full/serving.kserve.io_inferenceservices.yaml), which controller-gen generates from the
# Go types of pkg/apis/serving/v1beta1: PredictorSpec inlines corev1.PodSpec and
# ComponentExtensionSpec (component.go) beside one-of framework specs (sklearn, model, ...). The
# PodSpec part uses the Kubernetes schemas kubernetes-validate ships (the same corev1 types), so a
# container or a volume is checked as strictly as in a Deployment. The name pattern is KServe's
# (InvalidISVCNameFormatError in component.go).

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_COMPONENT_EXTENSION = {
    "minReplicas": {"type": "integer", "minimum": 0},
    "maxReplicas": {"type": "integer", "minimum": 0},
    "scaleTarget": {"type": "integer"},
    "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
    "scaleMetricType": {"enum": ["Utilization", "AverageValue"]},
    "containerConcurrency": {"type": "integer", "minimum": 0},
    "timeout": {"type": "integer"},
    # An int64 in the CRD; bounded here because it is a per cent of traffic.
    "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
    "logger": {"type": "object"},
    "batcher": {"type": "object"},
    "labels": _STRING_MAP,
    "annotations": _STRING_MAP,
    "deploymentStrategy": _ref("io.k8s.api.apps.v1.DeploymentStrategy"),
    "autoScaling": {"type": "object"},
}
_ISVC_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_FRAMEWORKS = ("sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm",
               "paddle", "model", "workerSpec")


@cache
def inference_service_v1beta1(version: str) -> dict[str, Any]:
    """The InferenceService schema, with the PodSpec fields of Kubernetes ``version``."""
    pod_spec = _definitions(version)["$defs"]["io.k8s.api.core.v1.PodSpec"]["properties"]
    pod_fields = {name: _absolute_refs(schema) for name, schema in pod_spec.items()}
    predictor = {"type": "object", "additionalProperties": False, "properties": {
        **pod_fields, **_COMPONENT_EXTENSION, **{f: {"type": "object"} for f in _FRAMEWORKS}}}
    return {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "serving.kserve.io/v1beta1"},
            "kind": {"const": "InferenceService"},
            "metadata": {"allOf": [_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), {
                "required": ["name"], "properties": {"name": {"type": "string", "pattern": _ISVC_NAME}},
            }]},
            "spec": {"type": "object", "required": ["predictor"], "additionalProperties": False, "properties": {
                "predictor": predictor, "transformer": {"type": "object"}, "explainer": {"type": "object"}}},
            "status": {"type": "object"},
        },
    }


def _absolute_refs(schema: Any) -> Any:
    """A copy of ``schema`` whose ``#/$defs/...`` references point into the Kubernetes definitions."""
    if isinstance(schema, dict):
        return {k: (v.replace("#", f"{_DEFS}#", 1) if k == "$ref" and v.startswith("#") else _absolute_refs(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_absolute_refs(v) for v in schema]
    return schema


@cache
def _registry(version: str) -> Registry:
    return Resource.from_contents(_definitions(version)) @ Registry()


def validate(manifest: dict[str, Any], version: str = K8S_VERSIONS[0]) -> None:
    """Raise jsonschema.ValidationError (or kubernetes_validate's) when ``manifest`` is not valid."""
    kind = manifest.get("kind")
    if kind == "HTTPRoute":
        schema: dict[str, Any] = HTTPROUTE_V1
    elif kind == "InferenceService":
        schema = inference_service_v1beta1(version)
    else:
        kubernetes_validate.validate(manifest, version, strict=True)
        return
    jsonschema.Draft202012Validator(schema, registry=_registry(version)).validate(manifest)


# -- what the API server checks besides the schema (k8s.io/apimachinery/pkg/util/validation) -------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def _key_problems(key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not _DNS1123_SUBDOMAIN.match(prefix) or len(prefix) > 253):
        problems.append(f"key prefix {prefix!r}")
    if not _QUALIFIED_NAME.match(name) or len(name) > 63:
        problems.append(f"key name {name!r}")
    return problems


def _walk(obj: Any, path: str = "") -> Any:
    if isinstance(obj, dict):
        yield path, obj
        for key, value in obj.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{path}[{i}]")


def check_object_syntax(manifest: dict[str, Any]) -> list[str]:
    """What the API server would reject although the schema allows it; empty when all is well."""
    problems = []
    name = manifest["metadata"]["name"]
    # Services need RFC 1035 labels, the strictest name rule; we hold every object to it.
    if not _DNS1035_LABEL.match(name) or len(name) > 63:
        problems.append(f"name {name!r} is not an RFC 1035 label")
    for path, node in _walk(manifest):
        is_service_selector = path == ".spec.selector" and manifest["kind"] == "Service"
        if path.endswith(("labels", "matchLabels")) or is_service_selector:
            for key, value in node.items():
                problems += [f"{path}: {p}" for p in _key_problems(key)]
                if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
                    problems.append(f"{path}: label value {value!r}")
        if path.endswith("annotations"):
            for key, value in node.items():
                problems += [f"{path}: {p}" for p in _key_problems(key)]
                if not isinstance(value, str):
                    problems.append(f"{path}: annotation {key} is not a string")
        if "containerPort" in node and "name" in node:
            port_name = node["name"]
            if not (_IANA_SVC_NAME.match(port_name) and len(port_name) <= 15 and "--" not in port_name
                    and re.search("[a-z]", port_name)):
                problems.append(f"{path}: port name {port_name!r} is not an IANA service name")
        if path.endswith("]") and "image" in node and "name" in node:  # a container
            if not _DNS1123_LABEL.match(node["name"]):
                problems.append(f"{path}: container name {node['name']!r}")
    return problems
