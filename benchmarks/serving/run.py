"""Serving benchmark: the workbench server side by side with what a user would pick instead.

Same model (RandomForest, 50 trees, max depth 8, 20 float features), same machine, same load
(wrk, single-row JSON; 16 connections for throughput, 1 for latency), servers in alternating order
over repeats, medians reported:

- workbench serve (prediction log on), MLflow protocol and Open Inference Protocol V2, once with its
  embedded SQLite log and once writing to a PostgreSQL log store (`--log-url`, a throwaway cluster
  started here as in benchmarks/logstore/run.py); every answer is committed to the log before it is
  sent, and the script checks that the answers are `model.predict`'s, bit for bit, and that each
  log holds exactly the requests its server answered
- mlflow models serve --env-manager local
- MLServer 1.7.1 with its scikit-learn runtime, 1 and 2 parallel workers (its own venv)
- a bare Starlette endpoint returning a constant: the framework floor

Run: .venv/bin/python benchmarks/serving/run.py [--repeats 3] [--seconds 10] (about 8 minutes)
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
    PYTHON, Postgres, env_with_venv_path, free_port, logged_records, median_of, save, side_env, start_workbench,
    table, wait_for, wrk,
)

#: The workbench's rows: (name, which log, protocol).
WORKBENCH = {
    "workbench (MLflow protocol)": ("sqlite", "invocations"),
    "workbench (V2 protocol)": ("sqlite", "v2"),
    "workbench, PostgreSQL log (MLflow protocol)": ("postgresql", "invocations"),
    "workbench, PostgreSQL log (V2 protocol)": ("postgresql", "v2"),
}

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
    return {"uri": version.uri, "tracking_uri": wb.get_settings().store_uri, "path": work / "model.joblib",
            "row": {"data": row.to_numpy(), "columns": list(row.columns)},
            "bare_predict_ms": statistics.median(timings[50:])}


def start_servers(work: Path, model: dict[str, Any], pg: Postgres) -> tuple[list[dict[str, Any]], list[subprocess.Popen[Any]]]:
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

    stores = {"sqlite": ((), work / "predictions"),
              "postgresql": (("--log-url", pg.url, "--deployment", "bench-rf"), work / "spool")}
    for store, (args, log_dir) in stores.items():
        proc, base, startup = start_workbench(model["uri"], log_dir, *args, log_file=logs / f"workbench-{store}.log")
        procs.append(proc)
        print(f"  workbench ({store} log): ready in {startup:.1f} s", flush=True)
        for name, (log, protocol) in WORKBENCH.items():
            if log == store:
                path, body = (("/invocations", "invocations.json") if protocol == "invocations" else
                              ("/v2/models/bench-rf/infer", "v2.json"))
                servers.append({"name": name, "url": base + path, "body": work / body, "log": log, "base": base,
                                "startup_s": startup if protocol == "invocations" else None})

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


def check_answers(servers: list[dict[str, Any]], model: dict[str, Any]) -> None:
    """Each workbench route answers the benchmark's row with ``model.predict``'s answer, bit for bit
    (and in the same dtype)."""
    import httpx
    import joblib
    import numpy as np
    import pandas as pd

    expected = joblib.load(model["path"]).predict(pd.DataFrame(**model["row"]))
    for server in servers:
        if server["name"] not in WORKBENCH:
            continue
        answer = httpx.post(server["url"], content=server["body"].read_bytes(),
                            headers={"content-type": "application/json"}).raise_for_status().json()
        got = answer["predictions"] if "predictions" in answer else answer["outputs"][0]["data"]
        if not np.array_equal(np.asarray(got, dtype=expected.dtype), expected) or [type(v) for v in got] != [int]:
            raise AssertionError(f"{server['name']} answered {got}, model.predict gives {expected.tolist()}")


def answered_requests(base: str) -> int:
    """The inference requests a workbench server answered (its ``/metrics``): each was committed to
    its log first."""
    import httpx

    text = httpx.get(f"{base}/metrics").raise_for_status().text
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("model_infer_request_success_total")))


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
        pg = Postgres()
        print("starting servers ...", flush=True)
        servers, procs = start_servers(work, model, pg)
        answered: dict[str, int] = {}
        try:
            check_answers(servers, model)
            results: dict[str, dict[str, list[dict[str, float]]]] = {s["name"]: {"c16": [], "c1": []} for s in servers}
            for repeat in range(args.repeats):
                order = servers if repeat % 2 == 0 else list(reversed(servers))
                for server in order:
                    wrk(server["url"], server["body"], 4, 2)  # warm up
                    results[server["name"]]["c16"].append(wrk(server["url"], server["body"], 16, args.seconds))
                    results[server["name"]]["c1"].append(wrk(server["url"], server["body"], 1, max(3, args.seconds // 2)))
                    print(f"  repeat {repeat + 1}: {server['name']}: "
                          f"{results[server['name']]['c16'][-1]['rps']:.0f} req/s", flush=True)
            time.sleep(1)  # requests wrk left in flight are answered (and logged) by now
            answered = {s["log"]: answered_requests(s["base"]) for s in servers if s["name"] in WORKBENCH}
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        try:
            # Each log holds every request its server answered, once.
            logged = {"sqlite": logged_records(work / "predictions"),
                      "postgresql": logged_records(f"{pg.url}?deployment=bench-rf")}
        finally:
            pg.remove()

    rows = []
    for server in servers:
        c16 = median_of(results[server["name"]]["c16"])
        c1 = median_of(results[server["name"]]["c1"])
        rows.append({"server": server["name"], "req/s (16 conns)": c16["rps"], "p50 ms": c16["p50_ms"],
                     "p99 ms": c16["p99_ms"], "p50 ms (1 conn)": c1["p50_ms"], "startup s": server["startup_s"]})
    by_name = {r["server"]: r for r in rows}
    mlflow_row = by_name["mlflow models serve"]
    mlserver = [r for r in rows if r["server"].startswith("MLServer")]
    mlserver_best = max(mlserver, key=lambda r: r["req/s (16 conns)"])
    for row in rows:
        if row["server"] in WORKBENCH:
            row["x best MLServer req/s"] = row["req/s (16 conns)"] / mlserver_best["req/s (16 conns)"]
            row["p99 / its p99"] = row["p99 ms"] / mlserver_best["p99 ms"]
    ours = by_name["workbench (MLflow protocol)"]
    ratios = {
        "req/s vs mlflow models serve": ours["req/s (16 conns)"] / mlflow_row["req/s (16 conns)"],
        "req/s vs best MLServer (lowest of the four workbench rows)":
            min(by_name[n]["req/s (16 conns)"] for n in WORKBENCH) / mlserver_best["req/s (16 conns)"],
        "p99 vs best MLServer's (highest of the four workbench rows)":
            max(by_name[n]["p99 ms"] for n in WORKBENCH) / mlserver_best["p99 ms"],
        "p99 vs mlflow models serve": ours["p99 ms"] / mlflow_row["p99 ms"],
        "1-conn p50 minus bare predict (ms)": ours["p50 ms (1 conn)"] - model["bare_predict_ms"],
        "req/s vs the floor": ours["req/s (16 conns)"] / by_name["bare Starlette constant (floor)"]["req/s (16 conns)"],
    }
    print()
    print(table(rows, ["server", "req/s (16 conns)", "p50 ms", "p99 ms", "p50 ms (1 conn)", "startup s",
                       "x best MLServer req/s", "p99 / its p99"]))
    print()
    print(f"best MLServer: {mlserver_best['server']}")
    print(f"bare model.predict, one row: {model['bare_predict_ms']:.2f} ms")
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    for store in ("sqlite", "postgresql"):
        print(f"{store} log: {logged[store]} records for {answered[store]} requests answered (server's count)"
              + ("" if logged[store] == answered[store] else "  <-- NOT EQUAL"))
    path = save("serving", {"rows": rows, "ratios": ratios, "bare_predict_ms": model["bare_predict_ms"],
                            "repeats": args.repeats, "seconds": args.seconds, "logged": logged, "answered": answered,
                            "load_average": os.getloadavg()})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
