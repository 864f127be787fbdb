"""Packaging benchmark: `workbench package` side by side with `mlflow models build-docker`.

Same model (RandomForest, 50 trees, max depth 8, 20 float features), same engine and base image.
Reports, for each tool: cold build time (no cached layers), rebuild time after retraining (same
requirements, new model version: the engine's build, `wb.package` in the notebook's process, and the
`workbench package` command in a new process as MLflow's command is timed), image size, and seconds from `docker run` to the first 200
(median of --repeats starts, the two images alternating). Then the same first-200 comparison for a
scikit-learn Pipeline and an XGBoost model.

`mlflow models build-docker` builds through the docker CLI with no network option, so on an engine
started with --iptables=false its containers need a NAT rule to reach the package index: this
script adds it (as root) when missing and says so. Its Dockerfile asks for python:<X.Y.Z>-slim,
which is tagged from the local python:<X.Y>-slim when it cannot be pulled.

Run: .venv/bin/python benchmarks/packaging/run.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import PYTHON, env_with_venv_path, free_port, save, table, wait_for  # noqa: E402

import docker  # noqa: E402


def _data() -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, 20)), columns=[f"f{i}" for i in range(20)])
    y = (X["f0"] + X["f1"] - X["f2"] > 0).astype(int)
    return X, y


def train(version_seed: int, kind: str = "forest") -> Any:
    """Log and register one model: ``forest`` (RandomForest, 50 trees, depth 8), ``pipeline``
    (ColumnTransformer scaling 20 numbers and one-hot encoding a text column, then a logistic
    regression) or ``xgboost`` (XGBClassifier, 50 trees, depth 4)."""
    import workbench as wb

    X, y = _data()
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=version_seed).fit(X, y)
    elif kind == "pipeline":
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        X = X.assign(city=[("north", "south", "east")[i % 3] for i in range(len(X))])
        prep = ColumnTransformer([("num", StandardScaler(), [f"f{i}" for i in range(20)]),
                                  ("cat", OneHotEncoder(), ["city"])])
        model = Pipeline([("prep", prep), ("clf", LogisticRegression(random_state=version_seed))]).fit(X, y)
    else:
        import xgboost as xgb

        model = xgb.XGBClassifier(n_estimators=50, max_depth=4, random_state=version_seed).fit(X, y)
    with wb.start_run(experiment="packaging-benchmark"):
        logged = wb.log_model(model, training_data=X, training_labels=y)
    return wb.register(logged, f"bench-package-{kind}" if kind != "forest" else "bench-package")


def remove_images(client: docker.DockerClient, repository: str) -> None:
    """Remove this benchmark's earlier images; their parent layers (the build cache) go with them."""
    for image in client.images.list(name=repository):
        client.images.remove(image.id, force=True)


def first_200(client: docker.DockerClient, tag: str, path: str) -> float:
    """Seconds from `docker run` to the first 200 of ``path``."""
    port = free_port()
    start = time.monotonic()
    container = client.containers.run(tag, detach=True, init=True, ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        wait_for(f"http://127.0.0.1:{port}{path}", timeout=180)
        return time.monotonic() - start
    finally:
        container.remove(force=True)


def first_200_pair(client: docker.DockerClient, ours: str, theirs: str, repeats: int) -> tuple[float, float]:
    """Median seconds to the first 200 of our image and MLflow's, started in alternating order."""
    times: dict[str, list[float]] = {ours: [], theirs: []}
    for i in range(repeats):
        for tag in ((ours, theirs) if i % 2 == 0 else (theirs, ours)):
            times[tag].append(first_200(client, tag, "/ping" if tag == theirs else "/v2/health/ready"))
    print(f"  {ours}: {[round(t, 2) for t in times[ours]]}; {theirs}: {[round(t, 2) for t in times[theirs]]}")
    return statistics.median(times[ours]), statistics.median(times[theirs])


def ensure_nat() -> str:
    rule = ["-t", "nat", "-C", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE"]
    if subprocess.run(["iptables", *rule], capture_output=True).returncode == 0:
        return "present"
    add = ["iptables", "-t", "nat", "-A", *rule[3:]]
    subprocess.run(add, check=True)
    return "added"


def mlflow_build(model_uri: str, tag: str, env: dict[str, str]) -> float:
    start = time.monotonic()
    subprocess.run([str(Path(PYTHON).parent / "mlflow"), "models", "build-docker", "-m", model_uri, "-n", tag,
                    "--env-manager", "local"], env=env, check=True, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="starts of each image, alternating (median)")
    repeats = parser.parse_args().repeats
    client = docker.from_env()
    python_version = platform.python_version()
    base = f"python:{'.'.join(python_version.split('.')[:2])}-slim"
    mlflow_base = f"python:{python_version}-slim"
    if not client.images.list(name=mlflow_base):
        client.images.get(base).tag(*mlflow_base.split(":"))
    print(f"NAT rule for the docker CLI's builds: {ensure_nat()}")

    with tempfile.TemporaryDirectory(prefix="wb-bench-package-") as tmp:
        os.environ["WORKBENCH_HOME"] = str(Path(tmp) / "workspace")
        import workbench as wb

        wb.configure()
        v1 = train(0)
        env = {**env_with_venv_path(), "MLFLOW_TRACKING_URI": wb.get_settings().store_uri}
        results: dict[str, dict[str, Any]] = {}

        print("cold builds ...", flush=True)
        # every image of an earlier run goes: MLflow's builds reuse any cached layer of the same steps
        for kind in ("", "-pipeline", "-xgboost"):
            remove_images(client, f"bench/workbench{kind}")
            remove_images(client, f"bench/mlflow{kind}")
        ours = wb.package(v1.uri, tag="bench/workbench:1", no_cache=True)
        results["workbench package"] = {"cold build s": ours.build_seconds, "image MB": ours.size_bytes / 1e6}
        seconds = mlflow_build(v1.uri, "bench/mlflow:1", env)
        size = client.images.get("bench/mlflow:1").attrs["Size"]
        results["mlflow models build-docker"] = {"cold build s": seconds, "image MB": size / 1e6}

        print("rebuilds after retraining ...", flush=True)
        v2 = train(1)
        started = time.monotonic()
        ours2 = wb.package(v2.uri, tag="bench/workbench:2")
        results["workbench package"]["rebuild s"] = ours2.build_seconds
        results["workbench package"]["rebuild, wb.package s"] = time.monotonic() - started
        seconds = mlflow_build(v2.uri, "bench/mlflow:2", env)
        results["mlflow models build-docker"]["rebuild s"] = seconds
        results["mlflow models build-docker"]["rebuild, command s"] = seconds
        v3 = train(2)  # the command, as MLflow's is timed: a new process, its imports and the build
        started = time.monotonic()
        subprocess.run([str(Path(PYTHON).parent / "workbench"), "package", v3.uri, "--tag", "bench/workbench:3"],
                       env={**env, "WORKBENCH_HOME": os.environ["WORKBENCH_HOME"]}, check=True, capture_output=True)
        results["workbench package"]["rebuild, command s"] = time.monotonic() - started

        print("first 200 after start (forest) ...", flush=True)
        results["workbench package"]["first 200 s"], results["mlflow models build-docker"]["first 200 s"] = \
            first_200_pair(client, "bench/workbench:2", "bench/mlflow:2", repeats)

        for kind in ("pipeline", "xgboost"):
            print(f"{kind}: build and first 200 ...", flush=True)
            version = train(0, kind)
            ours_k = wb.package(version.uri, tag=f"bench/workbench-{kind}:1")
            seconds = mlflow_build(version.uri, f"bench/mlflow-{kind}:1", env)
            size = client.images.get(f"bench/mlflow-{kind}:1").attrs["Size"]
            ours_s, theirs_s = first_200_pair(client, f"bench/workbench-{kind}:1", f"bench/mlflow-{kind}:1", repeats)
            results[f"workbench package ({kind})"] = {"cold build s": ours_k.build_seconds,
                                                      "image MB": ours_k.size_bytes / 1e6, "first 200 s": ours_s}
            results[f"mlflow models build-docker ({kind})"] = {"cold build s": seconds, "image MB": size / 1e6,
                                                               "first 200 s": theirs_s}

    rows = [{"tool": k, **v} for k, v in results.items()]
    ours_r, theirs = results["workbench package"], results["mlflow models build-docker"]
    ratios = {
        "image size vs mlflow": ours_r["image MB"] / theirs["image MB"],
        "cold build vs mlflow": ours_r["cold build s"] / theirs["cold build s"],
        "rebuild vs mlflow": ours_r["rebuild s"] / theirs["rebuild s"],
        "rebuild, wb.package vs mlflow's command": ours_r["rebuild, wb.package s"] / theirs["rebuild s"],
        "rebuild, command vs command": ours_r["rebuild, command s"] / theirs["rebuild, command s"],
        "first 200 vs mlflow": ours_r["first 200 s"] / theirs["first 200 s"],
    }
    for kind in ("pipeline", "xgboost"):
        ours_k, theirs_k = results[f"workbench package ({kind})"], results[f"mlflow models build-docker ({kind})"]
        ratios[f"{kind}: image size vs mlflow"] = ours_k["image MB"] / theirs_k["image MB"]
        ratios[f"{kind}: first 200 vs mlflow"] = ours_k["first 200 s"] / theirs_k["first 200 s"]
    print()
    print(table(rows, ["tool", "cold build s", "rebuild s", "rebuild, wb.package s", "rebuild, command s", "image MB",
                       "first 200 s"]))
    print()
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    print(f"results: {save('packaging', {'rows': rows, 'ratios': ratios})}")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
