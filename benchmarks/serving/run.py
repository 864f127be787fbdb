"""Serving benchmark: the workbench server side by side with what a user would pick instead.

Same model (RandomForest, 50 trees, max depth 8, 20 float features), same machine, same load
(wrk, single-row JSON; 16 connections for throughput, 1 for latency), servers in alternating order
over repeats, medians reported:

- workbench serve (prediction log on), MLflow protocol and Open Inference Protocol V2
- mlflow models serve --env-manager local
- MLServer 1.7.1 with its scikit-learn runtime, 1 and 2 parallel workers (its own venv)
- a bare Starlette endpoint returning a constant: the framework floor

Run: .venv/bin/python benchmarks/serving/run.py [--repeats 3] [--seconds 10]
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
from _common import (  # noqa: E402
    PYTHON, env_with_venv_path, free_port, median_of, save, side_env, table, wait_for, wrk,
)

FLOOR_APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def constant(request):
    await request.body()
    return Response(b'{"predictions": [1]}', media_type="application/json")

async def ready(request):
    return Response(b"{}", media_type="application/json")

app = Starlette(routes=[Route("/invocations", constant, methods=["POST"]), Route("/ready", ready)])
"""


def make_model(work: Path) -> dict[str, Any]:
    """Train, log and register the benchmark model; write the bodies every server gets."""
    os.environ["WORKBENCH_HOME"] = str(work / "workspace")
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    import workbench as wb

    wb.configure()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, 20)), columns=[f"f{i}" for i in range(20)])
    y = (X["f0"] + X["f1"] - X["f2"] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y)
    with wb.start_run(experiment="serving-benchmark"):
        logged = wb.log_model(model, training_data=X, training_labels=y)
    version = wb.register(logged, "bench-rf")
    joblib.dump(model, work / "model.joblib")

    row = X.iloc[[0]]
    (work / "invocations.json").write_text(json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))}))
    (work / "v2.json").write_text(json.dumps({"inputs": [
        {"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": row.to_numpy().ravel().tolist()}]}))
    # bare predict: the cost the servers wrap
    timings = []
    for _ in range(300):
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return {"uri": version.uri, "tracking_uri": wb.get_settings().store_uri,
            "bare_predict_ms": statistics.median(timings[50:])}


def start_servers(work: Path, model: dict[str, Any]) -> tuple[list[dict[str, Any]], list[subprocess.Popen[Any]]]:
    servers: list[dict[str, Any]] = []
    procs: list[subprocess.Popen[Any]] = []
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    def launch(name: str, cmd: list[str], ready: str, url: str, body: str, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> None:
        proc = subprocess.Popen(cmd, env=env or env_with_venv_path(), cwd=cwd,
                                stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT)
        procs.append(proc)
        startup = wait_for(ready, proc=proc)
        servers.append({"name": name, "url": url, "body": work / body, "startup_s": startup})
        print(f"  {name}: ready in {startup:.1f} s", flush=True)

    wb_port = free_port()
    launch("workbench (MLflow protocol)",
           [str(Path(PYTHON).parent / "workbench"), "serve", model["uri"], "--port", str(wb_port),
            "--log-dir", str(work / "predictions")],
           f"http://127.0.0.1:{wb_port}/v2/health/ready", f"http://127.0.0.1:{wb_port}/invocations",
           "invocations.json")
    servers.append({"name": "workbench (V2 protocol)", "url": f"http://127.0.0.1:{wb_port}/v2/models/bench-rf/infer",
                    "body": work / "v2.json", "startup_s": None})

    mlflow_port = free_port()
    env = {**env_with_venv_path(), "MLFLOW_TRACKING_URI": model["tracking_uri"]}
    launch("mlflow models serve",
           [str(Path(PYTHON).parent / "mlflow"), "models", "serve", "-m", model["uri"], "--env-manager", "local",
            "--host", "127.0.0.1", "-p", str(mlflow_port)],
           f"http://127.0.0.1:{mlflow_port}/ping", f"http://127.0.0.1:{mlflow_port}/invocations",
           "invocations.json", env=env)

    import sklearn

    mlserver = side_env("mlserver", ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22",
                                     f"scikit-learn=={sklearn.__version__}"])
    for workers in (1, 2):
        folder = work / f"mlserver-{workers}"
        folder.mkdir(exist_ok=True)
        http, grpc, metrics = free_port(), free_port(), free_port()
        (folder / "settings.json").write_text(json.dumps({
            "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
            "parallel_workers": workers, "host": "127.0.0.1"}))
        (folder / "model-settings.json").write_text(json.dumps({
            "name": "rf", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(work / "model.joblib"), "version": "v1"}}))
        launch(f"MLServer sklearn, {workers} worker{'s' if workers > 1 else ''}",
               [str(mlserver / "bin" / "mlserver"), "start", str(folder)],
               f"http://127.0.0.1:{http}/v2/models/rf/ready", f"http://127.0.0.1:{http}/v2/models/rf/infer",
               "v2.json", env={**os.environ, "PATH": f"{mlserver / 'bin'}:{os.environ['PATH']}"})

    (work / "floor_app.py").write_text(FLOOR_APP)
    floor_port = free_port()
    launch("bare Starlette constant (floor)",
           [str(Path(PYTHON).parent / "uvicorn"), "floor_app:app", "--port", str(floor_port), "--log-level", "warning"],
           f"http://127.0.0.1:{floor_port}/ready", f"http://127.0.0.1:{floor_port}/invocations",
           "invocations.json", cwd=work)
    return servers, procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-bench-serving-") as tmp:
        work = Path(tmp)
        print("training and registering the model ...", flush=True)
        model = make_model(work)
        print(f"bare model.predict on one row: {model['bare_predict_ms']:.2f} ms (median)")
        print("starting servers ...", flush=True)
        servers, procs = start_servers(work, model)
        try:
            results: dict[str, dict[str, list[dict[str, float]]]] = {s["name"]: {"c16": [], "c1": []} for s in servers}
            for repeat in range(args.repeats):
                order = servers if repeat % 2 == 0 else list(reversed(servers))
                for server in order:
                    wrk(server["url"], server["body"], 4, 2)  # warm up
                    results[server["name"]]["c16"].append(wrk(server["url"], server["body"], 16, args.seconds))
                    results[server["name"]]["c1"].append(wrk(server["url"], server["body"], 1, max(3, args.seconds // 2)))
                    print(f"  repeat {repeat + 1}: {server['name']}: "
                          f"{results[server['name']]['c16'][-1]['rps']:.0f} req/s", flush=True)
            # the prediction log kept every request
            from workbench.predlog import read_predictions

            logged = len(read_predictions(work / "predictions", limit=None))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    rows = []
    for server in servers:
        c16 = median_of(results[server["name"]]["c16"])
        c1 = median_of(results[server["name"]]["c1"])
        rows.append({"server": server["name"], "req/s (16 conns)": c16["rps"], "p50 ms": c16["p50_ms"],
                     "p99 ms": c16["p99_ms"], "p50 ms (1 conn)": c1["p50_ms"], "startup s": server["startup_s"]})
    by_name = {r["server"]: r for r in rows}
    ours = by_name["workbench (MLflow protocol)"]
    mlflow_row = by_name["mlflow models serve"]
    mlserver_best = max((r for r in rows if r["server"].startswith("MLServer")), key=lambda r: r["req/s (16 conns)"])
    ratios = {
        "req/s vs mlflow models serve": ours["req/s (16 conns)"] / mlflow_row["req/s (16 conns)"],
        "req/s vs best MLServer": ours["req/s (16 conns)"] / mlserver_best["req/s (16 conns)"],
        "p99 vs mlflow models serve": ours["p99 ms"] / mlflow_row["p99 ms"],
        "1-conn p50 minus bare predict (ms)": ours["p50 ms (1 conn)"] - model["bare_predict_ms"],
        "req/s vs the floor": ours["req/s (16 conns)"] / by_name["bare Starlette constant (floor)"]["req/s (16 conns)"],
    }
    print()
    print(table(rows, ["server", "req/s (16 conns)", "p50 ms", "p99 ms", "p50 ms (1 conn)", "startup s"]))
    print()
    print(f"bare model.predict, one row: {model['bare_predict_ms']:.2f} ms")
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    print(f"prediction log records: {logged} (every successful request of the workbench server)")
    path = save("serving", {"rows": rows, "ratios": ratios, "bare_predict_ms": model["bare_predict_ms"],
                            "repeats": args.repeats, "seconds": args.seconds, "logged_records": logged})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
