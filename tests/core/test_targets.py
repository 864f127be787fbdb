"""The installed deployment targets as users find them: the listing, its help, MLflow's own tools,
and the one place the servers' command lines are written."""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pandas as pd
import pytest

import workbench as wb
from workbench.deployment.base import TARGET_GROUP, load_target
from workbench.packaging import prepare_context
from workbench.serving.command import PROGRAM, route_args, serve_args

REPO = Path(__file__).resolve().parents[2]
MLFLOW = Path(sys.executable).parent / "mlflow"


def test_the_listing_is_the_entry_points_with_every_option_documented() -> None:
    names = sorted(ep.name for ep in entry_points(group=TARGET_GROUP))
    listed = wb.deploy_targets()
    assert [t.name for t in listed] == names
    assert {"local", "docker", "swarm", "k8s"} <= set(names)
    for info in listed:
        assert info.summary and not info.summary.startswith("cannot be loaded"), info
        # every option the target accepts is listed, with words saying what it does
        target = load_target(info.uri.replace("CONTEXT/NAMESPACE", "ctx/ns"))
        for option in info.options:
            assert option.help, f"{info.name}.{option.name} has no help"
            target.check_options({option.name: option.default} if option.default is not None else {})
        with pytest.raises(wb.InvalidInputError, match="known: "):
            target.check_options({"no_such_option": 1})
    swarm = wb.get_target_info("swarm")
    assert swarm.cluster and not wb.get_target_info("local").cluster
    assert {o.name for o in swarm.options} >= {"replicas", "image", "port"}
    replicas = next(o for o in swarm.options if o.name == "replicas")
    assert replicas.default == 2 and "replica" in replicas.help
    assert "replicas: int (default 2)" in wb.target_help("swarm")
    assert wb.get_target_info("k8s://prod/ml").name == "k8s"
    with pytest.raises(wb.InvalidInputError, match="installed: docker, k8s, local, swarm"):
        wb.get_target_info("nomad")
    assert json.loads(json.dumps([t.to_dict() for t in listed]))


def test_the_cli_lists_targets_and_shows_one_targets_help() -> None:
    run = [str(Path(sys.executable).parent / "workbench"), "targets"]
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "k8s://CONTEXT/NAMESPACE" in table and "swarm" in table
    helped = subprocess.run([*run, "swarm"], capture_output=True, text=True, check=True).stdout
    assert "replicas: int (default 2)" in helped
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout)
    assert [t["name"] for t in data] == [t.name for t in wb.deploy_targets()]


def _mlflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MLFLOW), "deployments", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WORKBENCH_WARM_SERVER": os.environ.get("WORKBENCH_WARM_SERVER", "1")})


def test_mlflow_users_deploy_with_mlflows_own_cli(registered_model, numeric_data, tmp_path: Path) -> None:
    name = "mlflow-plugin-cli"
    helped = _mlflow("help", "-t", "workbench-swarm")
    assert helped.returncode == 0, helped.stderr
    assert "replicas" in helped.stdout and "workbench-k8s://CONTEXT/NAMESPACE" in helped.stdout
    created = _mlflow("create", "-t", "workbench-local", "--name", name, "-m", registered_model.uri)
    assert created.returncode == 0, created.stderr
    assert f"python_function deployment {name} is created" in created.stdout
    try:
        dep = wb.get_deployment(name)  # the workbench's own deployment, seen by every UI
        assert dep.target == "local" and dep.model_version == registered_model.version
        listed = _mlflow("list", "-t", "workbench-local")
        assert listed.returncode == 0 and name in listed.stdout
        X, _ = numeric_data
        rows = X.head(5)
        (tmp_path / "rows.json").write_text(rows.to_json(double_precision=15))  # as MLflow's CLI reads it
        predicted = _mlflow("predict", "-t", "workbench-local", "--name", name,
                            "--input-path", str(tmp_path / "rows.json"))
        assert predicted.returncode == 0, predicted.stderr
        model = wb.load_model(registered_model.uri)
        sent = pd.read_json(tmp_path / "rows.json")
        answers = pd.read_json(io.StringIO(predicted.stdout), orient="records").iloc[:, 0]
        assert answers.tolist() == model.predict(sent).tolist()
        # a name on another target is named as such
        wrong = _mlflow("get", "-t", "workbench-docker", "--name", name)
        assert wrong.returncode != 0 and "use -t workbench-local" in wrong.stderr
    finally:
        deleted = _mlflow("delete", "-t", "workbench-local", "--name", name)
    assert deleted.returncode == 0, deleted.stderr
    assert name not in [d.name for d in wb.deployments()]


def test_mlflows_python_client_reaches_the_workbench_targets(registered_model) -> None:
    from mlflow.deployments import get_deploy_client

    client = get_deploy_client("workbench-local")
    name = "mlflow-plugin-client"
    created = client.create_deployment(name, registered_model.uri, config={"port": 0})
    try:
        assert created["name"] == name and created["url"].startswith("http://127.0.0.1:")
        assert [d["name"] for d in client.list_deployments() if d["name"] == name] == [name]
    finally:
        client.delete_deployment(name)
    assert get_deploy_client("workbench-k8s://ctx/ns").workbench_target == "k8s://ctx/ns"
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="unknown option"):
        client.create_deployment("mlflow-plugin-bad", registered_model.uri, config={"colour": "blue"})


# -- one place writes the servers' command lines ---------------------------------------------------

def _spelled_commands(source: str) -> list[int]:
    """Lines of ``source`` with a list that spells a server's command: a "serve"/"route" subcommand
    beside "workbench" or one of the servers' flags."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List | ast.Tuple):
            words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if {"serve", "route"} & words and {"workbench", "--log-dir", "--config", "--port", "--model-dir"} & words:
                found.append(node.lineno)
    return found


def test_only_the_command_module_spells_the_servers_command_lines() -> None:
    assert _spelled_commands('cmd = ["serve", uri, "--log-dir", folder]') == [1]  # the check sees one
    offenders = {str(path.relative_to(REPO)): lines for path in sorted((REPO / "workbench").rglob("*.py"))
                 if path.name != "command.py" and (lines := _spelled_commands(path.read_text()))}
    assert offenders == {}


def test_the_command_builder_writes_what_the_server_reads(registered_model, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from workbench.cli.serving import route, serve

    args = serve_args("models:/m/1", host="0.0.0.0", port=0, log_dir=tmp_path / "p", name="m", model_version="1",
                      model_dir=tmp_path, snapshot=tmp_path / "s", port_file=tmp_path / "port")
    assert args[:2] == ["serve", "models:/m/1"]
    # every flag the builder writes is one the command takes
    for command, built in ((serve, args[2:]), (route, route_args(tmp_path / "r.json", host="h", port=1)[1:])):
        known = {opt for p in command.params for opt in p.opts}
        assert {a for a in built if a.startswith("--")} <= known, built
        assert CliRunner().invoke(command, ["--help"]).exit_code == 0
    # the image's entry point and command are the builder's
    ctx = prepare_context(registered_model.uri, tmp_path / "ctx")
    lines = ctx.dockerfile.read_text().splitlines()
    entry = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT ")).split(" ", 1)[1])
    cmd = json.loads(next(line for line in lines if line.startswith("CMD ")).split(" ", 1)[1])
    assert entry[:4] == [*PROGRAM, "serve"] and "--log-dir" in entry and "--snapshot" in entry
    assert cmd == ["--name", registered_model.name, "--model-version", registered_model.version]


def test_target_info_is_frozen() -> None:
    info = wb.get_target_info("local")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "x"  # type: ignore[misc]
