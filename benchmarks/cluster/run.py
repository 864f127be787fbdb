"""The loop on a real two-node Docker Swarm (scripts/swarm-cluster), with one PostgreSQL log store.

1. Throughput through the deployment's router, single-row JSON to `/invocations`, wrk with 16
   connections, the serving benchmark's forest (50 trees, depth 8, 20 float features):
   - `docker`: one model container on this engine, its embedded SQLite log;
   - `swarm`: 4 replicas spread over both nodes, every answer committed to the PostgreSQL store.
   Both answer only after the answer is committed to their log. Alternating order over the repeats,
   medians.
2. Nothing lost: tests/e2e/test_cluster.py's run (4 replicas, 8 senders for 60 s, each answer
   followed by its feedback; two replicas killed with SIGKILL, the worker's engine stopped for 20 s,
   PostgreSQL restarted): acknowledged, lost and duplicated, read back from the store.

Everything runs on this machine's 2 cores: both engines, PostgreSQL, the registry, wrk and the
senders. Figures say what one machine does with all of them; a real cluster spreads the load.

Run as root: `.venv/bin/python benchmarks/cluster/run.py [--repeats 3] [--seconds 10] [--run-seconds 60]`
(about 8 minutes; `scripts/swarm-cluster up` first, which scripts/setup-system does).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import PYTHON, Postgres, forest_model, median_of, save, table, wrk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GATEWAY = "10.213.7.1"


def throughput(uri: str, pg: Postgres, work: Path, repeats: int, seconds: int) -> dict[str, dict[str, float]]:
    import workbench as wb

    frame = pd.DataFrame([[0.5] * 20], columns=[f"f{i}" for i in range(20)])
    body = work / "row.json"
    body.write_text(json.dumps({"dataframe_split": frame.to_dict(orient="split") | {"index": [0]}}))
    deployments = {"docker (1 container, SQLite log)": ("docker", {}),
                   "swarm (4 replicas on 2 nodes, PostgreSQL log)":
                       ("swarm", {"replicas": 4, "registry": f"{GATEWAY}:5000/bench"})}
    os.environ["WORKBENCH_LOG_URL"] = pg.url
    wb.configure()
    urls = {}
    try:
        for label, (target, options) in deployments.items():
            urls[label] = wb.deploy(uri, target=target, name=f"bench-{target}", **options).url
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in deployments}
        for repeat in range(repeats):
            for label in (list(deployments) if repeat % 2 == 0 else list(reversed(deployments))):
                wrk(f"{urls[label]}/invocations", body, 4, 2)  # warm up
                runs[label].append(wrk(f"{urls[label]}/invocations", body, 16, seconds))
        return {label: median_of(found) for label, found in runs.items()}
    finally:
        for target, _ in deployments.values():
            try:
                wb.stop(f"bench-{target}")
            except wb.WorkbenchError:
                pass


def nothing_lost(run_seconds: int, work: Path) -> dict[str, object]:
    report = work / "cluster-run.json"
    env = {**os.environ, "WORKBENCH_TEST_CLUSTER_SECONDS": str(run_seconds),
           "WORKBENCH_TEST_CLUSTER_REPORT": str(report), "WORKBENCH_STRICT_TESTS": "1"}
    env.pop("WORKBENCH_LOG_URL", None)
    env.pop("WORKBENCH_HOME", None)
    subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests/e2e/test_cluster.py")],
                   cwd=REPO, env=env, check=True)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--run-seconds", type=int, default=60)
    args = parser.parse_args()
    subprocess.run([str(REPO / "scripts" / "swarm-cluster"), "up"], check=True)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    os.environ["WORKBENCH_HOME"] = str(work / "home")
    import workbench as wb

    wb.configure()
    pg = Postgres(host=GATEWAY, clients=("10.213.0.0/16", "172.16.0.0/12"), password=secrets.token_hex(8))
    try:
        served = throughput(forest_model("bench-cluster"), pg, work, args.repeats, args.seconds)
    finally:
        pg.remove()
    ran = nothing_lost(args.run_seconds, work)
    rows = [{"deployment": label, "req/s (16 conns)": r["rps"], "p50 ms": r["p50_ms"], "p99 ms": r["p99_ms"]}
            for label, r in served.items()]
    print(table(rows, list(rows[0])))
    labels = list(served)
    print(f"\nswarm with the PostgreSQL log / one docker container with SQLite: "
          f"{served[labels[1]]['rps'] / served[labels[0]]['rps']:.2f} of the req/s")
    print(f"\nfailure run ({ran['seconds']:.0f} s, {ran['senders']} senders, nodes {ran['nodes']}): "
          f"{ran['acknowledged']} predictions and {ran['feedback_acknowledged']} feedback items acknowledged "
          f"({ran['acknowledged'] / ran['seconds']:.0f} req/s with feedback), lost {ran['lost']} + "
          f"{ran['feedback_lost']}, duplicated {ran['duplicated']} + {ran['feedback_duplicated']}, refused "
          f"{ran['refused']}; replicas seen {ran['replicas_seen']}; {ran['events']}")
    print(f"results: {save('cluster', {'throughput': served, 'failure_run': ran})}")


if __name__ == "__main__":
    main()
