"""Drift benchmark: the workbench's drift detection side by side with Evidently's DataDriftPreset.

Same data for both (written once as Parquet): 20 numeric + 5 categorical features (10 levels),
reference and current of 10k, 100k and 1M rows, the current shifted by 0.3 sd on the first 5 numeric
columns. Each side runs in its own fresh process, one size at a time, and reports:

- seconds to compute the drift result from data already in memory (loading is timed apart),
- peak resident memory of the whole process (``ru_maxrss``: imports, data and computation),
- the columns it flags.

The workbench side reads the reference *profile* (precomputed once, as ``log_model`` stores it with a
model) and the current data; Evidently reads both data sets. Evidently 0.7.23 does not import with
pandas 3, so it runs from its own virtual environment (benchmarks/.envs/evidently, made on first run).

Also measured: one incremental update of a live monitor (:class:`workbench.monitor.LiveMonitor`) with
10k new rows, given directly and pulled from a prediction-log folder.

Run: .venv/bin/python benchmarks/drift/run.py [--sizes 10000,100000,1000000] [--reuse-evidently]
The 1M-row Evidently run takes about 3 minutes and 2 GB: ``--reuse-evidently`` keeps earlier
Evidently figures from benchmarks/results/drift.json instead of running it again.

The pain scale (``--pain wide,long [--reuse-evidently] [--evidently-rows wide=500000]``): ``wide`` is
1M rows x 300 columns (200 numeric, 100 categorical with 10 to 1,000 levels, 5 % missing; 20 numeric
and 10 categorical columns shifted), ``long`` 10M rows x 100 columns (70 + 30; 7 + 3 shifted). Both
sides start from the two Parquet files (generated a row group at a time); each tool is one whole
process, timed from its start to its exit, with the CPU seconds the kernel charged it (the machine is
shared) and the load average. The workbench runs ``detect_drift(Path(ref), Path(cur))``: the reference
is profiled from its file in the same process. Evidently runs under an address-space cap of 15 GiB
(``prlimit --as``) so it cannot take the machine down; where it fails, the step is recorded, and it is
also run on the first ``--evidently-rows`` rows, the size it completes, for the ratio. Results in
benchmarks/results/drift-pain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

N_NUMERIC, N_CATEGORICAL, N_LEVELS, N_SHIFTED, SHIFT = 20, 5, 10, 5, 0.3
NUMERIC = [f"num_{i:02d}" for i in range(N_NUMERIC)]
CATEGORICAL = [f"cat_{i}" for i in range(N_CATEGORICAL)]
SHIFTED = NUMERIC[:N_SHIFTED]
EVIDENTLY = ["evidently==0.7.23", "pandas<3"]


def data_dir(rows: int) -> Path:
    return BENCH / "results" / "drift-data" / str(rows)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# -- workers (each runs in its own process) -------------------------------------------------------


def worker_prepare(rows: int) -> dict[str, Any]:
    """Write reference.parquet, current.parquet and the reference profile (once per size)."""
    import numpy as np
    import pandas as pd

    from workbench.profile import ReferenceProfile

    folder = data_dir(rows)
    if (folder / "profile" / "profile.json").exists():
        return {"prepared": False}
    folder.mkdir(parents=True, exist_ok=True)
    levels = np.array([f"level_{k}" for k in range(N_LEVELS)])
    for name, seed, shift in (("reference", 1, 0.0), ("current", 2, SHIFT)):
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame({c: rng.normal(5.0 * i, 1.0 + i / 10, rows) for i, c in enumerate(NUMERIC)})
        for i, c in enumerate(SHIFTED):
            frame[c] += shift * (1.0 + i / 10)  # 0.3 of that column's sd
        for c in CATEGORICAL:
            frame[c] = levels[rng.integers(0, N_LEVELS, rows)]
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    start = time.perf_counter()
    profile = ReferenceProfile.from_data(pd.read_parquet(folder / "reference.parquet"))
    seconds = time.perf_counter() - start
    profile.save(folder / "profile")
    return {"prepared": True, "profile_seconds": seconds}


def worker_workbench(rows: int, multivariate: bool) -> dict[str, Any]:
    start = time.perf_counter()
    import pandas as pd

    from workbench.monitor import detect_drift
    from workbench.profile import ReferenceProfile

    folder = data_dir(rows)
    profile = ReferenceProfile.load(folder / "profile")
    current = pd.read_parquet(folder / "current.parquet")
    loaded = time.perf_counter()
    report = detect_drift(profile, current, multivariate=multivariate)
    done = time.perf_counter()
    return {
        "seconds": done - loaded,
        "load_seconds": loaded - start,
        "peak_mb": peak_mb(),
        "drifted": report.drifted_features,
        "tests": sorted({f.test for f in report.features if f.test}),
        "dataset_drifted": report.drifted,
        "multivariate_auc": report.multivariate.statistic if report.multivariate else None,
    }


def worker_evidently(rows: int) -> dict[str, Any]:
    start = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    folder = data_dir(rows)
    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(folder / "current.parquet")
    loaded = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    result = snapshot.dict()
    done = time.perf_counter()
    drifted, tests, dataset_drifted = _evidently_flags(result, NUMERIC + CATEGORICAL)
    return {
        "seconds": done - loaded,
        "load_seconds": loaded - start,
        "peak_mb": peak_mb(),
        "drifted": drifted,
        "tests": tests,
        "dataset_drifted": dataset_drifted,
    }


def _evidently_flags(result: dict[str, Any], order: list[str]) -> tuple[list[str], list[str], bool]:
    """The columns an Evidently snapshot flags (in ``order``), the tests it used, and its dataset verdict."""
    drifted, tests = [], set()
    for metric in result["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        tests.add(method)
        is_p_value = "p_value" in method
        if (value < threshold) if is_p_value else (value >= threshold):
            drifted.append(config["column"])
    share = next(m["value"]["share"] for m in result["metrics"] if "DriftedColumnsCount" in m["metric_name"])
    return sorted(drifted, key=order.index), sorted(tests), share >= 0.5


def worker_live(rows: int) -> dict[str, Any]:
    """Live monitor: updates with 10k new rows, given directly and pulled from a log folder."""
    import tempfile

    import numpy as np
    import pandas as pd

    from workbench.monitor import LiveMonitor
    from workbench.profile import ReferenceProfile
    from workbench.predlog import LogFolderSource, LogRecord, PredictionLog

    folder = data_dir(rows)
    profile = ReferenceProfile.load(folder / "profile")
    current = pd.read_parquet(folder / "current.parquet")
    batch = 10_000
    out: dict[str, Any] = {"rows_per_update": batch, "window": batch}

    # 1. Rows handed to the monitor (e.g. from a stream consumer): window = the last 10k rows.
    monitor = LiveMonitor(profile, window=batch, multivariate_every=0)
    monitor.update(current.iloc[:batch])
    times = []
    chunks = max(len(current) // batch, 1)
    for k in range(1, 21):
        # New rows each time (cycling through the file when it holds fewer than 21 batches).
        chunk = current.iloc[(k % chunks) * batch:(k % chunks + 1) * batch].assign(ts=time.time())
        start = time.perf_counter()
        monitor.update(chunk)
        times.append(time.perf_counter() - start)
    out["update_ms_median"] = statistics.median(times) * 1000
    out["update_ms_p90"] = sorted(times)[int(0.9 * len(times))] * 1000

    # 2. The same through a prediction log folder: 1,000 logged requests of 10 rows each.
    with tempfile.TemporaryDirectory() as tmp:
        log = PredictionLog(tmp)
        chunk = current.iloc[:batch]
        columns = list(chunk.columns)
        values = chunk.to_numpy(dtype=object)
        now = time.time()
        records = [
            LogRecord(f"req-{i}", now, "bench", "1", "invocations", 10, 1.0,
                      {"columns": columns, "data": values[i * 10:(i + 1) * 10].tolist()},
                      {"predict": [0] * 10})
            for i in range(batch // 10)
        ]
        log.append(records)
        source = LogFolderSource(tmp)
        pulled = LiveMonitor(profile, [source], window=batch, multivariate_every=0)
        start = time.perf_counter()
        new = pulled.pull()
        pull_seconds = time.perf_counter() - start
        assert len(new) == batch
        start = time.perf_counter()
        pulled.update(new)
        out["pull_ms"] = pull_seconds * 1000
        out["update_after_pull_ms"] = (time.perf_counter() - start) * 1000
        # For scale: the prediction log's own per-request row builder on the same page.
        page = source.fetch(0, batch)
        start = time.perf_counter()
        page.rows()
        out["predictionpage_rows_ms"] = (time.perf_counter() - start) * 1000
        log.close()

    # 3. One update that also runs the multivariate test.
    heavy = LiveMonitor(profile, window=batch, multivariate_every=1)
    start = time.perf_counter()
    heavy.update(current.iloc[:batch])
    out["update_with_multivariate_ms"] = (time.perf_counter() - start) * 1000
    return out



# -- the pain scale: wide (1M x 300) and long (10M x 100) tables, both sides from Parquet ------------

#: name -> (rows, numeric columns, categorical columns, shifted numeric, shifted categorical)
PAIN = {"wide": (1_000_000, 200, 100, 20, 10), "long": (10_000_000, 70, 30, 7, 3)}
PAIN_CHUNK = 250_000  # rows per generated row group: generation never holds a whole table
PAIN_MISSING = 0.05


def pain_columns(case: str) -> tuple[list[str], list[str], list[str]]:
    """Numeric and categorical column names of a pain-scale case, and the shifted ones."""
    _, n_num, n_cat, n_num_shift, n_cat_shift = PAIN[case]
    numeric = [f"n{i:03d}" for i in range(n_num)]
    categorical = [f"c{i:03d}" for i in range(n_cat)]
    return numeric, categorical, numeric[:n_num_shift] + categorical[:n_cat_shift]


def pain_dir(case: str) -> Path:
    return BENCH / "results" / "drift-data" / f"pain-{case}"


def _pain_levels(i: int, n_cat: int) -> int:
    """10 to 1,000 levels, spread geometrically over the categorical columns."""
    return int(round(10 * 100 ** (i / max(n_cat - 1, 1))))


def worker_prepare_pain(case: str) -> dict[str, Any]:
    """Write reference.parquet and current.parquet of a pain-scale case, a row group at a time.

    Numeric columns: normal, log-normal or uniform, 5 % missing; the shifted ones move by 0.3 of
    their sd in the current. Categorical columns (pandas categories, so both tools hold them as codes
    and not as a million Python strings): 10 to 1,000 levels with Zipf-like frequencies, 5 % missing;
    in the shifted ones the current draws 40 % of its rows from the reversed frequencies.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, n_num, n_cat, n_num_shift, n_cat_shift = PAIN[case]
    numeric, categorical, _ = pain_columns(case)
    folder = pain_dir(case)
    if (folder / "current.parquet").exists():
        return {"prepared": False}
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    shape_rng = np.random.default_rng(123)
    kinds = shape_rng.integers(0, 3, n_num)
    centres = shape_rng.normal(0, 10, n_num)
    scales = shape_rng.uniform(0.5, 5, n_num)
    levels = [np.array([f"L{k:04d}" for k in range(_pain_levels(i, n_cat))]) for i in range(n_cat)]
    weights = []
    for lv in levels:
        w = 1.0 / (np.arange(len(lv)) + 1.0) ** 0.8
        weights.append(w / w.sum())
    for name, seed, shifted in (("reference", 1, False), ("current", 2, True)):
        rng = np.random.default_rng(seed)
        writer = None
        path = folder / f"{name}.parquet"
        for offset in range(0, rows, PAIN_CHUNK):
            n = min(PAIN_CHUNK, rows - offset)
            columns: dict[str, Any] = {}
            for i, col in enumerate(numeric):
                if kinds[i] == 0:
                    values = rng.normal(centres[i], scales[i], n)
                    sd = scales[i]
                elif kinds[i] == 1:
                    values = rng.lognormal(0.0, 0.5, n) * scales[i]
                    sd = scales[i] * np.sqrt((np.exp(0.25) - 1) * np.exp(0.25))
                else:
                    values = rng.uniform(centres[i], centres[i] + scales[i], n)
                    sd = scales[i] / np.sqrt(12)
                if shifted and i < n_num_shift:
                    values += 0.3 * sd
                values[rng.random(n) < PAIN_MISSING] = np.nan
                columns[col] = values
            for i, col in enumerate(categorical):
                p = weights[i]
                codes = rng.choice(len(p), n, p=p)
                if shifted and i < n_cat_shift:
                    swap = rng.random(n) < 0.4
                    codes[swap] = rng.choice(len(p), int(swap.sum()), p=p[::-1])
                codes[rng.random(n) < PAIN_MISSING] = -1
                columns[col] = pd.Categorical.from_codes(codes, categories=levels[i])
            table = pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=PAIN_CHUNK)
        assert writer is not None
        writer.close()
    return {"prepared": True, "seconds": time.perf_counter() - start,
            "bytes": {p.name: p.stat().st_size for p in folder.glob("*.parquet")}}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_rows(path: Path, limit: int | None) -> Any:
    """A Parquet file as a DataFrame, or its first ``limit`` rows (whole row groups, then cut)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if limit is None:
        return pd.read_parquet(path)
    source = pq.ParquetFile(path)
    groups, total = [], 0
    for k in range(source.num_row_groups):
        if total >= limit:
            break
        groups.append(k)
        total += source.metadata.row_group(k).num_rows
    return source.read_row_groups(groups).slice(0, limit).to_pandas()


def worker_evidently_pain(case: str, limit: int | None) -> dict[str, Any]:
    """Evidently's DataDriftPreset on a pain-scale case, both sides read from Parquet. A failure
    (e.g. out of memory under the address-space cap the orchestrator sets) is reported with the
    step where it happened instead of raised."""
    import gc

    phase = "import"
    out: dict[str, Any] = {"rows": limit or PAIN[case][0]}
    try:
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        numeric, categorical, _ = pain_columns(case)
        folder = pain_dir(case)
        phase = "read reference"
        reference = _read_rows(folder / "reference.parquet", limit)
        phase = "read current"
        current = _read_rows(folder / "current.parquet", limit)
        out["current_mb"] = float(current.memory_usage(deep=True).sum()) / 2**20
        out["load_cpu_seconds"] = _cpu_seconds()
        phase = "build datasets"
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        cur = Dataset.from_pandas(current, data_definition=definition)
        ref = Dataset.from_pandas(reference, data_definition=definition)
        phase = "Report.run"
        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        phase = "snapshot.dict"
        result = snapshot.dict()
        drifted, tests, dataset_drifted = _evidently_flags(result, numeric + categorical)
        out.update(ok=True, drifted=drifted, tests=tests, dataset_drifted=dataset_drifted)
    except MemoryError:
        gc.collect()
        out.update(ok=False, failed_at=phase, error="MemoryError")
    out.update(peak_mb=peak_mb(), cpu_seconds=_cpu_seconds())
    return out


def pain_files(case: str, limit: int | None) -> tuple[Path, Path]:
    """Reference and current Parquet files of a case, or of its first ``limit`` rows (written once,
    a row group at a time, for the sizes Evidently completes)."""
    import pyarrow.parquet as pq

    folder = pain_dir(case)
    if limit is None:
        return folder / "reference.parquet", folder / "current.parquet"
    sub = folder / f"first-{limit}"
    if not (sub / "current.parquet").exists():
        sub.mkdir(exist_ok=True)
        for name in ("reference", "current"):
            source = pq.ParquetFile(folder / f"{name}.parquet")
            with pq.ParquetWriter(sub / f"{name}.parquet", source.schema_arrow) as writer:
                left = limit
                for k in range(source.num_row_groups):
                    if left <= 0:
                        break
                    group = source.read_row_group(k).slice(0, left)
                    writer.write_table(group)
                    left -= group.num_rows
    return sub / "reference.parquet", sub / "current.parquet"


def worker_workbench_pain(case: str, limit: int | None, multivariate: bool = True) -> dict[str, Any]:
    """The workbench on a pain-scale case: ``detect_drift`` on the two Parquet files, the reference
    profiled from its file in this process (nothing precomputed)."""
    start = time.perf_counter()
    from workbench.monitor import detect_drift

    numeric, categorical, _ = pain_columns(case)
    reference, current = pain_files(case, limit)
    report = detect_drift(reference, current, multivariate=multivariate)
    return {
        "rows": report.n_current, "seconds_in_process": time.perf_counter() - start, "ok": True,
        "drifted": report.drifted_features, "tests": list(report.tests), "dataset_drifted": report.drifted,
        "multivariate_auc": report.multivariate.statistic if report.multivariate else None,
        "peak_mb": peak_mb(), "cpu_seconds": _cpu_seconds(),
    }


def worker_window_size(case: str, limit: int | None) -> dict[str, Any]:
    """The current window's in-memory size, ``DataFrame.memory_usage(deep=True)`` of what
    ``pd.read_parquet`` makes of it, summed over column groups (the same total, without holding it)."""
    from workbench.parquet import ParquetTable

    table = ParquetTable.open(pain_files(case, limit)[1])
    total = sum(float(frame.memory_usage(deep=True, index=False).sum()) for frame in table.column_groups(table.columns))
    return {"current_mb": total / 2**20, "rows": table.n_rows, "columns": len(table.columns)}


WORKERS = {"prepare": worker_prepare, "workbench": worker_workbench, "evidently": worker_evidently,
           "live": worker_live}
PAIN_WORKERS = {"prepare-pain": worker_prepare_pain, "evidently-pain": worker_evidently_pain,
                "workbench-pain": worker_workbench_pain, "window-size": worker_window_size}


# -- orchestration ---------------------------------------------------------------------------------


def spawn(python: str, worker: str, rows: int, *extra: str) -> dict[str, Any]:
    proc = subprocess.run([python, __file__, "--worker", worker, "--rows", str(rows), *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{worker} worker failed for {rows} rows:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: Evidently's address-space cap: the machine has 24 GiB and others need about 6.
EVIDENTLY_CAP = 15 * 2**30


def timed(cmd: list[str]) -> dict[str, Any]:
    """Run one worker process: its JSON answer, wall seconds from start to exit, the CPU seconds
    (user + sys) the kernel charged it, and the load average before and after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = proc.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        # Killed (e.g. by the memory cap) before it could answer.
        answer: dict[str, Any] = {"ok": False, "failed_at": "killed", "error": proc.stderr[-500:]}
    else:
        answer = json.loads(lines[-1])
    answer.update(
        wall_seconds=wall,
        process_cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        load_before=load[0], load_after=os.getloadavg()[0],
    )
    return answer


def warm(case: str, limit: int | None) -> None:
    """Read both files once, so each tool starts with them in the page cache alike."""
    for path in pain_files(case, limit):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def run_pain(cases: list[str], evidently_python: str, reuse: bool, evidently_rows: dict[str, int | None]) -> None:
    """The pain-scale cases: both sides from Parquet, whole processes timed."""
    from _common import RESULTS, save, table

    previous = json.loads((RESULTS / "drift-pain.json").read_text()) if (RESULTS / "drift-pain.json").exists() else {}
    results: dict[str, Any] = dict(previous)
    rows_out = []
    for case in cases:
        print(timed([sys.executable, __file__, "--pain-worker", "prepare-pain", "--case", case]), flush=True)
        _, _, shifted = pain_columns(case)
        limit = evidently_rows.get(case)
        entry: dict[str, Any] = dict(previous.get(case, {}))
        entry["shifted"] = shifted
        # Evidently at full size (expected to fail from memory), then at the size it completes.
        for key, rows in (("evidently_full", None), ("evidently", limit)):
            if reuse and key in entry:
                continue
            if key == "evidently" and rows is None:
                continue
            warm(case, rows)
            extra = [] if rows is None else ["--limit-rows", str(rows)]
            entry[key] = timed(["prlimit", f"--as={EVIDENTLY_CAP}", evidently_python, __file__,
                                "--pain-worker", "evidently-pain", "--case", case, *extra])
            print(key, entry[key], flush=True)
        for rows in sorted({None, limit}, key=lambda r: r or 0):
            tag = "full" if rows is None else str(rows)
            entry[f"window_{tag}"] = timed([sys.executable, __file__, "--pain-worker", "window-size", "--case", case,
                                            *([] if rows is None else ["--limit-rows", str(rows)])])
            for mv in (False, True):
                warm(case, rows)
                key = f"workbench{'_multivariate' if mv else ''}_{tag}"
                entry[key] = timed([sys.executable, __file__, "--pain-worker", "workbench-pain", "--case", case,
                                    *([] if rows is None else ["--limit-rows", str(rows)]),
                                    *(["--multivariate"] if mv else [])])
                print(key, entry[key], flush=True)
        results[case] = entry
        save("drift-pain", results)
        for rows in sorted({None, limit}, key=lambda r: r or 0):
            tag = "full" if rows is None else str(rows)
            ev = entry["evidently_full"] if rows is None else entry.get("evidently", {})
            window = entry[f"window_{tag}"]
            for name, r in (("Evidently DataDriftPreset", ev), ("workbench (per feature)", entry[f"workbench_{tag}"]),
                            ("workbench (+ multivariate)", entry[f"workbench_multivariate_{tag}"])):
                ok = r.get("ok", False)
                ev_ok = ev.get("ok", False)
                rows_out.append({
                    "case": case, "rows": f"{r.get('rows', rows or PAIN[case][0]):,}", "tool": name,
                    "wall s": r["wall_seconds"] if ok else None, "CPU s": r["process_cpu_seconds"],
                    "peak MB": r.get("peak_mb"), "window MB": window["current_mb"],
                    "x Evidently (wall)": ev["wall_seconds"] / r["wall_seconds"] if ok and ev_ok else None,
                    "x Evidently (CPU)": ev["process_cpu_seconds"] / r["process_cpu_seconds"] if ok and ev_ok else None,
                    "flags = shifted": (r["drifted"] == shifted) if ok else f"failed at {r.get('failed_at')}",
                    "load": f"{r['load_before']:.1f}-{r['load_after']:.1f}",
                })
    print(table(rows_out, list(rows_out[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--pain", default="", help="pain-scale cases to run instead: wide (1M x 300), long (10M x 100)")
    parser.add_argument("--evidently-rows", default="wide=500000",
                        help="per case, the rows Evidently is also run on when the full size fails (case=rows,...)")
    parser.add_argument("--reuse-evidently", action="store_true")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--multivariate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=sorted(PAIN), help=argparse.SUPPRESS)
    parser.add_argument("--limit-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pain-worker", choices=sorted(PAIN_WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.pain_worker:
        pain = PAIN_WORKERS[args.pain_worker]
        if args.pain_worker == "prepare-pain":
            print(json.dumps(pain(args.case)))
        elif args.pain_worker == "workbench-pain":
            print(json.dumps(worker_workbench_pain(args.case, args.limit_rows, args.multivariate)))
        else:
            print(json.dumps(pain(args.case, args.limit_rows)))
        return
    if args.worker:
        worker = WORKERS[args.worker]
        result = worker(args.rows, args.multivariate) if args.worker == "workbench" else worker(args.rows)
        print(json.dumps(result))
        return

    from _common import RESULTS, save, side_env, table

    if args.pain:
        pairs = (item.split("=") for item in args.evidently_rows.split(",") if item)
        limits: dict[str, int | None] = {case: int(rows) for case, rows in pairs}
        run_pain(args.pain.split(","), str(side_env("evidently", EVIDENTLY) / "bin" / "python"), args.reuse_evidently,
                 limits)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    previous: dict[str, Any] = {}
    if (RESULTS / "drift.json").exists():
        previous = json.loads((RESULTS / "drift.json").read_text())
    evidently_python = str(side_env("evidently", EVIDENTLY) / "bin" / "python")

    results: dict[str, Any] = {"sizes": {}, "shifted": SHIFTED}
    rows_out = []
    for rows in sizes:
        prepared = spawn(sys.executable, "prepare", rows)
        ours = spawn(sys.executable, "workbench", rows)
        ours_mv = spawn(sys.executable, "workbench", rows, "--multivariate")
        old = previous.get("sizes", {}).get(str(rows), {}).get("evidently")
        evidently = old if (args.reuse_evidently and old) else spawn(evidently_python, "evidently", rows)
        results["sizes"][str(rows)] = {"prepare": prepared, "workbench": ours, "workbench_multivariate": ours_mv,
                                       "evidently": evidently}
        for name, r in (("evidently DataDriftPreset", evidently), ("workbench (per feature)", ours),
                        ("workbench (+ multivariate)", ours_mv)):
            rows_out.append({
                "rows": f"{rows:,}", "tool": name, "seconds": r["seconds"], "load s": r["load_seconds"],
                "peak MB": r["peak_mb"],
                "speed-up": evidently["seconds"] / r["seconds"], "memory ratio": r["peak_mb"] / evidently["peak_mb"],
                "flags shifted only": r["drifted"] == SHIFTED, "flagged": ",".join(r["drifted"]),
            })
        print(table(rows_out[-3:], list(rows_out[-1])), flush=True)
    print("\nDrift: reference = current rows; current shifted by 0.3 sd on", ", ".join(SHIFTED))
    print(table(rows_out, ["rows", "tool", "seconds", "load s", "peak MB", "speed-up", "memory ratio",
                           "flags shifted only"]))

    live = spawn(sys.executable, "live", max(s for s in sizes if s >= 100_000) if any(s >= 100_000 for s in sizes)
                 else sizes[-1])
    results["live"] = live
    print("\nLive monitor, 25 features, window of 10k rows:")
    print(table([{
        "10k rows given (median ms)": live["update_ms_median"],
        "p90 ms": live["update_ms_p90"],
        "pull 10k rows from a log folder (ms)": live["pull_ms"],
        "update after pull (ms)": live["update_after_pull_ms"],
        "PredictionPage.rows() on that page (ms)": live["predictionpage_rows_ms"],
        "update with multivariate (ms)": live["update_with_multivariate_ms"],
    }], ["10k rows given (median ms)", "p90 ms", "pull 10k rows from a log folder (ms)", "update after pull (ms)",
         "PredictionPage.rows() on that page (ms)", "update with multivariate (ms)"]))
    path = save("drift", results)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
