"""A notebook's first calls, side by side with MLflow's: the first ``log_model`` of a fresh kernel
and the first local deployment, as a data scientist meets them.

Each run is a new Jupyter kernel (nbclient) in a new workspace, with no warm server process left
from an earlier run. Its cells: ``import workbench as wb`` (or ``import mlflow``); load the data and
fit the model; think (``--think`` seconds with the kernel idle, the time a person spends between
cells: 0 is Run All); the first ``log_model`` (timed); register; the first local deployment until it
answers (timed). Scenarios, alternating over repeats, medians:

- ``workbench``: the defaults, with the notebook head start (:mod:`workbench.warmup`);
- ``workbench, no head start``: ``WORKBENCH_WARMUP=0``;
- ``mlflow``: ``mlflow.<flavor>.log_model`` with a signature and an input example (what MLflow
  needs for a served model; a forest in cloudpickle, as MLflow's default skops format refuses its
  trees unless trusted), no deployment (MLflow's serve is in the loop benchmark).

Models: the breast-cancer forest (50 trees) and a CatBoost classifier (30 iterations).

Run: .venv/bin/python benchmarks/first_calls/run.py [--repeats 3] [--think 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import save, table  # noqa: E402

FIT = {
    "forest": ("from sklearn.ensemble import RandomForestClassifier\n"
               "model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)", "sklearn"),
    "catboost": ("from catboost import CatBoostClassifier\n"
                 "model = CatBoostClassifier(iterations=30, verbose=0, allow_writing_files=False).fit(X, y)",
                 "catboost"),
}
SCENARIOS = ("workbench", "workbench, no head start", "mlflow")


def _cells(scenario: str, kind: str, think: float) -> list[str]:
    fit, flavor = FIT[kind]
    load = ("import time\nfrom sklearn.datasets import load_breast_cancer\n"
            "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n" + fit)
    if scenario == "mlflow":
        first = "import mlflow"
        log = (f"import mlflow.{flavor}\nfrom mlflow.models import infer_signature\n"
               "mlflow.set_tracking_uri('sqlite:///' + __import__('os').environ['WORKBENCH_HOME'] + '/mlflow.db')\n"
               "t = time.perf_counter()\nwith mlflow.start_run():\n"
               f"    info = mlflow.{flavor}.log_model(model, name='model', input_example=X.head(5),\n"
               "                                   signature=infer_signature(X, model.predict(X))"
               + (", serialization_format='cloudpickle'" if flavor == "sklearn" else "") + ")\n"
               "log_seconds = time.perf_counter() - t\ndeploy_seconds = None")
    else:
        first = "import workbench as wb"
        log = ("t = time.perf_counter()\nwith wb.start_run(experiment='first-calls'):\n"
               "    logged = wb.log_model(model, training_data=X, training_labels=y)\n"
               "log_seconds = time.perf_counter() - t\n"
               f"version = wb.register(logged, 'first-{kind}')\n"
               f"t = time.perf_counter()\ndep = wb.deploy(version.uri, target='local', name='first-{kind}')\n"
               "dep.predict(X.head(3))\ndeploy_seconds = time.perf_counter() - t\nwb.stop(dep.name)")
    report = "import json\nprint(json.dumps({'log': log_seconds, 'deploy': deploy_seconds}))"
    return [first, load, log, report]


def run_once(scenario: str, kind: str, think: float) -> dict[str, Any]:
    """One fresh kernel through the cells; the timed seconds."""
    import nbformat
    from nbclient import NotebookClient

    runtime = Path(tempfile.mkdtemp(prefix="fc", dir="/tmp"))  # its own warm process, none left running
    home = Path(tempfile.mkdtemp(prefix="first-calls-"))
    env = {**os.environ, "WORKBENCH_HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    if scenario == "workbench, no head start":
        env["WORKBENCH_WARMUP"] = "0"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _cells(scenario, kind, think)])
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(home)}})
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
                if index == 1:
                    time.sleep(think)  # the person reads and types; the kernel is idle
        return json.loads(nb.cells[-1].outputs[0]["text"])
    finally:
        subprocess.run([sys.executable, "-c", "from workbench.deployment import warm; warm.shutdown()"],
                       env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, timeout=60, check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--think", type=float, default=10.0, help="seconds between fitting and log_model")
    parser.add_argument("--models", nargs="+", default=list(FIT), choices=list(FIT))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        order = SCENARIOS if repeat % 2 == 0 else tuple(reversed(SCENARIOS))
        for kind in args.models:
            for scenario in order:
                runs.setdefault((kind, scenario), []).append(run_once(scenario, kind, args.think))
    rows = []
    for (kind, scenario), found in runs.items():
        deploys = [r["deploy"] for r in found if r["deploy"] is not None]
        rows.append({"model": kind, "scenario": scenario, "first log_model s": statistics.median(r["log"] for r in found),
                     "first deploy s": statistics.median(deploys) if deploys else None})
    for kind in args.models:
        ours = next(r for r in rows if r["model"] == kind and r["scenario"] == "workbench")
        theirs = next(r for r in rows if r["model"] == kind and r["scenario"] == "mlflow")
        ours["log_model vs MLflow"] = ours["first log_model s"] / theirs["first log_model s"]
    print(f"think time {args.think:g} s, {args.repeats} repeats, load average at start {load:.1f}")
    print(table(rows, ["model", "scenario", "first log_model s", "first deploy s", "log_model vs MLflow"]))
    save("first_calls", {"think": args.think, "repeats": args.repeats, "load": load, "rows": rows})


if __name__ == "__main__":
    main()
