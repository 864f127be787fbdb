"""Ground truth after the answer: how fast the server records feedback, whether a kill -9 loses any
that was acknowledged, and how long one retrain-challenge-promote cycle takes.

1. Throughput: one `workbench serve` process of the serving benchmark's forest (50 trees, 20 float
   features). wrk with 16 connections posts single-item feedback (each a new reward for an answered
   row, so every request writes) and, side by side on the same server, single-row predictions to
   `/invocations` (each also a committed write to the same log): the ratio says what recording the
   truth costs next to answering. Batches: 1,000 items per POST from one client.
2. Durability: 8 threads post feedback while the server is killed with SIGKILL; every acknowledged
   item must be in the log afterwards.
3. The loop: notebook 07's data (scikit-learn's breast cancer table, the outcome flipped for half the
   rows halfway) on a local deployment; seconds from the trigger to the promotion, split by step.

Run: `.venv/bin/python benchmarks/feedback/run.py [--repeats 3] [--seconds 10]` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import PYTHON, free_port, median_of, save, table, wait_for, wrk_script  # noqa: E402

ANSWERED = 1000


def _wrk_lua(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _model(home: Path) -> str:
    import workbench as wb
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    with wb.start_run(experiment="bench-feedback"):
        model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(frame, y)
        logged = wb.log_model(model, training_data=frame, training_labels=pd.Series(y))
    return wb.register(logged, "bench-feedback").uri


def _serve(uri: str, work: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_dir = work / f"log-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([str(Path(PYTHON).parent / "workbench"), "serve", uri, "--port", str(port),
                             "--log-dir", str(log_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/v2/health/ready", proc=proc)
    return proc, url, log_dir


def _answer(url: str, n: int) -> list[str]:
    row = {f"f{i}": 0.1 * i for i in range(20)}
    ids = []
    with httpx.Client() as client:
        for i in range(n):
            response = client.post(f"{url}/invocations", json={"dataframe_records": [row]},
                                   headers={"x-request-id": f"fb-{i}"})
            response.raise_for_status()
            ids.append(response.headers["x-request-id"])
    return ids


def throughput(uri: str, work: Path, repeats: int, seconds: int) -> dict[str, object]:
    proc, url, _ = _serve(uri, work)
    try:
        _answer(url, ANSWERED)
        feedback = _wrk_lua(work / "feedback.lua", [
            'wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"', "counter = 0",
            "request = function()", "  counter = counter + 1",
            f'  local body = string.format(\'{{"request_id": "fb-%d", "truth": 1, "reward": %d}}\', counter % {ANSWERED}, counter)',
            '  return wrk.format(nil, "/v2/models/bench-feedback/feedback", nil, body)', "end"])
        row = json.dumps({"dataframe_records": [{f"f{i}": 0.1 * i for i in range(20)}]}).replace('"', '\\"')
        predict = _wrk_lua(work / "predict.lua", [
            'wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"', f'wrk.body = "{row}"',
            'request = function() return wrk.format(nil, "/invocations") end'])
        results: dict[str, list[dict[str, float]]] = {"feedback": [], "invocations": []}
        wrk_script(url, feedback, 4, 2)  # warm up
        for _ in range(repeats):
            for name, script in (("feedback", feedback), ("invocations", predict)):
                results[name].append(wrk_script(url, script, 16, seconds))
        batch_rates = []
        with httpx.Client(timeout=60) as client:
            for r in range(repeats):
                body = [{"request_id": f"fb-{i}", "truth": 0, "reward": float(r * 10_000 + i)} for i in range(ANSWERED)]
                started, sent = time.perf_counter(), 0
                while time.perf_counter() - started < seconds / 2:
                    client.post(f"{url}/v2/models/bench-feedback/feedback", json=body).raise_for_status()
                    sent += len(body)
                    body = [{**item, "reward": item["reward"] + 0.5} for item in body]
                batch_rates.append(sent / (time.perf_counter() - started))
        return {"single": {k: median_of(v) for k, v in results.items()},
                "batch_items_per_s": statistics.median(batch_rates)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def durability(uri: str, work: Path) -> dict[str, int]:
    from workbench.predlog import read_feedback

    proc, url, log_dir = _serve(uri, work)
    ids = _answer(url, 50)
    acknowledged: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def send(worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not stop.is_set():
                n += 1
                item = {"request_id": ids[n % len(ids)], "reward": float(worker * 1_000_000 + n)}
                try:
                    if client.post(f"{url}/v2/models/bench-feedback/feedback", json=item).status_code == 200:
                        with lock:
                            acknowledged.append(f"{item['request_id']}:{item['reward']}")
                except httpx.HTTPError:
                    return

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, w) for w in range(8)]
        time.sleep(3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for future in futures:
            future.result()
    kept = read_feedback(log_dir, limit=10_000_000).records
    stored = {f"{r}:{w}" for r, w in zip(kept["request_id"], kept["reward"])}
    return {"acknowledged": len(acknowledged), "stored": len(stored), "lost": len(set(acknowledged) - stored)}


def loop_cycle() -> dict[str, float]:
    """Notebook 07's story, timed from the trigger to the promotion."""
    import workbench as wb
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    rng = np.random.default_rng(7)

    def stream(n: int, changed: bool) -> tuple[pd.DataFrame, np.ndarray]:
        picked = rng.integers(0, len(X), n)
        rows = X.iloc[picked].reset_index(drop=True) + rng.normal(0, 0.01, (n, X.shape[1])) * X.std().to_numpy()
        outcome = y.iloc[picked].to_numpy()
        if changed:
            outcome = np.where(rows["mean texture"] > X["mean texture"].median(), 1 - outcome, outcome)
        return rows, outcome

    with wb.start_run(experiment="bench-loop"):
        model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
        champion = wb.register(wb.log_model(model, training_data=X, training_labels=y), "bench-cancer")
    name = "bench-loop"
    dep = wb.deploy(champion.uri, name=name)
    times: dict[str, float] = {}
    try:
        def serve(batches: int, changed: bool) -> None:
            for _ in range(batches):
                rows, outcome = stream(20, changed)
                request_id = uuid.uuid4().hex
                dep.predict(rows, request_id=request_id)
                dep.log_feedback(request_id, outcome)

        def train(rows: pd.DataFrame) -> RandomForestClassifier:
            return RandomForestClassifier(n_estimators=50, random_state=0).fit(rows.drop(columns="truth"), rows["truth"])

        stamps: dict[str, float] = {}
        loop = wb.retrain_on(name, train=train, when={"accuracy": 0.85}, gate=wb.Gate(margin=0.05, min_rows=150),
                             window=300, min_labels=100,
                             on_step=lambda step: stamps.setdefault(step.kind, time.perf_counter()))
        serve(15, False)
        loop.check()
        serve(20, True)
        started = time.perf_counter()
        loop.check()  # fires, trains, registers, starts the shadow challenger
        times["trigger_to_challenging_s"] = stamps["challenging"] - started
        serve(10, True)  # both versions answer and get the truth
        traffic_done = time.perf_counter()
        loop.run(timeout=300)
        times["gate_to_promoted_s"] = stamps["promoted"] - traffic_done
        times["whole_cycle_s"] = stamps["promoted"] - started
        times["traffic_while_challenging_s"] = traffic_done - stamps["challenging"]
    finally:
        wb.stop(name)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["WORKBENCH_HOME"] = str(work / "home")
        uri = _model(work)
        speed = throughput(uri, work, args.repeats, args.seconds)
        kill = durability(uri, work)
        cycle = loop_cycle()
    single = speed["single"]
    rows = [{"route": name, **values} for name, values in single.items()]  # type: ignore[union-attr]
    print(table(rows, ["route", "rps", "p50_ms", "p99_ms"]))
    ratio = single["feedback"]["rps"] / single["invocations"]["rps"]  # type: ignore[index]
    print(f"feedback / invocations requests per second: {ratio:.2f}")
    print(f"batches of {ANSWERED}: {speed['batch_items_per_s']:,.0f} items/s")
    print(f"kill -9 under 8 senders: {kill['acknowledged']} acknowledged, {kill['lost']} lost")
    print("retrain cycle: " + ", ".join(f"{k} {v:.1f}" for k, v in cycle.items()))
    print(save("feedback", {"throughput": speed, "ratio_to_invocations": ratio, "kill9": kill, "cycle": cycle}))


if __name__ == "__main__":
    main()
