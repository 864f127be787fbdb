"""The prediction log in SQLite (the default) and in a shared PostgreSQL store, side by side.

1. A replica's throughput: one `workbench serve` process of the serving benchmark's forest (50 trees,
   max depth 8, 20 float features), single-row JSON to `/invocations`, wrk with 16 connections, once
   with its embedded SQLite log and once writing to PostgreSQL (`--log-url`), in alternating order
   over the repeats, medians. Every answer is committed to its log before it is sent, both ways.
2. The writers alone: 16 threads each appending one record at a time and waiting for its commit
   (what the server's requests do), for the SQLite writer and the store writer: records/s.

PostgreSQL 15+ (Debian's, a throwaway cluster started here, `synchronous_commit` on, as shipped)
runs on the same machine as the server and wrk: figures say what one machine does with all three.

Run: `.venv/bin/python benchmarks/logstore/run.py [--repeats 3] [--seconds 10]` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Postgres, forest_model, median_of, save, start_workbench, table, wrk  # noqa: E402


def _serve(uri: str, work: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc, url, _ = start_workbench(uri, work / f"log-{uuid.uuid4().hex[:6]}", *args)
    return proc, url


def servers(uri: str, pg: Postgres, work: Path, repeats: int, seconds: int) -> dict[str, dict[str, float]]:
    body = work / "row.json"
    row = {f"f{i}": float(np.float64(0.1) * i) for i in range(20)}
    body.write_text(json.dumps({"dataframe_records": [row]}))
    runs: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    configs = {"sqlite": (), "postgresql": ("--log-url", pg.url, "--deployment", "bench")}
    for repeat in range(repeats):
        order = list(configs) if repeat % 2 == 0 else list(reversed(configs))
        for name in order:
            proc, url = _serve(uri, work, *configs[name])
            try:
                wrk(f"{url}/invocations", body, 4, 2)  # warm up
                runs[name].append(wrk(f"{url}/invocations", body, 16, seconds))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    return {name: median_of(found) for name, found in runs.items()}


def writers(pg: Postgres, work: Path, repeats: int, seconds: float) -> dict[str, float]:
    from workbench.predlog import LogRecord, open_log

    inputs = {"columns": [f"f{i}" for i in range(20)], "data": [[0.1 * i for i in range(20)]],
              "dtypes": ["float64"] * 20}
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    for repeat in range(repeats):
        for name in (("sqlite", "postgresql") if repeat % 2 == 0 else ("postgresql", "sqlite")):
            log = open_log(work / f"writer-{uuid.uuid4().hex[:6]}", url=pg.url if name == "postgresql" else None,
                           deployment="bench-writer", replica=f"bench-{repeat}")
            done = [0] * 16
            stop = threading.Event()

            def append(worker: int) -> None:
                while not stop.is_set():
                    record = LogRecord(uuid.uuid4().hex, time.time(), "bench", "1", "mlflow", 1, 1.0, inputs,
                                       {"predict": [1]})
                    log.append([record])  # type: ignore[attr-defined]
                    done[worker] += 1

            threads = [threading.Thread(target=append, args=(w,)) for w in range(16)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(seconds)
            stop.set()
            for thread in threads:
                thread.join()
            rates[name].append(sum(done) / (time.perf_counter() - started))
            log.close()
    return {name: statistics.median(found) for name, found in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-logstore-"))
    os.environ["WORKBENCH_HOME"] = str(work / "home")
    import workbench as wb

    wb.configure()
    pg = Postgres()
    try:
        uri = forest_model("bench-logstore")
        served = servers(uri, pg, work, args.repeats, args.seconds)
        written = writers(pg, work, args.repeats, args.seconds / 2)
    finally:
        pg.remove()
    rows = [{"log": name, "req/s (16 conns)": served[name]["rps"], "p50 ms": served[name]["p50_ms"],
             "p99 ms": served[name]["p99_ms"], "writer records/s (16 threads)": written[name]}
            for name in ("sqlite", "postgresql")]
    print(table(rows, list(rows[0])))
    ratio = served["postgresql"]["rps"] / served["sqlite"]["rps"]
    writer_ratio = written["postgresql"] / written["sqlite"]
    print(f"\nPostgreSQL store / SQLite log: {ratio:.2f} of the server's req/s (target at least 0.80), "
          f"{writer_ratio:.2f} of the writer's records/s")
    print(f"results: {save('logstore', {'servers': served, 'writers': written, 'ratio': ratio})}")


if __name__ == "__main__":
    main()
