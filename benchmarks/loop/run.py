"""The notebook loop, side by side with MLflow: from a fitted model to its first served answer.

One warm process plays the notebook (everything imported, one unmeasured round of each first). For each
model (the serving benchmark's forest: 50 trees, 20 features, 2,000 rows; a Pipeline with a
ColumnTransformer over numbers and text; XGBoost), in alternating order over repeats, medians:

- workbench: ``start_run`` + ``log_model`` (profile, signature, example, requirements), ``register``,
  ``deploy(target="local")`` until it answers, the first answer; then ``update`` to a new version
  until the new version answers; and ``workbench serve`` of the version as a fresh process (what a
  terminal user runs, as ``mlflow models serve`` is) until its first answer.
- MLflow: ``start_run`` + ``mlflow.<flavor>.log_model`` (signature and example), ``register_model``,
  ``mlflow models serve --env-manager local`` until the first 200 of ``/invocations``.

The local target forks its servers from a warm process (:mod:`workbench.deployment.warm`), started
by a session's first local deployment; each model's unmeasured first round starts it anew, and its
deploy time is reported as *first deploy of a session*.

Run: .venv/bin/python benchmarks/loop/run.py [--repeats 3] [--rows 2000] [--models forest xgboost]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import PYTHON, env_with_venv_path, free_port, save, table  # noqa: E402


def models(rows: int, kinds: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    """name -> (fitted model, training frame, labels), for the given kinds."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from xgboost import XGBClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(rows, 20)), columns=[f"f{i}" for i in range(20)])
    y = (X["f0"] + X["f1"] - X["f2"] > 0).astype(int)
    mixed = X.iloc[:, :8].assign(city=rng.choice(["Lyon", "Oslo", "Porto", "Kyiv"], rows),
                                 plan=rng.choice(["basic", "pro"], rows))
    pipeline = make_pipeline(
        ColumnTransformer([("numbers", StandardScaler(), [f"f{i}" for i in range(8)]),
                           ("text", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])]),
        LogisticRegression(max_iter=1000),
    )
    fits = {
        "forest": lambda: (RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y), X, y),
        "pipeline": lambda: (pipeline.fit(mixed, y), mixed, y),
        "xgboost": lambda: (XGBClassifier(n_estimators=50, max_depth=4).fit(X, y), X, y),
    }
    return {kind: fits[kind]() for kind in kinds}


def _answers(url: str, body: str, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{url}/invocations", content=body, headers={"content-type": "application/json"},
                          timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def _serve_until_it_answers(command: Any, env: dict[str, str], X: Any) -> None:
    """Start ``command(port)`` on a free port, wait for its first 200 of ``/invocations`` on one row of
    ``X``, then stop it."""
    port = free_port()
    body = json.dumps({"dataframe_split": json.loads(X.head(1).to_json(orient="split", index=False))})
    proc = subprocess.Popen(command(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _answers(f"http://127.0.0.1:{port}", body)
    finally:
        proc.terminate()
        proc.wait(30)


def workbench_loop(kind: str, model: Any, X: Any, y: Any, tag: str) -> dict[str, float]:
    import workbench as wb

    name = f"loop-{kind}-{tag}"
    start = time.perf_counter()
    with wb.start_run(experiment="loop-benchmark"):
        logged = wb.log_model(model, training_data=X, training_labels=y)
    logged_at = time.perf_counter()
    version = wb.register(logged, name)
    registered_at = time.perf_counter()
    dep = wb.deploy(version.uri, target="local", name=name)
    dep.predict(X.head(1))
    answered_at = time.perf_counter()
    with wb.start_run(experiment="loop-benchmark"):  # the next version, to time an update
        second = wb.register(wb.log_model(model, training_data=X, training_labels=y), name)
    update_start = time.perf_counter()
    updated = wb.update(name, second.uri)
    updated.predict(X.head(1))
    updated_at = time.perf_counter()
    assert updated.model_version == second.version, (updated.model_version, second.version)
    wb.stop(name)
    # `workbench serve` in a terminal: a fresh process, as `mlflow models serve` is.
    serve_start = time.perf_counter()
    _serve_until_it_answers(
        lambda port: [PYTHON, "-m", "workbench", "serve", version.uri, "--port", str(port), "--log-dir",
                      str(Path(wb.get_settings().home) / "serve-log" / tag)],
        {**os.environ, **wb.get_settings().as_env()}, X)
    served_at = time.perf_counter()
    return {"log_model s": logged_at - start, "register s": registered_at - logged_at,
            "deploy to first answer s": answered_at - registered_at, "loop s": answered_at - start,
            "update s": updated_at - update_start, "workbench serve to first answer s": served_at - serve_start}


def mlflow_loop(kind: str, model: Any, X: Any, y: Any, tag: str) -> dict[str, float]:
    import mlflow
    from mlflow.models import infer_signature

    import workbench as wb

    flavor = {"forest": mlflow.sklearn, "pipeline": mlflow.sklearn, "xgboost": mlflow.xgboost}[kind]
    name = f"mlflow-loop-{kind}-{tag}"
    start = time.perf_counter()
    mlflow.set_experiment("loop-benchmark-mlflow")
    with mlflow.start_run():
        signature = infer_signature(X.head(50), model.predict(X.head(50)))
        # scikit-learn: MLflow's default (skops) refuses a forest's trees as untrusted, so a user
        # passes cloudpickle, the format MLflow used before.
        extra = {"serialization_format": "cloudpickle"} if flavor is mlflow.sklearn else {}
        info = flavor.log_model(model, name="model", signature=signature, input_example=X.head(5), **extra)
    logged_at = time.perf_counter()
    version = mlflow.register_model(info.model_uri, name)
    registered_at = time.perf_counter()
    _serve_until_it_answers(
        lambda port: [str(Path(PYTHON).parent / "mlflow"), "models", "serve", "-m", f"models:/{name}/{version.version}",
                      "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
        {**env_with_venv_path(), "MLFLOW_TRACKING_URI": wb.get_settings().store_uri}, X)
    answered_at = time.perf_counter()
    return {"log_model s": logged_at - start, "register s": registered_at - logged_at,
            "deploy to first answer s": answered_at - registered_at, "loop s": answered_at - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=["forest", "pipeline", "xgboost"],
                        choices=["forest", "pipeline", "xgboost"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # plain MLflow puts a new experiment's artifacts in ./mlruns
        os.environ["WORKBENCH_HOME"] = str(Path(work) / "workspace")
        import workbench as wb

        wb.configure()
        import mlflow

        mlflow.set_tracking_uri(wb.get_settings().store_uri)
        fitted = models(args.rows, args.models)
        results: dict[str, dict[str, list[dict[str, float]]]] = {}
        from workbench.deployment import warm

        first_deploy: dict[str, float] = {}
        for kind, (model, X, y) in fitted.items():
            runs: dict[str, list[dict[str, float]]] = {"workbench": [], "mlflow": []}
            warm.shutdown()  # the first deploy starts the warm process: what a session's first deploy waits
            time.sleep(1)
            # Imports and first-time set-up, not in the medians.
            first_deploy[kind] = workbench_loop(kind, model, X, y, "warm")["deploy to first answer s"]
            mlflow_loop(kind, model, X, y, "warm")
            for repeat in range(args.repeats):
                order = [("workbench", workbench_loop), ("mlflow", mlflow_loop)]
                for tool, loop in order if repeat % 2 == 0 else order[::-1]:
                    runs[tool].append(loop(kind, model, X, y, str(repeat)))
                    print(f"{kind} {tool} #{repeat}: {runs[tool][-1]}", file=sys.stderr)
            results[kind] = runs
    rows = []
    for kind, runs in results.items():
        for tool in ("workbench", "mlflow"):
            medians = {k: statistics.median(r[k] for r in runs[tool]) for k in runs[tool][0]}
            rows.append({"model": kind, "tool": tool, **medians})
        ours, theirs = rows[-2], rows[-1]
        ours["first deploy of a session s"] = first_deploy[kind]
        rows.append({"model": kind, "tool": "ratio (workbench / mlflow)",
                     **{k: ours[k] / theirs[k] for k in theirs if k != "model" and k != "tool"}})
    columns = ["model", "tool", "log_model s", "register s", "deploy to first answer s", "loop s", "update s",
               "first deploy of a session s", "workbench serve to first answer s"]
    print(table(rows, columns))
    print(f"results: {save('loop', {'rows': args.rows, 'repeats': args.repeats, 'table': rows})}")


if __name__ == "__main__":
    main()
