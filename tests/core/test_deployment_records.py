"""Deployment records: typed handles written and read back, and records written by earlier versions.

Each target keeps a typed, frozen handle in the workspace's deployment record; the record's JSON keeps
the keys earlier versions wrote, so a workspace from before the handles were typed still lists,
inspects and stops its deployments.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

import workbench as wb
from workbench.config import get_settings
from workbench.deployment import Placement, TrafficPolicy
from workbench.deployment.targets.docker import DockerTarget, ModelContainer, RouterContainer
from workbench.deployment.targets.kubernetes import KubernetesHandle, KubernetesTarget
from workbench.deployment.targets.local import LocalTarget, RouterProcess, ServerProcess
from workbench.deployment.routed import Backend, RoutedHandle
from workbench.deployment.store import DeploymentStore
from workbench.deployment.targets.swarm import ModelService, RouterService, SwarmTarget
from workbench.errors import DeploymentNotFoundError, InvalidInputError


def _finished_pid() -> int:
    """The pid of a process that has exited (so nothing is ever signalled by these tests)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _store_record(target: str, placement: dict[str, Any]) -> str:
    """A deployment record holding ``placement`` exactly as given, as an earlier version wrote it."""
    name = f"old-{uuid.uuid4().hex[:6]}"
    store = DeploymentStore(get_settings().workspace_db)
    store.reserve(name, target, "models:/churn/3", "models:/churn/3", "churn", "3", {}, "someone")
    store.activate(name, placement, "deploy", "someone")
    return name


def test_a_local_record_from_before_typed_handles_is_listed_inspected_and_stopped() -> None:
    pid = _finished_pid()
    # The shape the previous version stored: log_sources inside the handle, the handles as dicts.
    server = {"pid": pid, "start_time": "not-its-start-time", "log_file": "/nonexistent/champion-r1.log",
              "log_dir": "/nonexistent/predictions"}
    old = {"url": "http://127.0.0.1:9", "handle": {
        "log_sources": ["http://127.0.0.1:8"],
        "router": {"pid": pid, "start_time": "not-its-start-time", "log_file": "/nonexistent/router.log",
                   "config": "/nonexistent/router.json"},
        "token": "secret",
        "champion": {"internal_urls": ["http://127.0.0.1:8"], "urls": ["http://127.0.0.1:8"],
                     "model_uri": "models:/churn/3", "model_version": "3", "handle": server},
        "challenger": None,
        "policy": None,
    }}
    name = _store_record("local", old)

    dep = wb.get_deployment(name)
    assert (dep.state, dep.healthy) == ("gone", False)
    assert dep.detail == "the router is no longer running"
    assert dep.url == "http://127.0.0.1:9"
    assert dep.log_sources == ("http://127.0.0.1:8",)
    assert dep.replica_urls == ("http://127.0.0.1:8",)
    assert isinstance(dep.handle, RoutedHandle)
    assert dep.handle.champion.handle == ServerProcess(pid, "not-its-start-time", "/nonexistent/champion-r1.log",
                                                       "/nonexistent/predictions")
    assert dep.handle.token == "secret"
    assert name in [d.name for d in wb.deployments()]

    wb.stop(name)
    assert name not in [d.name for d in wb.deployments()]


def test_a_k8s_record_from_before_typed_handles_reads_its_log_through_the_url(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    old = {"url": "http://churn.models.svc.cluster.local", "handle": {
        "name": "churn", "context": "lab", "namespace": "models", "kind": "deployment", "options": {},
        "champion": {"model_uri": "models:/churn/3", "model_name": "churn", "model_version": "3",
                     "image": "workbench/churn:3"},
        "challenger": None, "policy": None, "images": {"models:/churn/3": "workbench/churn:3"}}}
    name = _store_record("k8s://lab/models", old)
    try:
        dep = wb.get_deployment(name)
        assert (dep.state, dep.healthy) == ("unhealthy", False)
        assert "the cluster cannot be reached" in dep.detail and "KUBECONFIG" in dep.detail
        assert dep.log_sources == ("http://churn.models.svc.cluster.local",)
        assert isinstance(dep.handle, KubernetesHandle)
        assert dep.handle.images == {"models:/churn/3": "workbench/churn:3"}
        assert dep.handle.options.replicas == 2  # the defaults, as the options were stored empty
    finally:
        DeploymentStore(get_settings().workspace_db).remove(name, "someone")


def test_a_record_this_version_cannot_read_shows_as_gone_with_the_reason() -> None:
    name = _store_record("local", {"url": "http://127.0.0.1:9", "handle": {"pid": 1}})
    try:
        listed = {d.name: d for d in wb.deployments()}  # one unreadable record does not break the listing
        dep = listed[name]
        assert (dep.state, dep.healthy, dep.handle) == ("gone", False, None)
        assert dep.detail.startswith("the deployment record is not one this version understands")
        assert dep.log_sources == ("http://127.0.0.1:9",)
    finally:
        DeploymentStore(get_settings().workspace_db).remove(name, "someone")


@pytest.mark.parametrize(("target", "backend", "router"), [
    (LocalTarget(), ServerProcess(41, "7", "/w/champion-r1.log", "/w/predictions"),
     RouterProcess(40, "6", "/w/router.log", "/w/router.json")),
    (DockerTarget(), ModelContainer("workbench-churn-champion-r1", "c0ffee", "workbench/churn:3",
                                    "workbench-churn-predictions"),
     RouterContainer("workbench-churn-router", "beef")),
    (SwarmTarget(), ModelService("workbench-churn-champion-r1", "s1", "workbench/churn:3", 2, "workbench", "churn"),
     RouterService("workbench-churn-router", "s0")),
])
def test_routed_placements_go_through_json_and_come_back_equal(target: Any, backend: Any, router: Any) -> None:
    champion = Backend(("http://a:8080",), ("http://127.0.0.1:43211",), "models:/churn/3", "3", backend)
    challenger = Backend(("http://b:8080",), ("http://127.0.0.1:43212",), "models:/churn/4", "4", backend)
    for policy in (TrafficPolicy.bandit("epsilon_greedy", 0.3), TrafficPolicy.bandit("thompson")):
        bandit = Placement("http://127.0.0.1:9", RoutedHandle(router, "t", champion, challenger, policy))
        assert Placement.from_dict(json.loads(json.dumps(bandit.to_dict())), target.read_handle) == bandit
    placement = Placement("http://127.0.0.1:9", RoutedHandle(router, "t", champion, challenger,
                                                               TrafficPolicy("shadow", 0.25)),
                          ("http://127.0.0.1:43211",))
    stored = json.loads(json.dumps(placement.to_dict()))
    assert Placement.from_dict(stored, target.read_handle) == placement
    assert stored["handle"]["policy"] == {"mode": "shadow", "challenger_share": 0.25}  # as records always had it
    # the keys earlier versions wrote stay where they were
    assert set(stored["handle"]) == {"router", "token", "champion", "challenger", "policy"}
    assert stored["handle"]["champion"]["handle"] == backend.to_dict()


def test_traffic_policies_say_what_goes_with_what() -> None:
    assert TrafficPolicy.from_dict({"mode": "split", "challenger_share": 0.2}) == TrafficPolicy("split", 0.2)
    assert TrafficPolicy.describe(TrafficPolicy.bandit("epsilon_greedy", 0.2).to_dict()) == (
        "bandit (epsilon_greedy, epsilon 0.2): shares follow the rewards fed back")
    for bad, message in (({"mode": "bandit"}, "strategy is 'thompson' or 'epsilon_greedy'"),
                         ({"mode": "split", "strategy": "thompson"}, "the split mode takes neither"),
                         ({"mode": "bandit", "strategy": "thompson", "epsilon": 0.2}, "epsilon_greedy strategy only"),
                         ({"mode": "bandit", "strategy": "epsilon_greedy", "epsilon": 0}, "above 0")):
        with pytest.raises(InvalidInputError, match=message):
            TrafficPolicy.from_dict(bad)


def test_a_k8s_placement_goes_through_json_and_comes_back_equal() -> None:
    target = KubernetesTarget("k8s://lab/models")
    stored = {"url": "http://churn.models.svc.cluster.local", "handle": {
        "name": "churn", "context": "lab", "namespace": "models", "options": {"replicas": 3, "kserve": False},
        "champion": {"model_uri": "models:/churn/3", "model_name": "churn", "model_version": "3",
                     "image": "workbench/churn:3", "model_bytes": 1200},
        "challenger": {"model_uri": "models:/churn/4", "model_name": "churn", "model_version": "4",
                       "image": "workbench/churn:4"},
        "policy": {"mode": "split", "challenger_share": 0.2}, "images": {}}}
    placement = Placement.from_dict(stored, target.read_handle)
    assert placement.handle.options.replicas == 3 and placement.handle.challenger.model_version == "4"
    assert placement.handle.policy == TrafficPolicy("split", 0.2)
    assert Placement.from_dict(json.loads(json.dumps(placement.to_dict())), target.read_handle) == placement



def test_history_keeps_the_order_things_happened_in_even_within_one_second() -> None:
    """Deploy, stop, deploy, update, stop within one second (a notebook re-run does that): the history
    reads in that order, each stop after the revision it stopped."""
    store = DeploymentStore(get_settings().workspace_db)
    name = f"quick-{uuid.uuid4().hex[:6]}"
    placement = {"url": "http://127.0.0.1:9", "handle": {}}

    def deploy() -> None:
        store.reserve(name, "local", "models:/churn/3", "models:/churn/3", "churn", "3", {}, "someone")
        store.activate(name, placement, "deploy", "someone")

    deploy()
    store.remove(name, "someone")
    deploy()
    store.replace(name, requested_uri="models:/churn/4", model_uri="models:/churn/4", model_name="churn",
                  model_version="4", placement=placement, action="update", user="someone")
    store.remove(name, "someone")
    history = wb.deployment_history(name)
    assert [(h.action, h.revision) for h in history] == [
        ("deploy", 1), ("stop", 1), ("deploy", 2), ("update", 3), ("stop", 3)]
    with pytest.raises(DeploymentNotFoundError, match="was stopped"):
        wb.get_deployment(name)


def test_a_swarm_record_of_the_host_network_design_says_to_deploy_again() -> None:
    old = {"service": "workbench-churn-champion-r1", "service_id": "s1", "image": "workbench/churn:3", "replicas": 2,
           "port_prefix": 4321}
    with pytest.raises(wb.DeploymentError, match="docker service rm` and deploy again"):
        ModelService.from_dict(old)
