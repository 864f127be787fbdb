"""From a trained model to a deployment and back, on the local and the Docker targets.

Each run trains two versions, registers them, deploys the first (packaging it for Docker), predicts
through both protocols, reads the prediction log, updates to the second version, rolls back, and
stops; then checks that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import docker
import httpx
import numpy as np
import pytest

import workbench as wb
from workbench.deployment.targets.docker import volume_name
from workbench.deployment.store import DeploymentStore
from workbench.errors import (
    DeploymentChangedWarning,
    DeploymentNotFoundError,
    EngineUnavailableError,
    HealthCheckError,
    InvalidInputError,
    NameTakenError,
    PortInUseError,
)


def _full_cycle(target: str, duel_versions, numeric_data, answers) -> None:
    v1, v2 = duel_versions
    X, _ = numeric_data
    rows = X.head(8)
    local_v1 = wb.load_model(v1.uri).predict(rows).tolist()
    local_v2 = wb.load_model(v2.uri).predict(rows).tolist()
    name = f"{target}-{uuid.uuid4().hex[:6]}"

    dep = wb.deploy(f"models:/{v1.name}@champion", target=target, name=name)
    try:
        _cycle(dep, name, v1, v2, rows, local_v1, local_v2, answers)
    finally:
        if any(d.name == name for d in wb.deployments()):
            wb.stop(name)


def _cycle(dep, name, v1, v2, rows, local_v1, local_v2, answers) -> None:
    assert dep.state == "running" and dep.healthy
    assert (dep.model_uri, dep.model_version) == (v1.uri, v1.version)  # the alias was pinned

    # both protocols
    assert dep.predict(rows) == local_v1
    v2_body = httpx.post(f"{dep.url}/v2/models/{v1.name}/infer", json={"inputs": [
        {"name": c, "shape": [8], "datatype": "FP64", "data": rows[c].tolist()} for c in rows]}).json()
    assert v2_body["outputs"][0]["data"] == local_v1

    # the prediction log
    page = dep.predictions()
    assert len(page) == 2
    logged_rows = page.rows()
    assert logged_rows["predict"].tolist() == local_v1 * 2
    np.testing.assert_allclose(logged_rows[list(rows.columns)].to_numpy()[:8], rows.to_numpy())

    # update: the new version serves, the log continues
    updated = wb.update(name, v2.uri)
    assert (updated.model_version, updated.revision, updated.healthy) == (v2.version, 2, True)
    assert updated.predict(rows) == local_v2
    assert len(updated.predictions()) == 3

    # the address did not move, and the old model server is gone
    assert updated.url == dep.url
    assert not answers(dep.replica_urls[0])

    # rollback
    back = wb.rollback(name)
    assert (back.model_version, back.revision, back.url) == (v1.version, 3, dep.url)
    assert back.predict(rows) == local_v1
    assert [h.action for h in wb.deployment_history(name)] == ["deploy", "update", "rollback"]
    assert len(back.predictions(limit=100)) == 4

    # logs of the server process
    assert "serving" in wb.logs(name)

    # a new process sees the same deployments and their real state
    out = subprocess.run([str(Path(sys.executable).parent / "workbench"), "deployments", "--json"],
                         capture_output=True, text=True, env=os.environ.copy(), check=True).stdout
    assert f'"name": "{name}"' in out and '"healthy": true' in out

    wb.stop(name)
    assert not answers(back.url)
    with pytest.raises(DeploymentNotFoundError, match=f"deployment '{name}' was stopped .*: start it again with "
                                                      f"`workbench deploy .* --name {name}`"):
        wb.get_deployment(name)
    assert [h.action for h in wb.deployment_history(name)][-1] == "stop"


def test_local_target_full_cycle(duel_versions, numeric_data, answers) -> None:
    _full_cycle("local", duel_versions, numeric_data, answers)


@pytest.mark.docker
def test_docker_target_full_cycle(duel_versions, numeric_data, answers, docker_engine, capsys) -> None:
    _full_cycle("docker", duel_versions, numeric_data, answers)
    # Called from plain code, the build showed its steps as it went (stdout: a notebook shows it in the cell).
    out = capsys.readouterr().out
    assert "building [" in out and "/" in out and "built workbench/" in out, out


@pytest.mark.docker
def test_a_container_removed_behind_our_back_shows_as_gone(duel_versions, docker_engine) -> None:
    v1, _ = duel_versions
    name = f"gone-{uuid.uuid4().hex[:6]}"
    events: list[Any] = []
    dep = wb.deploy(v1.uri, target="docker", name=name, on_event=events.append)
    assert {"context", "done"} <= {e.kind for e in events}  # the image build's progress reached the callback
    assert "on_event" not in DeploymentStore(wb.get_settings().workspace_db).get(name).options  # never stored
    docker.from_env().containers.get(dep.handle.champion.handle.container_id).remove(force=True)
    assert wb.get_deployment(name).state == "gone"
    wb.stop(name)  # stopping a gone deployment just removes its record
    docker.from_env().volumes.get(volume_name(name)).remove()


def test_a_killed_local_server_shows_as_gone(duel_versions) -> None:
    v1, _ = duel_versions
    name = f"killed-{uuid.uuid4().hex[:6]}"
    dep = wb.deploy(v1.uri, name=name)
    pid = dep.handle.champion.handle.pid
    os.kill(pid, 9)
    deadline = time.monotonic() + 10  # the signal lands, then the warm process that forked it reaps it
    while wb.get_deployment(name).state != "gone" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wb.get_deployment(name).state == "gone"
    wb.stop(name)


def test_a_deployment_whose_processes_all_died_comes_back_at_the_same_url(duel_versions, numeric_data) -> None:
    """kill -9 of the router and the server (what a reboot or the OOM killer leaves): deploying the same
    version again, as a re-run cell does, brings it back at the same address, and a live monitor
    carries on from its cursor."""
    from workbench.monitor import LiveMonitor

    v1, v2 = duel_versions
    X, _ = numeric_data
    name = f"revived-{uuid.uuid4().hex[:6]}"
    dep = wb.deploy(v1.uri, name=name)
    try:
        for i in range(5):
            dep.predict(X.iloc[[i]])
        monitor = LiveMonitor(v1.uri, sources=dep.log_sources, window=100, multivariate_every=0)
        assert len(monitor.pull()) == 5
        for pid in (dep.handle.router.pid, dep.handle.champion.handle.pid):
            os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while wb.get_deployment(name).state != "gone" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wb.get_deployment(name).state == "gone"
        # the deployment's fault, not the caller's: a DeploymentError that says where to look
        with pytest.raises(wb.DeploymentError, match=f"workbench logs {name}"):
            dep.predict(X.iloc[[0]])

        with pytest.warns(wb.DeploymentChangedWarning, match="restarted"):
            back = wb.deploy(v1.uri, name=name)
        assert (back.url, back.healthy, back.model_version) == (dep.url, True, v1.version)
        assert back.change.startswith("restarted")
        assert back.predict(X.iloc[[5]]) == wb.load_model(v1.uri).predict(X.iloc[[5]]).tolist()
        assert len(monitor.pull()) == 1  # the one new row: nothing read twice, nothing skipped

        # and `workbench update` to another version works on a deployment whose router died
        os.kill(wb.get_deployment(name).handle.router.pid, 9)
        updated = wb.update(name, v2.uri)
        assert (updated.url, updated.model_version, updated.healthy) == (dep.url, v2.version, True)
    finally:
        wb.stop(name)


# -- bad input: a clear error, and nothing half-created ----------------------------------------


def _nothing_left(name: str) -> None:
    assert name not in {d.name for d in wb.deployments()}


def test_a_model_without_signature_is_refused(numeric_data) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    with wb.start_run(experiment="e2e-deploy"):
        logged = wb.log_model(LogisticRegression().fit(X, y))
    with pytest.raises(InvalidInputError, match="has no signature"):
        wb.deploy(logged.model_uri, name="unsigned")
    _nothing_left("unsigned")


def test_deploying_again_converges_on_the_running_deployment(duel_versions) -> None:
    """Re-running a cell (or Restart Kernel and Run All) finds the deployment the last run left."""
    v1, v2 = duel_versions
    name = f"again-{uuid.uuid4().hex[:6]}"
    first = wb.deploy(v1.uri, name=name)
    try:
        assert first.change == "created"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same model again changes nothing and says nothing
            same = wb.deploy(v1.uri, name=name)
        assert (same.change, same.url, same.revision, same.handle) == ("unchanged", first.url, first.revision,
                                                                       first.handle)

        with pytest.warns(DeploymentChangedWarning, match=f"deployment '{name}' already existed: updated from "
                          f"version {v1.version} to version {v2.version}; pass replace=False"):
            newer = wb.deploy(v2.uri, name=name)
        assert newer.change == f"updated from version {v1.version} to version {v2.version}"
        assert (newer.url, newer.model_version, newer.healthy) == (first.url, v2.version, True)
        assert [h.action for h in wb.deployment_history(name)] == ["deploy", "update"]

        with pytest.raises(NameTakenError, match=f"`workbench update {name} MODEL_URI`"):
            wb.deploy(v1.uri, name=name, replace=False)
        with pytest.raises(NameTakenError, match=f"already runs on local, not docker: .*`workbench stop {name}`"):
            wb.deploy(v1.uri, name=name, target="docker")
        assert [d.model_version for d in wb.deployments() if d.name == name] == [v2.version]
    finally:
        wb.stop(name)


def test_a_deployment_shows_as_a_card_in_a_notebook(duel_versions) -> None:
    v1, _ = duel_versions
    name = f"card-{uuid.uuid4().hex[:6]}"
    dep = wb.deploy(v1.uri, name=name)
    try:
        card = dep._repr_html_()
        for shown in (name, dep.url, f"{v1.name} v{v1.version}", "running", "healthy", "created"):
            assert shown in card
        assert f"<a href='{dep.url}'" in card
    finally:
        wb.stop(name)


def test_a_busy_port_is_refused(duel_versions) -> None:
    v1, _ = duel_versions
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port}"):
            wb.deploy(v1.uri, name="busy-port", port=port)
    _nothing_left("busy-port")


@pytest.mark.docker
def test_an_image_that_does_not_exist_is_refused(duel_versions, docker_engine) -> None:
    v1, _ = duel_versions
    with pytest.raises(InvalidInputError, match="does not exist on this Docker engine: build it with"):
        wb.deploy(v1.uri, target="docker", name="no-image", image="workbench-test/nothing:404")
    _nothing_left("no-image")


def test_no_docker_engine_says_how_to_start_one(duel_versions, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    v1, _ = duel_versions
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(EngineUnavailableError, match="no Docker engine answers.*Start one"):
        wb.deploy(v1.uri, target="docker", name="no-engine", image="x:y")
    _nothing_left("no-engine")


def test_unknown_target_and_bad_names(duel_versions) -> None:
    v1, _ = duel_versions
    with pytest.raises(InvalidInputError, match="unknown deployment target 'moon'; available: .*docker.*local"):
        wb.deploy(v1.uri, target="moon")
    with pytest.raises(InvalidInputError, match="not a valid deployment name"):
        wb.deploy(v1.uri, name="Bad_Name")


def test_a_failed_update_keeps_the_old_version_serving(duel_versions, numeric_data, tmp_path, monkeypatch) -> None:
    v1, _ = duel_versions
    X, _ = numeric_data
    name = f"keep-{uuid.uuid4().hex[:6]}"
    dep = wb.deploy(v1.uri, name=name)
    # a model that loads but whose server never becomes ready in time
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import time, mlflow.pyfunc\n"
        "class Broken(mlflow.pyfunc.PythonModel):\n"
        "    def load_context(self, context):\n"
        "        time.sleep(30)\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        return model_input\n"
        "mlflow.models.set_model(Broken())\n"
    )
    from mlflow.models import infer_signature

    with wb.start_run(experiment="e2e-deploy"):
        logged = wb.log_model(str(broken), flavor="pyfunc", name="broken",
                              signature=infer_signature(X.head(), X.head()))
    # Governance would stop this model first (no input example, no training-data lineage): the
    # waivers let the test reach the health check, and are what a reviewer would record.
    for check in ("signature", "lineage"):
        wb.waive(logged.model_uri, check, by="test suite", reason="a model built to fail its health check")
    wb.configure(health_timeout=5)
    try:
        with pytest.raises(HealthCheckError):
            wb.update(name, logged.model_uri)
    finally:
        wb.configure(health_timeout=120)
    still = wb.get_deployment(name)
    assert (still.url, still.model_uri, still.revision, still.healthy) == (dep.url, v1.uri, 1, True)
    assert still.replica_urls == dep.replica_urls
    assert still.predict(X.head(2)) == wb.load_model(v1.uri).predict(X.head(2)).tolist()
    wb.stop(name)


def test_cli_deploy_update_rollback_stop(duel_versions) -> None:
    v1, v2 = duel_versions
    name = f"cli-{uuid.uuid4().hex[:6]}"
    cli = str(Path(sys.executable).parent / "workbench")

    def run(*args: str) -> str:
        result = subprocess.run([cli, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "running" in run("deploy", v1.uri, "--name", name)
    listed = run("deployments")
    assert name in listed and "True" in listed
    assert json.loads(run("update", name, v2.uri, "--json"))["model_version"] == v2.version
    assert json.loads(run("rollback", name, "--json"))["model_version"] == v1.version
    assert "serving" in run("logs", name, "--tail", "5")
    assert f"stopped {name}" in run("stop", name)
    result = subprocess.run([cli, "stop", name], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 1 and f"deployment '{name}' was stopped" in result.stderr
    assert f"start it again with `workbench deploy {v1.uri} --name {name}`" in result.stderr
