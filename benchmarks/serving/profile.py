"""Where a served request's time goes: `workbench serve` of the serving benchmark's forest under wrk
(16 connections, single-row JSON), sampled by py-spy for the thread holding the GIL (the server's
Python work runs one thread at a time), each sample put in the phase of its innermost known frame.

Prints, per phase, the GIL-held microseconds per request: the phase's share of the samples times the
wall time per request. The model's own work (sklearn's forest, about 2 ms per call for 1 to 16 rows)
and the DataFrame are per batch, shown per request at the batch sizes the load produced.

Needs py-spy (`.venv/bin/pip install py-spy`; not a project dependency) and permission to read the
server's memory (root, or ptrace allowed). Run:
`.venv/bin/python benchmarks/serving/profile.py [--protocol invocations|v2] [--seconds 10] [--postgres]`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Postgres, forest_model, start_workbench, wrk  # noqa: E402

#: (a frame's text contains, phase): the first match from the innermost frame outwards wins.
PHASES = [
    ("predict_frame", "model predict (per batch)"),
    ("ServedModel.frame", "DataFrame construction (per batch)"),
    ("log_inputs", "log record building"),
    ("_jsonable_outputs", "log record building"),
    ("LogRecord", "log record building"),
    ("PredictionLog._", "log writer thread (commit)"),
    ("StoreLog._", "log writer thread (commit)"),
    ("QueuedLog", "log hand-off"),
    ("restore", "dtype restoration, signature check"),
    ("to_batch", "dtype restoration, signature check"),
    ("convert_column", "dtype restoration, signature check"),
    ("batch_from_tensors", "dtype restoration, signature check"),
    ("decode_tensor", "parsing"),
    ("_parse_json", "parsing"),
    ("_json_columns", "parsing"),
    ("read_body", "body read"),
    ("render", "response encoding"),
    ("encode_tensor", "response encoding"),
    ("_JSON", "response encoding"),
    ("Batcher", "batching hand-off"),
    ("_settle", "batching hand-off"),
    ("Future", "batching hand-off"),
    ("_worker", "batching hand-off"),
    ("RequestInfo", "request id"),
    ("uuid", "request id"),
    ("_Routes", "route handler (rest)"),
]
OTHER = "HTTP server and ASGI framework (uvicorn, middleware, routing, sending)"


def phases(raw: Path) -> tuple[collections.Counter[str], int]:
    """Samples per phase in a py-spy raw (collapsed stacks) file, and the samples in all."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")[1:]
        total += int(n)
        found = next((name for frame in reversed(frames) for key, name in PHASES if key in frame), None)
        counts[found or (OTHER if any("Runner.run" in f for f in frames) else "other threads")] += int(n)
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("invocations", "v2"), default="invocations")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--postgres", action="store_true",
                        help="log to a throwaway PostgreSQL log store (--log-url) instead of the embedded SQLite log")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    work = Path(tempfile.mkdtemp(prefix="bench-serving-profile-"))
    os.environ["WORKBENCH_HOME"] = str(work / "home")
    import workbench as wb

    wb.configure()
    uri = forest_model("bench-profile")
    row = [0.1 * i for i in range(20)]
    body = work / "body.json"
    if args.protocol == "invocations":
        path = "/invocations"
        body.write_text(json.dumps({"dataframe_split": {"columns": [f"f{i}" for i in range(20)], "data": [row]}}))
    else:
        path = "/v2/models/bench-profile/infer"
        body.write_text(json.dumps({"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": row}]}))
    pg = Postgres() if args.postgres else None
    store = ("--log-url", pg.url, "--deployment", "bench-profile") if pg else ()
    proc, url, _ = start_workbench(uri, work / "log", *store)
    try:
        wrk(url + path, body, 4, 2)  # warm up
        result: dict[str, float] = {}
        load = threading.Thread(target=lambda: result.update(wrk(url + path, body, 16, args.seconds + 2)))
        load.start()
        raw = work / "profile.txt"
        subprocess.run([spy, "record", "-p", str(proc.pid), "-d", str(args.seconds), "-r", str(args.rate), "--gil",
                        "--threads", "-f", "raw", "-o", str(raw)], check=True, capture_output=True)
        load.join()
    finally:
        proc.terminate()
        proc.wait(30)
        if pg is not None:
            pg.remove()
    counts, total = phases(raw)
    ticks = args.rate * args.seconds
    per_sample = 1e6 / ticks / result["rps"]  # one sample's share of a request, in microseconds
    print(f"{path}: {result['rps']:.0f} req/s under wrk, GIL held {total / ticks:.0%} of the time, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, n in counts.most_common():
        print(f"{n * per_sample:8.1f} us  {name}")
    print(f"{total * per_sample:8.1f} us  GIL held per request, in all")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
