"""Drift and performance over 7 days: merged window summaries vs recomputing from rows vs Evidently.

A prediction log of ``--rows`` rows over ``--days`` days (8 numeric and 2 categorical features,
1,000-row requests, a tenth of the rows labelled later; from day 4 one numeric feature and one
categorical drift and the accuracy falls) is written once into benchmarks/results/history-data/.
Then, each timed apart:

1. summarising: the monitor reads the log once and writes per-minute summaries beside it (a
   one-time cost, paid as the log grows; rows/s);
2. the report from summaries: every summary of the 7 days read and merged, per hour and for the
   whole week, drift (Wasserstein/JS) and accuracy/F1 per hour and version: ``summaries_history``;
3. the same report from rows: every row read back from the log, the week's drift tested, the
   labelled rows' accuracy and F1, and the drift of each hour;
4. Evidently 0.7.23's DataDriftPreset on ``--evidently-rows`` of the same rows (the whole week does
   not fit in this machine's memory for it), in its own venv (benchmarks/.envs/evidently).

Run: .venv/bin/python benchmarks/history/run.py [--rows 10000000] [--days 7] [--evidently-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

NUMERIC = [f"f{i}" for i in range(8)]
CATEGORICAL = ["region", "plan"]
START = 494_440 * 3600.0  # a Monday 00:00 UTC (2026-05-25)
REQUEST = 1000


def data_dir(rows: int, days: int) -> Path:
    return BENCH / "results" / "history-data" / f"{rows}-{days}d"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _frame(rng: Any, n: int, drift: Any) -> Any:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({c: rng.normal(i, 1.0 + i / 10, n) for i, c in enumerate(NUMERIC)})
    frame["f0"] += 0.5 * drift  # half a standard deviation, from day 4
    regions = np.array(["north", "south", "east", "west", "centre", "islands", "alps", "coast", "city", "rural"])
    weights = np.full(10, 0.1)
    region = rng.choice(regions, n, p=weights)
    moved = drift & (rng.random(n) < 0.3)
    region[moved] = "city"
    frame["region"] = region
    frame["plan"] = rng.choice(np.array(["basic", "plus", "pro", "team", "enterprise"]), n)
    return frame


def prepare(rows: int, days: int) -> dict[str, Any]:
    """The reference profile and the log (once per size)."""
    import numpy as np

    from workbench.predlog import LogRecord, PredictionLog
    from workbench.profile import ReferenceProfile
    from workbench.serving.codecs import InputBatch

    folder = data_dir(rows, days)
    if (folder / "done").exists():
        return {"prepared": False}
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    reference = _frame(rng, 100_000, np.zeros(100_000, dtype=bool))
    ReferenceProfile.from_data(reference).save(folder / "profile")
    log_dir = folder / "log"
    log = PredictionLog(log_dir, replica="bench")
    started = time.perf_counter()
    span = days * 86400.0
    n_requests = rows // REQUEST
    labels = []
    try:
        batch = []
        for k in range(n_requests):
            ts = START + span * (k + 0.5) / n_requests
            drift = np.full(REQUEST, ts >= START + 3 * 86400)
            frame = _frame(rng, REQUEST, drift)
            truth = ((frame["f1"] + frame["f2"] + rng.normal(0, 1, REQUEST)) > 1.5).astype(np.int64).to_numpy()
            wrong = rng.random(REQUEST) < (0.3 if ts >= START + 3 * 86400 else 0.1)
            predicted = np.where(wrong, 1 - truth, truth)
            version = "1" if ts < START + 4.5 * 86400 else "2"
            inputs = InputBatch({c: frame[c] for c in frame.columns}, REQUEST).log_inputs()
            batch.append(LogRecord(f"r{k}", ts, "bench", version, "invocations", REQUEST, 1.0, inputs,
                                   {"predict": predicted.tolist()}))
            chosen = np.flatnonzero(rng.random(REQUEST) < 0.1)
            labels += [(k + 1, int(i), int(truth[i]), ts, version) for i in chosen]
            if len(batch) == 20:
                log.append(batch)
                batch = []
        if batch:
            log.append(batch)
    finally:
        log.close()
    import sqlite3

    conn = sqlite3.connect(log_dir / "predictions.db")
    with conn:
        conn.executemany(
            "INSERT INTO feedback (request_id, row, truth, reward, ts, predicted_ts, prediction_seq, model_version, "
            "replica) VALUES (?,?,?,NULL,?,?,?,?,'bench')",
            [(f"r{seq - 1}", row, str(truth).encode(), ts + 3600, ts, seq, version)
             for seq, row, truth, ts, version in labels])
    conn.close()
    (folder / "done").write_text("")
    return {"prepared": True, "seconds": time.perf_counter() - started, "labels": len(labels)}


def summarise(rows: int, days: int) -> dict[str, Any]:
    from workbench.monitor.summaries import SummaryStore
    from workbench.predlog import LogFolderSource
    from workbench.profile import ReferenceProfile

    folder = data_dir(rows, days)
    profile = ReferenceProfile.load(folder / "profile")
    (folder / "log" / "summaries.db").unlink(missing_ok=True)
    started = time.perf_counter()
    store = SummaryStore(folder / "log" / "summaries.db", LogFolderSource(folder / "log"))
    added = store.catch_up(lambda version: profile, page_size=200)
    seconds = time.perf_counter() - started
    size = (folder / "log" / "summaries.db").stat().st_size
    return {"seconds": seconds, "rows": added, "rows_per_s": added / seconds, "summary_mb": size / 1e6,
            "log_mb": (folder / "log" / "predictions.db").stat().st_size / 1e6, "peak_mb": peak_mb()}


def from_summaries(rows: int, days: int) -> dict[str, Any]:
    import pandas as pd

    from workbench.monitor import summaries_history
    from workbench.monitor.summaries import SummaryStore
    from workbench.predlog import LogFolderSource
    from workbench.profile import ReferenceProfile

    folder = data_dir(rows, days)
    profile = ReferenceProfile.load(folder / "profile")
    started = time.perf_counter()
    store = SummaryStore(folder / "log" / "summaries.db", LogFolderSource(folder / "log"))
    summaries = store.read(START, START + days * 86400, every=3600)
    history = summaries_history(summaries, lambda version: profile,
                                since=pd.Timestamp(START, unit="s", tz="UTC"),
                                until=pd.Timestamp(START + days * 86400, unit="s", tz="UTC"), every=3600,
                                thresholds={"accuracy": 0.8})
    seconds = time.perf_counter() - started
    week = history.reports["2"]
    return {"seconds": seconds, "windows": len(summaries), "periods": len(history.frame),
            "rows": int(history.frame["rows"].sum()), "peak_mb": peak_mb(),
            "drifted_v2": week.drifted_features, "accuracy_v1": history.performance["1"]["accuracy"],
            "accuracy_v2": history.performance["2"]["accuracy"], "alerts": len(history.alerts),
            "statistics_v2": {f.feature: [f.test, f.statistic, f.error] for f in week.features}}


def from_rows(rows: int, days: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from workbench.monitor import DriftDetector, DriftSettings, evaluate_performance
    from workbench.predlog import LogFolderSource, log_rows, read_feedback
    from workbench.profile import ReferenceProfile

    folder = data_dir(rows, days)
    profile = ReferenceProfile.load(folder / "profile")
    started = time.perf_counter()
    source = LogFolderSource(folder / "log")
    frames, since = [], 0
    while True:
        page = source.fetch(since, 200)
        if not len(page):
            break
        frame = log_rows(page.records).frame
        frame["row"] = frame.groupby("seq", sort=False).cumcount()
        frames.append(frame)
        since = page.next_since
    data = pd.concat(frames, ignore_index=True)
    read = time.perf_counter()
    detector = DriftDetector(DriftSettings(multivariate=False)).fit(profile)
    week = {v: detector.score(group, multivariate=False) for v, group in data.groupby("model_version")}
    hours = np.floor(data["ts"].to_numpy() / 3600)
    hourly = [detector.score(group, multivariate=False) for _, group in data.groupby([hours, data["model_version"]])]
    feedback = read_feedback(folder / "log", limit=10**8).records
    labels = feedback[["prediction_seq", "row", "truth"]].set_axis(["seq", "row", "label"], axis=1)
    labelled = data.merge(labels, on=["seq", "row"], how="inner")
    performance = {v: evaluate_performance(g).windows[0].metrics for v, g in labelled.groupby("model_version")}
    hourly_performance = evaluate_performance(labelled, window="1h")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "read_seconds": read - started, "rows": len(data), "peak_mb": peak_mb(),
            "periods": len(hourly), "hourly_performance": len(hourly_performance.windows),
            "drifted_v2": week["2"].drifted_features, "accuracy_v1": performance["1"]["accuracy"],
            "accuracy_v2": performance["2"]["accuracy"],
            "statistics_v2": {f.feature: [f.test, f.statistic] for f in week["2"].features}}


def evidently(rows: int, days: int, sample: int) -> dict[str, Any]:
    """Evidently's DataDriftPreset on ``sample`` rows of the log against the reference rows."""
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    folder = data_dir(rows, days)
    current = pd.read_parquet(folder / f"evidently-{sample}.parquet")
    reference = _frame(np.random.default_rng(0), 100_000, np.zeros(100_000, dtype=bool))
    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    result = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                             Dataset.from_pandas(reference, data_definition=definition)).dict()
    seconds = time.perf_counter() - started
    drifted = []
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            value, threshold = metric["value"], config["threshold"]
            if (value < threshold) if "p_value" in config["method"] else (value >= threshold):
                drifted.append(config["column"])
    return {"seconds": seconds, "rows": len(current), "peak_mb": peak_mb(), "drifted": drifted}


def evidently_sample(rows: int, days: int, sample: int) -> dict[str, Any]:
    """The rows Evidently gets: every (rows/sample)-th request of the log, as Parquet."""
    import pandas as pd

    from workbench.predlog import LogFolderSource, log_rows

    folder = data_dir(rows, days)
    target = folder / f"evidently-{sample}.parquet"
    if not target.exists():
        source = LogFolderSource(folder / "log")
        step = max(1, rows // sample)
        frames = [log_rows(source.fetch(seq - 1, 1).records).frame for seq in range(1, rows // REQUEST + 1, step)]
        pd.concat(frames, ignore_index=True)[NUMERIC + CATEGORICAL].to_parquet(target, index=False)
    return {"rows": len(pd.read_parquet(target))}


WORKERS = {"prepare": prepare, "summarise": summarise, "summaries": from_summaries, "rows": from_rows,
           "evidently": evidently, "evidently-sample": evidently_sample}


def spawn(python: str, worker: str, *args: int) -> dict[str, Any]:
    done = subprocess.run([python, __file__, "--worker", worker, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{worker} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--evidently-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--worker", default=None)
    parser.add_argument("args", nargs="*", type=int)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](*args.args), default=str))
        return

    from _common import RESULTS, side_env

    results: dict[str, Any] = {"rows": args.rows, "days": args.days}
    for step in ("prepare", "summarise", "summaries", "rows"):
        print(f"{step}...", flush=True)
        results[step] = spawn(sys.executable, step, args.rows, args.days)
        print(json.dumps({k: v for k, v in results[step].items() if k != "statistics_v2"}), flush=True)
    if not args.skip_evidently:
        spawn(sys.executable, "evidently-sample", args.rows, args.days, args.evidently_rows)
        python = str(side_env("evidently", ["evidently==0.7.23", "pandas<3"]) / "bin" / "python")
        print("evidently...", flush=True)
        results["evidently"] = spawn(python, "evidently", args.rows, args.days, args.evidently_rows)
        print(json.dumps(results["evidently"]), flush=True)
    summaries, rows = results["summaries"], results["rows"]
    print(f"\n| path | rows | seconds | peak MB |\n|---|---|---|---|\n"
          f"| report from merged summaries | {summaries['rows']:,} | {summaries['seconds']:.2f} | {summaries['peak_mb']:.0f} |\n"
          f"| report recomputed from rows | {rows['rows']:,} | {rows['seconds']:.1f} (read {rows['read_seconds']:.1f}) "
          f"| {rows['peak_mb']:.0f} |")
    if "evidently" in results:
        e = results["evidently"]
        print(f"| Evidently DataDriftPreset | {e['rows']:,} | {e['seconds']:.1f} | {e['peak_mb']:.0f} |")
    same = summaries["drifted_v2"] == rows["drifted_v2"]
    print(f"\nsame drifted features (v2, the week): {same} {summaries['drifted_v2']}; accuracy v1 "
          f"{summaries['accuracy_v1']:.6f} vs {rows['accuracy_v1']:.6f}, v2 {summaries['accuracy_v2']:.6f} vs "
          f"{rows['accuracy_v2']:.6f}")
    for feature, (test, statistic, error) in summaries["statistics_v2"].items():
        raw = rows["statistics_v2"][feature][1]
        print(f"  {feature}: {test} summaries {statistic:.6f} rows {raw:.6f} (|diff| {abs(statistic - raw):.2g}, "
              f"stated bound {error:.2g})")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"history-{args.rows}.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
