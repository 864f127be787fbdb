"""The first hour's mistakes, made the way a new user makes them: each answers with one line that says
what to do.

Every case runs the `workbench` command in a fresh workspace and reads what the user reads: exit
status 1 and, as the last line on stderr, one ``error: ...`` line naming the fix. (Policy advice
may come before it: the defaults advise on the diabetes model's `age` and `sex` inputs.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import free_port

BIN = Path(sys.executable).parent / "workbench"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain MLflow model folder, as a new user brings one."""
    import mlflow.sklearn
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    folder = tmp_path_factory.mktemp("mistakes") / "model"
    mlflow.sklearn.save_model(LinearRegression().fit(X, y), str(folder), input_example=X.head(2))
    return folder


class User:
    """Runs `workbench` as a user does, in one workspace, and returns the one error line."""

    def __init__(self, home: Path, cwd: Path) -> None:
        self.home, self.cwd = home, cwd

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "WORKBENCH_HOME": str(self.home), **(env or {})}
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=full, cwd=self.cwd,
                              timeout=300)

    def error(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, env=env)
        assert result.returncode == 1, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0] == lines[-1], result.stderr  # one line, and the last
        return errors[0]


@pytest.fixture()
def user(tmp_path: Path, model_folder: Path) -> User:
    shutil.copytree(model_folder, tmp_path / "model")
    return User(tmp_path / "ws", tmp_path)


def test_a_wrong_model_uri_names_the_forms_that_work(user: User) -> None:
    forms = "models:/<name>/<version>, models:/<name>@<alias> or runs:/<run_id>/<path>"
    assert user.error("deploy", "model:/diabetes/1") == (
        f"error: 'model:/diabetes/1' is not a model URI (model:/ is no scheme MLflow knows): give {forms}, or a "
        "model folder")
    assert user.error("deploy", "./modle") == f"error: no model at './modle': give a model folder, or a URI such as {forms}"
    assert user.error("check", "models:/diabetes") == f"error: 'models:/diabetes' is not a model URI: give {forms}"
    assert "is a folder without an MLmodel file" in user.error("package", str(user.home.parent))


def test_an_unknown_model_or_alias_names_what_there_is_and_how_to_set_it(user: User, model_folder: Path) -> None:
    assert user.error("deploy", "models:/diabetes@champion") == (
        "error: no registered model named 'diabetes' (no model is registered yet): check the name, or register one "
        "with workbench.register(model_uri, 'diabetes')")
    register = ("import mlflow.sklearn, workbench as wb\n"
                f"model = mlflow.sklearn.load_model({str(model_folder)!r})\n"
                "with wb.start_run(experiment='first-hour'):\n"
                "    logged = wb.log_model(model)\n"
                "wb.register(logged, 'diabetes')\n")
    subprocess.run([sys.executable, "-c", register], check=True, env={**os.environ, "WORKBENCH_HOME": str(user.home)},
                   capture_output=True, timeout=300)
    assert user.error("deploy", "models:/diabetes@champion") == (
        "error: model 'diabetes' has no alias @champion (versions: 1; aliases: none): set it with "
        "workbench.set_alias('diabetes', 'champion', 1) or give models:/diabetes/1")
    assert user.error("deploy", "models:/diabetes/3") == (
        "error: model 'diabetes' has no version 3 (versions: 1; aliases: none): give one of those, or list them "
        "with `workbench models diabetes`")


def test_a_stopped_or_unknown_deployment_says_how_to_start_it(user: User) -> None:
    assert user.error("logs", "diabetes") == (
        "error: no deployment named 'diabetes' (deployments: none yet); list them with `workbench deployments`")
    started = user.run("deploy", "./model", "--name", "diabetes")
    assert started.returncode == 0, started.stderr
    assert user.run("stop", "diabetes").stdout.strip() == "stopped diabetes"
    message = user.error("logs", "diabetes")
    assert message.startswith("error: deployment 'diabetes' was stopped (")
    assert message.endswith("UTC, by " + os.environ.get("WORKBENCH_USER", message.split("by ")[1].split(")")[0])
                            + "): start it again with `workbench deploy ./model --name diabetes`; its history: "
                            "workbench.deployment_history('diabetes')")


def test_a_port_in_use_says_to_choose_another(user: User) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert user.error("deploy", "./model", "--port", str(port)) == (
            f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another port with --port "
            "(or --port 0 for any free one)")


def test_no_container_engine_says_how_to_start_one(user: User) -> None:
    message = user.error("deploy", "./model", "--target", "docker",
                         env={"DOCKER_HOST": f"unix://{user.home.parent}/no-engine.sock"})
    assert message.startswith("error: no Docker engine answers (")
    assert message.endswith("Start one (`sudo systemctl start docker`, or as root `dockerd &`), or point DOCKER_HOST "
                            "at a running engine; scripts/setup-system installs and starts one on Debian")


def test_a_missing_base_image_names_it_and_the_two_fixes(user: User, docker_engine) -> None:
    image = "workbench-test/no-such-base:1"
    for how in (("--base-image", image), ()):
        assert user.error("package", "./model", *how, env={"WORKBENCH_BASE_IMAGE": image}) == (
            f"error: the base image {image} is not on this machine and cannot be pulled: set "
            "WORKBENCH_BASE_IMAGE=IMAGE (or --base-image) to an image you have (`docker images`), or make "
            f"{image} without a registry with `scripts/build-base-image {image}`")


POLICY_MISTAKES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "a misspelt check": ("checks:\n  proxys: {severity: error}\n",
                         lambda m: "checks: unknown key(s) ['proxys']; known: ['lineage', 'protected_inputs', "
                                   "'proxies', 'required_metrics', 'signature']. Fix the file" in m),
    "broken YAML": ("checks: [unclosed\n", lambda m: m.startswith("error: cannot read the policy file ")
                    and m.endswith("fix the YAML (`workbench policy --init` writes a commented template to compare "
                                   "with), or move it away to use the advisory defaults")),
    "an unknown mode": ("mode: block\n", lambda m: "mode: 'block' is not one of ('enforce', 'advise')" in m),
}


@pytest.mark.parametrize("mistake", list(POLICY_MISTAKES))
def test_a_bad_policy_file_names_the_key_and_the_fix(user: User, mistake: str) -> None:
    text, names_fix = POLICY_MISTAKES[mistake]
    user.home.mkdir(parents=True, exist_ok=True)
    (user.home / "policy.yaml").write_text(text)
    for command in (("check", "./model"), ("deploy", "./model")):
        message = user.error(*command)
        assert str(user.home / "policy.yaml") in message and names_fix(message), message
        assert "`workbench policy --init`" in message or "Fix the file" in message
