"""Packaging: the build context a user can read, and real images built on the local engine."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import docker
import httpx
import pytest
from sklearn.ensemble import RandomForestClassifier

import workbench as wb
from workbench.errors import InvalidInputError, PackagingError
from workbench.packaging import prepare_context, serving_requirements


def test_requirements_are_trimmed_for_serving() -> None:
    reqs = serving_requirements(["mlflow==3.17.2", "numpy==2.4.6", "pytest==9.2.0", "rich==15.0.0",
                                 "scikit-learn==1.9.1", "", "# comment"])
    names = [re.split(r"[=<>]", r)[0] for r in reqs]
    assert "mlflow-skinny==3.17.2" in reqs and "mlflow" not in names
    assert "pytest" not in names and "rich" not in names
    assert "numpy==2.4.6" in reqs and "scikit-learn==1.9.1" in reqs
    # what the inference server itself needs comes from the project's `serve` extra
    assert {"starlette", "uvicorn", "prometheus-client", "orjson"} <= set(names)


def test_build_context_is_readable_and_ordered_for_caching(registered_model, tmp_path: Path) -> None:
    ctx = prepare_context(registered_model.uri, tmp_path / "ctx")
    files = {p.name for p in ctx.path.iterdir()}
    assert {"Dockerfile", ".dockerignore", "requirements.txt", "model", "workbench", "warmup.py"} <= files
    assert (ctx.path / "model" / "MLmodel").exists()
    assert (ctx.path / "model" / "reference_profile" / "profile.json").exists()
    assert not (ctx.path / "workbench" / "widgets").exists()  # no UI code in a model image
    dockerfile = ctx.dockerfile.read_text()
    lines = [line for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]
    runtime = max(i for i, line in enumerate(lines) if line.startswith("FROM "))  # the final stage
    order = [next(i for i, line in enumerate(lines) if line.startswith(prefix) and (i > runtime) == final)
             for prefix, final in (("COPY requirements.txt", False), ("RUN python -m venv", False),
                                   ("COPY --from=deps", True), ("COPY workbench", True),
                                   ("COPY --from=startup", True), ("COPY model", True))]
    assert order == sorted(order)  # dependencies, the server and its bytecode, then the model
    assert dockerfile.count("FROM ${BASE_IMAGE}") == 2  # multi-stage: wheels never reach the final image
    assert "USER 10001" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/v2/health/ready" in dockerfile
    for label in ("io.workbench.model.name", "io.workbench.model.version", "io.workbench.model.run_id",
                  "io.workbench.model.git_commit", "org.opencontainers.image.created"):
        assert label in dockerfile
    assert ctx.base_image == "python:3.11-slim"
    assert ctx.labels["io.workbench.model.run_id"] == registered_model.run_id


def test_a_model_without_signature_is_refused_before_anything_is_written(numeric_data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    with wb.start_run(experiment="packaging-tests"):
        logged = wb.log_model(LogisticRegression().fit(X, y))  # no training data: no signature
    with pytest.raises(InvalidInputError, match="has no signature"):
        prepare_context(logged.model_uri, tmp_path / "ctx")
    assert not (tmp_path / "ctx").exists()


@pytest.fixture(scope="module")
def packaged(registered_model, docker_engine, tmp_path_factory) -> wb.ImageRecord:
    events = []
    record = wb.package(registered_model.uri, tag=f"workbench-test/fixture-rf:{uuid.uuid4().hex[:6]}",
                        context_dir=tmp_path_factory.mktemp("ctx") / "build", on_event=events.append)
    kinds = {e.kind for e in events}
    assert {"context", "step", "log", "done"} <= kinds
    steps = [e for e in events if e.kind == "step"]
    assert steps[-1].step == steps[-1].total_steps and steps[0].fraction == 0.0
    return record


def test_the_image_carries_labels_and_runs_as_a_non_root_user(packaged, registered_model) -> None:
    image = docker.from_env().images.get(packaged.tag)
    labels = image.labels
    assert labels["io.workbench.model.name"] == "fixture-rf"
    assert labels["io.workbench.model.version"] == registered_model.version
    assert labels["io.workbench.model.run_id"] == registered_model.run_id
    config = image.attrs["Config"]
    assert config["User"] == "10001"
    assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])
    assert packaged.size_bytes == image.attrs["Size"]
    assert labels["io.workbench.model.training_rows"] == "0"  # no training rows unless asked for


def test_the_model_card_says_what_training_rows_the_image_carries(packaged, registered_model) -> None:
    card = wb.model_card(registered_model.uri).to_markdown()
    assert f"{packaged.tag}: no training rows (100 rows drawn from per-feature summaries)" in card


def test_the_image_serves_both_protocols(packaged, numeric_data, registered_model) -> None:
    client = docker.from_env()
    container = client.containers.run(packaged.tag, detach=True, init=True, ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        from workbench.deployment.base import wait_until_ready

        wait_until_ready(url, 90)
        X, _ = numeric_data
        expected = wb.load_model(registered_model.uri).predict(X.head(3)).tolist()
        inv = httpx.post(f"{url}/invocations", json={"dataframe_records": X.head(3).to_dict("records")})
        assert inv.json() == {"predictions": expected}
        v2 = httpx.post(f"{url}/v2/models/fixture-rf/infer", json={"inputs": [
            {"name": "rows", "shape": [3, 6], "datatype": "FP64", "data": X.head(3).to_numpy().tolist()}]})
        assert v2.json()["outputs"][0]["data"] == expected
        assert v2.json()["model_version"] == registered_model.version
    finally:
        container.remove(force=True)


def test_a_retrained_model_rebuilds_from_the_dependency_cache(packaged, numeric_data, tmp_path: Path) -> None:
    X, y = numeric_data
    with wb.start_run(experiment="packaging-tests"):
        logged = wb.log_model(RandomForestClassifier(n_estimators=7, random_state=1).fit(X, y),
                              training_data=X, training_labels=y)
    version = wb.register(logged, "fixture-rf")
    record = wb.package(version.uri, tag=f"workbench-test/fixture-rf:{version.version}",
                        context_dir=tmp_path / "ctx")
    assert any("pip install" in instruction for instruction in record.cached_instructions)
    # the server's start-up run (a model of the same kind) and its bytecode come from the cache too
    assert any("warmup.py startup" in instruction for instruction in record.cached_instructions)
    assert any(instruction.startswith("COPY --from=startup") for instruction in record.cached_instructions)
    assert not any(instruction.startswith("COPY model") for instruction in record.cached_instructions)
    assert record.labels["io.workbench.model.version"] == version.version
    # ... and the image serves the retrained model, from its own snapshot
    container = docker.from_env().containers.run(record.tag, detach=True, init=True,
                                                 ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        url = f"http://127.0.0.1:{container.attrs['NetworkSettings']['Ports']['8080/tcp'][0]['HostPort']}"
        from workbench.deployment.base import wait_until_ready

        wait_until_ready(url, 90)
        answer = httpx.post(f"{url}/invocations", json={"dataframe_split": X.to_dict("split")}).json()
        expected = wb.load_model(version.uri).predict(X)
        assert (expected != wb.load_model(packaged.model_uri).predict(X)).any()  # two different models
        assert answer == {"predictions": expected.tolist()}
        assert "snapshot" not in container.logs().decode()  # loaded from its snapshot, not from skops
    finally:
        container.remove(force=True)


@pytest.mark.slow
def test_offline_build_uses_a_wheelhouse_and_no_network(registered_model, docker_engine, tmp_path: Path) -> None:
    record = wb.package(registered_model.uri, tag="workbench-test/fixture-rf:offline", offline=True,
                        context_dir=tmp_path / "ctx")
    dockerfile = (record.context_dir / "Dockerfile").read_text()
    assert "--no-index --find-links /tmp/wheels" in dockerfile
    assert any(p.suffix == ".whl" for p in (record.context_dir / "wheels").iterdir())
    # the wheels were only in the dependency stage
    client = docker.from_env()
    out = client.containers.run(record.tag, entrypoint=["sh", "-c", "ls /tmp/wheels 2>&1 || true"], remove=True)
    assert b"No such file" in out


def test_a_failing_build_names_the_step_and_shows_the_log(registered_model, docker_engine, tmp_path: Path) -> None:
    ctx = prepare_context(registered_model.uri, tmp_path / "ctx")
    requirements = ctx.path / "requirements.txt"
    requirements.write_text(requirements.read_text() + "no-such-package-workbench-test==9.9.9\n")
    from workbench.packaging import build_image

    with pytest.raises(PackagingError) as caught:
        build_image(ctx, "workbench-test/broken:1")
    error = caught.value
    assert error.step is not None and "pip install" in error.step
    assert "no-such-package-workbench-test" in (error.log_tail or "")
    assert "A requirement could not be installed" in str(error)


def test_a_missing_base_image_says_how_to_get_one(registered_model, docker_engine, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="scripts/build-base-image"):
        wb.package(registered_model.uri, base_image="workbench-test/no-such-base:0", context_dir=tmp_path / "ctx")
