"""Default resource requests and limits of a model server, from what is known about it.

A pod without requests is BestEffort: the first evicted, and refused by many clusters' admission
policies. ``workbench manifests`` and the ``k8s`` target therefore always set them; the user's
``requests`` / ``limits`` options win key by key.

Memory: the inference server's own footprint plus the model. The footprint was measured on a
running ``workbench serve`` (resident set size after loading a scikit-learn model and answering 200
requests, Python 3.11, 2026-11): 297 MiB with a 12 KB linear model and 295 MiB with a 12 MB random
forest, so the server dominates small models. ``tests/core/test_kubernetes.py`` measures it again
with a real model and checks the default request still covers it. A model in memory takes about its
size on disk, and copies appear while a batch is predicted: it is counted twice. The request adds a
quarter for headroom; the limit is twice the request, for large batches and explanations, so a pod
that leaks is restarted before it starves its node.

CPU: a request of a quarter core (the autoscaler scales on utilization of it). No CPU limit by
default: a limit throttles a busy server in 100 ms slices (latency spikes) while the request already
guarantees its share; give ``limits={"cpu": ...}`` where a namespace's quota requires one.

The router (:func:`router_resources`) holds no model: its footprint was measured the same way on a
running ``workbench route`` (resident set size after 200 requests, 2026-12): 140 MiB.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CPU_REQUEST", "ROUTER_FOOTPRINT_MIB", "SERVER_FOOTPRINT_MIB", "Resources", "default_resources",
           "memory_quantity", "quantity_value", "router_resources"]

#: Resident memory of the inference server with a small model loaded (measured; see the module docs).
SERVER_FOOTPRINT_MIB = 300
#: The CPU request of a model server.
CPU_REQUEST = "250m"
#: Resident memory of the router (measured; see the module docs).
ROUTER_FOOTPRINT_MIB = 140
_ROUTER_CPU_REQUEST = "100m"
_MODEL_FACTOR = 2.0
_HEADROOM = 1.25
_LIMIT_FACTOR = 2
_STEP_MIB = 64


@dataclass(frozen=True)
class Resources:
    """A container's resource requests and limits, as Kubernetes quantities."""

    requests: Mapping[str, str]
    limits: Mapping[str, str]

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The container's ``resources`` field (empty parts left out)."""
        out: dict[str, dict[str, str]] = {}
        if self.requests:
            out["requests"] = dict(self.requests)
        if self.limits:
            out["limits"] = dict(self.limits)
        return out


def memory_quantity(mib: float) -> str:
    """``mib`` rounded up to a multiple of 64 MiB, as a quantity (``"384Mi"``, ``"2Gi"``)."""
    rounded = max(_STEP_MIB, math.ceil(mib / _STEP_MIB) * _STEP_MIB)
    return f"{rounded // 1024}Gi" if rounded % 1024 == 0 else f"{rounded}Mi"


_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
             "Ti": 2**40, "m": 1e-3}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")


def quantity_value(text: str) -> float | None:
    """A Kubernetes quantity as a number (bytes, or cores): ``"512Mi"`` -> 536870912, ``"250m"`` -> 0.25;
    ``None`` for forms this does not read (the cluster still checks them)."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        return None
    return float(match.group(1)) * _SUFFIXES[match.group(2) or ""]


def default_resources(model_bytes: int | None, *, requests: Mapping[str, str] | None = None,
                      limits: Mapping[str, str] | None = None) -> Resources:
    """Requests and limits for a server of a model of ``model_bytes`` (``None``: unknown, the server's
    footprint and 256 MiB for the model), with the user's ``requests`` / ``limits`` winning key by key.

    A default never contradicts what the user gave: a default request above the user's limit is
    lowered to it, a default limit below the user's request is raised to twice it.

    Example: ``default_resources(12_000_000).to_dict()`` ->
    ``{"requests": {"cpu": "250m", "memory": "448Mi"}, "limits": {"memory": "896Mi"}}``.
    """
    given_requests, given_limits = dict(requests or {}), dict(limits or {})
    model_mib = 256.0 if model_bytes is None else model_bytes / 2**20
    memory_mib = (SERVER_FOOTPRINT_MIB + _MODEL_FACTOR * model_mib) * _HEADROOM
    chosen_requests = {"cpu": CPU_REQUEST, "memory": memory_quantity(memory_mib)}
    chosen_limits = {"memory": memory_quantity(math.ceil(memory_mib / _STEP_MIB) * _STEP_MIB * _LIMIT_FACTOR)}
    for key, limit in given_limits.items():
        if key in chosen_requests and key not in given_requests:
            wanted, ceiling = quantity_value(chosen_requests[key]), quantity_value(limit)
            if wanted is not None and ceiling is not None and wanted > ceiling:
                chosen_requests[key] = limit
    for key, request in given_requests.items():
        if key in chosen_limits and key not in given_limits:
            floor, ceiling = quantity_value(request), quantity_value(chosen_limits[key])
            if floor is None:
                del chosen_limits[key]  # cannot compare: leave the limit to the user
            elif ceiling is not None and floor > ceiling:
                chosen_limits[key] = memory_quantity(floor * _LIMIT_FACTOR / 2**20)
    return Resources(requests={**chosen_requests, **given_requests}, limits={**chosen_limits, **given_limits})


def router_resources() -> Resources:
    """Requests and limits of a router pod: its measured footprint with the same headroom as a model
    server's, and a memory limit of twice that for the request bodies it holds while forwarding.

    ``router_resources().to_dict()`` -> ``{"requests": {"cpu": "100m", "memory": "192Mi"},
    "limits": {"memory": "384Mi"}}``.
    """
    memory_mib = ROUTER_FOOTPRINT_MIB * _HEADROOM
    return Resources(requests={"cpu": _ROUTER_CPU_REQUEST, "memory": memory_quantity(memory_mib)},
                     limits={"memory": memory_quantity(math.ceil(memory_mib / _STEP_MIB) * _STEP_MIB * _LIMIT_FACTOR)})
