"""ExperimentBrowser benchmark: 10,000 runs in the widget, side by side with what a user would do instead.

A throwaway workspace (a temporary folder, embedded SQLite store) gets one experiment of N runs
(default 10,000), each with 3 params and 3 metrics, written with MLflow's client (``create_run``,
``log_batch``, ``set_terminated``); the time this takes is reported but not compared. Then, in one
warm process (one untimed warm-up of each side first), over 3 repeats in alternating order, medians:

- **ExperimentBrowser**: seconds from constructing ``ExperimentBrowser(experiment=...)`` to the first
  page of runs in its table (``loaded`` > 0) and to every run loaded (``wait()``); the same after
  setting ``filter_string`` and after clearing it again (the whole experiment reloaded).
- **workbench.runs**: the core call the widget pages through, all runs as one DataFrame.
- **mlflow.search_runs(experiment_names=[...])**: the notebook way, all runs as one DataFrame.
- **MLflow's UI endpoint** (``mlflow server`` on the same store): ``POST /ajax-api/2.0/mlflow/runs/search``
  for the first 100 runs (what the MLflow UI asks for first) and for all runs, 100 a page.

Responsiveness, for the widget:

- *caller blocked*: how long the constructor (or the ``filter_string`` assignment) holds the notebook
  cell; a ``search_runs`` call holds it for its whole duration.
- *longest UI block*: the longest single callback the loader hands to the page (``_append`` for each
  page, ``_loaded`` at the end). On a served page these run on the Bokeh event loop, so this is the
  longest the page stops answering. Here (no server) they run on the loader's thread and are timed there.
  *UI total* adds them up: the widget's own work, apart from MLflow's.
- *worst tick late*: a thread that sleeps 5 ms in a loop measures how late it wakes while the load runs
  (GIL contention: what a notebook kernel's other threads feel); *longest GC* is the longest garbage
  collection meanwhile (a full collection stops every thread, the event loop's included).

The widget is also opened with ``page_size=100`` (the MLflow UI's page size) to show what a smaller
first page buys. Last (it changes the process for good), the widget's open and ``mlflow.search_runs``
run again after ``gc.freeze()``: the start-up heap (Panel, Bokeh, MLflow, pandas: about 440,000
objects) out of the collector's reach, as ``workbench serve`` does.

Run: nice -n 10 .venv/bin/python benchmarks/widgets/run.py [--runs 10000] [--repeats 3] [--no-mlflow-ui]
     [--no-freeze]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import env_with_venv_path, free_port, save, table, wait_for  # noqa: E402

EXPERIMENT = "browser-benchmark"
N_PARAMS, N_METRICS = 3, 3
#: About half the runs match (the metric is uniform on [0, 1)).
FILTER = "metrics.m0 > 0.5"
#: What the MLflow UI asks for per request when it lists runs.
UI_PAGE = 100
TIMEOUT = 900.0
NA = float("nan")  # a figure that does not apply to a case


# -- the workspace ---------------------------------------------------------------------------------


def make_runs(n: int) -> dict[str, Any]:
    """Create the experiment with ``n`` finished runs; returns its id and the time it took."""
    from mlflow.entities import Metric, Param

    import workbench as wb
    from workbench import _mlflow

    experiment = wb.get_experiment(EXPERIMENT, create=True)
    client = _mlflow.client()
    rng = random.Random(0)
    base = int(time.time() * 1000) - n * 1000
    start = time.perf_counter()
    for i in range(n):
        started = base + i * 1000  # distinct start times: a stable newest-first order
        run = client.create_run(experiment.experiment_id, start_time=started, run_name=f"trial-{i:05d}",
                                tags={"mlflow.user": "bench"})
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"m{k}", rng.random(), started, 0) for k in range(N_METRICS)],
            params=[Param(f"p{k}", str(rng.randrange(2 + 3 * k))) for k in range(N_PARAMS)],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=started + 500)
        if (i + 1) % 2000 == 0:
            print(f"  {i + 1:,} runs created", flush=True)
    seconds = time.perf_counter() - start
    return {"experiment_id": experiment.experiment_id, "seconds": seconds, "ms_per_run": seconds / n * 1000}


# -- measuring tools -------------------------------------------------------------------------------


def figures(rows: int, first_s: float, all_s: float, *, blocked_s: float = NA, ui_block_ms: float = NA,
            ui_total_s: float = NA, tick_late_ms: float = NA, gc_ms: float = NA) -> dict[str, float]:
    """One case's figures in one repeat (the keys of the results JSON)."""
    return {"first_s": first_s, "all_s": all_s, "blocked_s": blocked_s, "ui_block_ms": ui_block_ms,
            "ui_total_s": ui_total_s, "tick_late_ms": tick_late_ms, "gc_ms": gc_ms, "rows": float(rows)}


class Ticker:
    """A thread that sleeps ``interval`` seconds in a loop and records how late it wakes up; also the
    longest garbage collection meanwhile (a full collection holds the GIL, stopping every thread)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0
        self.worst_gc = 0.0
        self._gc_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.worst_gc = max(self.worst_gc, time.perf_counter() - self._gc_start)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(self.interval)
            self.worst = max(self.worst, time.perf_counter() - start - self.interval)

    def __enter__(self) -> Ticker:
        gc.callbacks.append(self._on_gc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        gc.callbacks.remove(self._on_gc)


def browser_class() -> type:
    """ExperimentBrowser with its page callbacks timed (behaviour unchanged)."""
    from workbench.widgets import ExperimentBrowser

    class TimedBrowser(ExperimentBrowser):
        """Records (end time, seconds, runs shown) for every callback the loader hands to the page."""

        def __init__(self, **params: Any) -> None:
            self.trace: list[tuple[float, float, int]] = []  # before super(): loading starts in __init__
            super().__init__(**params)

        def _append(self, page: Any) -> None:
            start = time.perf_counter()
            super()._append(page)
            end = time.perf_counter()
            self.trace.append((end, end - start, self.loaded))

        def _loaded(self, total: int) -> None:
            start = time.perf_counter()
            super()._loaded(total)
            end = time.perf_counter()
            self.trace.append((end, end - start, self.loaded))

    return TimedBrowser


def _widget_figures(browser: Any, start: float, blocked: float, end: float, ticker: Ticker) -> dict[str, float]:
    first = next((t for t, _, shown in browser.trace if shown > 0), NA)
    return figures(browser.loaded, first - start, end - start, blocked_s=blocked,
                   ui_block_ms=max(d for _, d, _ in browser.trace) * 1000,
                   ui_total_s=sum(d for _, d, _ in browser.trace),
                   tick_late_ms=ticker.worst * 1000, gc_ms=ticker.worst_gc * 1000)


def _open(cls: type, page_size: int | None) -> tuple[Any, dict[str, float]]:
    extra = {"page_size": page_size} if page_size else {}
    with Ticker() as ticker:
        start = time.perf_counter()
        browser = cls(experiment=EXPERIMENT, **extra)
        blocked = time.perf_counter() - start
        if not browser.wait(TIMEOUT):
            raise TimeoutError("the browser did not finish loading")
        return browser, _widget_figures(browser, start, blocked, time.perf_counter(), ticker)


def measure_widget(cls: type, page_size: int | None) -> dict[str, dict[str, float]]:
    """Open the browser on the experiment, re-filter it, clear the filter; figures for each step.
    Also opened with ``page_size=100`` (the MLflow UI's page), for the first rows sooner."""
    out: dict[str, dict[str, float]] = {}
    browser, out["open"] = _open(cls, page_size)
    for step, value in (("filter", FILTER), ("clear", "")):
        browser.trace.clear()
        with Ticker() as ticker:
            start = time.perf_counter()
            browser.filter_string = value
            blocked = time.perf_counter() - start
            if not browser.wait(TIMEOUT):
                raise TimeoutError(f"the browser did not finish loading after filter {value!r}")
            out[step] = _widget_figures(browser, start, blocked, time.perf_counter(), ticker)
    del browser
    _, out["open_small"] = _open(cls, UI_PAGE)
    return out


def measure_frames() -> dict[str, dict[str, float]]:
    """All runs as one DataFrame: workbench.runs and mlflow.search_runs (and the latter filtered)."""
    import mlflow

    import workbench as wb

    calls = {
        "wb_runs": lambda: wb.runs(EXPERIMENT),
        "search_runs": lambda: mlflow.search_runs(experiment_names=[EXPERIMENT]),
        "search_runs_filter": lambda: mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string=FILTER),
    }
    out = {}
    for name, call in calls.items():
        with Ticker() as ticker:
            start = time.perf_counter()
            frame = call()
            seconds = time.perf_counter() - start
        # Nothing shows before the whole frame is there, and the cell is busy all along.
        out[name] = figures(len(frame), seconds, seconds, blocked_s=seconds, tick_late_ms=ticker.worst * 1000,
                            gc_ms=ticker.worst_gc * 1000)
    return out


def measure_frozen(cls: type, page_size: int | None) -> dict[str, dict[str, float]]:
    """The widget's open and mlflow.search_runs once more, with the start-up heap out of the collector's
    reach (``gc.freeze()``, as ``workbench serve`` does); call only after everything else."""
    import mlflow

    gc.collect()
    gc.freeze()
    out: dict[str, dict[str, float]] = {}
    browser, out["open_frozen"] = _open(cls, page_size)
    del browser
    with Ticker() as ticker:
        start = time.perf_counter()
        frame = mlflow.search_runs(experiment_names=[EXPERIMENT])
        seconds = time.perf_counter() - start
    out["search_runs_frozen"] = figures(len(frame), seconds, seconds, blocked_s=seconds,
                                        tick_late_ms=ticker.worst * 1000, gc_ms=ticker.worst_gc * 1000)
    return out


def measure_ui(url: str, experiment_id: str) -> dict[str, dict[str, float]]:
    """MLflow's UI search endpoint: the first 100 runs, and all of them 100 a page (parsed JSON)."""
    import httpx

    out = {}
    with httpx.Client(base_url=url, timeout=300) as http:
        for name, filter_string in (("ui", ""), ("ui_filter", FILTER)):
            body: dict[str, Any] = {"experiment_ids": [experiment_id], "filter": filter_string,
                                    "run_view_type": "ACTIVE_ONLY", "max_results": UI_PAGE,
                                    "order_by": ["attributes.start_time DESC"]}
            start = time.perf_counter()
            first, rows = NA, 0
            while True:
                response = http.post("/ajax-api/2.0/mlflow/runs/search", json=body)
                response.raise_for_status()
                answer = response.json()
                rows += len(answer.get("runs", []))
                if first != first:  # still NaN: this was the first page
                    first = time.perf_counter() - start
                token = answer.get("next_page_token")
                if not token:
                    break
                body["page_token"] = token
            seconds = time.perf_counter() - start
            out[name] = figures(rows, first, seconds)
    return out


def start_mlflow_server(work: Path) -> tuple[subprocess.Popen[Any], str, float]:
    """``mlflow server`` on the workspace's store; returns the process, its URL and its start-up time."""
    import workbench as wb

    settings = wb.get_settings()
    port = free_port()
    log = open(work / "mlflow-server.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", settings.store_uri,
         "--default-artifact-root", settings.artifact_root.as_uri(), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env_with_venv_path(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        startup = wait_for(f"{url}/health", timeout=180, proc=proc)
    except Exception:
        stop_server(proc)
        raise RuntimeError(f"mlflow server did not start:\n{(work / 'mlflow-server.log').read_text()[-3000:]}")
    return proc, url, startup


def stop_server(proc: subprocess.Popen[Any]) -> None:
    """Stop the server and the workers it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def shown(value: float) -> float | None:
    """``None`` for a figure that does not apply (NaN), else the figure."""
    return None if value != value else value


def browser_page_size() -> int:
    """The widget's default ``page_size``."""
    from workbench.widgets import ExperimentBrowser

    return int(ExperimentBrowser.param.page_size.default)


# -- orchestration ---------------------------------------------------------------------------------

LABELS = {
    "open": "ExperimentBrowser: open",
    "filter": f"ExperimentBrowser: filter_string = {FILTER!r}",
    "clear": "ExperimentBrowser: clear the filter (reload all)",
    "open_small": f"ExperimentBrowser(page_size={UI_PAGE}): open",
    "wb_runs": "workbench.runs (all, one DataFrame)",
    "search_runs": "mlflow.search_runs (all, one DataFrame)",
    "search_runs_filter": f"mlflow.search_runs, filter {FILTER!r}",
    "ui": f"MLflow UI endpoint, {UI_PAGE} a page",
    "ui_filter": f"MLflow UI endpoint, filter {FILTER!r}",
    "open_frozen": "ExperimentBrowser: open, after gc.freeze()",
    "search_runs_frozen": "mlflow.search_runs (all), after gc.freeze()",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=None,
                        help="ExperimentBrowser.page_size (default: the widget's own default)")
    parser.add_argument("--no-mlflow-ui", action="store_true", help="skip MLflow's UI search endpoint")
    parser.add_argument("--no-freeze", action="store_true", help="skip the last phase, after gc.freeze()")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="wb-bench-widgets-") as tmp:
        work = Path(tmp)
        os.environ["WORKBENCH_HOME"] = str(work / "workspace")
        import mlflow
        import panel

        import workbench as wb

        wb.configure()
        print(f"creating {args.runs:,} runs ({N_PARAMS} params, {N_METRICS} metrics each) ...", flush=True)
        created = make_runs(args.runs)
        print(f"  {created['seconds']:.1f} s ({created['ms_per_run']:.1f} ms a run)", flush=True)
        cls = browser_class()

        server = None
        if not args.no_mlflow_ui:
            server, url, startup = start_mlflow_server(work)
            print(f"mlflow server ready in {startup:.1f} s", flush=True)
        try:
            sides = [lambda: measure_widget(cls, args.page_size), measure_frames]
            if server is not None:
                sides.append(lambda: measure_ui(url, created["experiment_id"]))
            print("warming up ...", flush=True)
            for side in sides:
                side()
            repeats: list[dict[str, dict[str, float]]] = []
            for repeat in range(args.repeats):
                found: dict[str, dict[str, float]] = {}
                for side in sides if repeat % 2 == 0 else list(reversed(sides)):
                    found.update(side())
                repeats.append(found)
                print(f"  repeat {repeat + 1}: browser first page {found['open']['first_s']:.2f} s, "
                      f"all {found['open']['all_s']:.2f} s; search_runs {found['search_runs']['all_s']:.2f} s",
                      flush=True)
            if not args.no_freeze:
                print("again after gc.freeze() ...", flush=True)
                for found in repeats:
                    found.update(measure_frozen(cls, args.page_size))
        finally:
            if server is not None:
                stop_server(server)

    medians = {name: {k: statistics.median(r[name][k] for r in repeats) for k in repeats[0][name]}
               for name in repeats[0]}
    for name, median in medians.items():
        # Every side must have seen the same runs: all of them, or the same filtered ones.
        expected = medians["search_runs_filter"]["rows"] if name in ("filter", "search_runs_filter", "ui_filter") \
            else args.runs
        if median["rows"] != expected:
            raise RuntimeError(f"{LABELS[name]} returned {median['rows']:.0f} runs, expected {expected:.0f}")

    rows = [{"case": LABELS[name], "runs": f"{int(f['rows']):,}", "first rows s": f["first_s"], "all s": f["all_s"],
             "caller blocked s": shown(f["blocked_s"]), "longest UI block ms": shown(f["ui_block_ms"]),
             "UI total s": shown(f["ui_total_s"]), "worst tick late ms": shown(f["tick_late_ms"]),
             "longest GC ms": shown(f["gc_ms"])}
            for name, f in sorted(medians.items(), key=lambda item: list(LABELS).index(item[0]))]
    ours, full = medians["open"], medians["search_runs"]
    ratios = {
        "browser first page / mlflow.search_runs all": ours["first_s"] / full["all_s"],
        "browser all loaded / mlflow.search_runs all": ours["all_s"] / full["all_s"],
        "browser all loaded / workbench.runs": ours["all_s"] / medians["wb_runs"]["all_s"],
        "browser re-filter all / mlflow.search_runs filtered":
            medians["filter"]["all_s"] / medians["search_runs_filter"]["all_s"],
        "browser caller blocked / mlflow.search_runs all": ours["blocked_s"] / full["all_s"],
    }
    if "ui" in medians:
        ratios["browser first page / MLflow UI first 100"] = ours["first_s"] / medians["ui"]["first_s"]
        ratios[f"browser (page_size={UI_PAGE}) first page / MLflow UI first 100"] = (
            medians["open_small"]["first_s"] / medians["ui"]["first_s"])
        ratios["browser all loaded / MLflow UI all pages"] = ours["all_s"] / medians["ui"]["all_s"]
    if "open_frozen" in medians:
        ratios["browser all loaded, after / before gc.freeze()"] = medians["open_frozen"]["all_s"] / ours["all_s"]
        ratios["longest GC while loading, after / before gc.freeze()"] = medians["open_frozen"]["gc_ms"] / ours["gc_ms"]

    print(f"\nExperimentBrowser with {args.runs:,} runs ({N_PARAMS} params, {N_METRICS} metrics each); "
          f"medians of {args.repeats}; creating them took {created['seconds']:.0f} s")
    print(table(rows, list(rows[0])))
    print()
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    path = save("widgets", {
        "runs": args.runs, "params_per_run": N_PARAMS, "metrics_per_run": N_METRICS, "filter": FILTER,
        "page_size": args.page_size or browser_page_size(), "repeats": args.repeats,
        "load_average_before": load_before, "create": {k: v for k, v in created.items() if k != "experiment_id"},
        "versions": {"mlflow": mlflow.__version__, "panel": panel.__version__},
        "medians": {name: {k: shown(v) for k, v in f.items()} for name, f in medians.items()},
        "ratios": ratios,
        "raw": [{name: {k: shown(v) for k, v in f.items()} for name, f in found.items()} for found in repeats],
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
