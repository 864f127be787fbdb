"""Small helpers the test modules share (importable as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

WORKBENCH = str(Path(sys.executable).parent / "workbench")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM) in MB, as the kernel counts it (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status: peak memory is read on Linux only")


def start_review(log_path: Path, *args: str, env: dict[str, str] | None = None,
                 verify: Any = True) -> tuple[subprocess.Popen, str]:
    """``workbench review`` on a free port, with the session's workspace; its base URL once it answers
    (``https://`` when ``args`` give a certificate; ``verify`` is how httpx checks it)."""
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process by the caller's finally
    proc = subprocess.Popen([WORKBENCH, "review", "--no-browser", "--port", str(port), *args],
                            env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    scheme = "https" if "--certfile" in args else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/review", timeout=5, follow_redirects=False,
                         verify=verify).status_code in (200, 302):
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("workbench review did not start:\n" + log_path.read_text())
        time.sleep(0.3)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still there after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


#: The fair data's occupation codes, as the levels of the real table's ``occupation`` category.
OCCUPATIONS = {1.0: "student", 2.0: "farmer", 3.0: "white-collar", 4.0: "teacher", 5.0: "professional",
               6.0: "manager"}

#: Columns of :func:`real_table` that tree libraries take as they are (no strings, no datetimes).
TREE_COLUMNS = ["rate marriage", "age", "marriage share", "children", "religious", "educ", "has kids",
                "churchgoer", "occupation", "naïve score"]


def real_table(n_rows: int = 1500):
    """A real table with every value kind users bring, from data that ships inside statsmodels.

    Rows of the *fair* survey (every 4th, so both classes appear), with columns of each kind:
    float64 with full precision and with few distinct values, NaN in floats, nullable ``Int64``
    and ``boolean`` with gaps, int64, bool, a ``category``, object strings with NaN gaps, a
    500-level ``string`` column with gaps, datetimes in ns and us and time-zone aware, and column
    names with spaces and non-ASCII letters. Returns ``(features, affairs, cheated)``: a regression
    target and a 0/1 classification target.
    """
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm

    fair = sm.datasets.fair.load_pandas().data.iloc[::4].head(n_rows).reset_index(drop=True)
    i = np.arange(len(fair))
    last_visit = (pd.Timestamp("2019-01-01") + pd.to_timedelta(i * 37, unit="h")
                  + pd.to_timedelta(i, unit="us")).as_unit("us")
    married_on = (pd.Timestamp("2020-06-30 12:00:00.123456789")
                  - pd.to_timedelta(fair["yrs_married"] * 365.25, unit="D") + pd.to_timedelta(i, unit="ns"))
    table = pd.DataFrame({
        "rate marriage": fair["rate_marriage"],
        "age": fair["age"],
        "marriage share": fair["yrs_married"] / fair["age"],
        "children": fair["children"].where(i % 11 != 0),
        "religious": pd.array(fair["religious"].astype(int), dtype="Int64"),
        "educ": fair["educ"].astype(np.int64),
        "has kids": fair["children"] > 0,
        "churchgoer": pd.array(fair["religious"] >= 3, dtype="boolean"),
        "occupation": pd.Categorical(fair["occupation"].map(OCCUPATIONS), categories=list(OCCUPATIONS.values())),
        "husband job": fair["occupation_husb"].map(OCCUPATIONS).astype(object).where(i % 19 != 0, np.nan),
        "city": pd.array([f"city {(k * 7919) % 500:03d}" for k in i], dtype="string"),
        "married on": married_on.dt.as_unit("ns"),
        "last visit": last_visit,
        "visit local": last_visit.tz_localize("UTC").tz_convert("Europe/Paris"),
        "naïve score": fair["educ"] * 1.1 + fair["age"] / 7,
    })
    table["religious"] = table["religious"].mask(i % 13 == 0)
    table["churchgoer"] = table["churchgoer"].mask(i % 17 == 0)
    table["city"] = table["city"].mask(i % 23 == 0)
    return table, fair["affairs"].rename("affairs"), (fair["affairs"] > 0).astype(np.int64).rename("cheated")


#: Columns of :func:`real_table` that are text (strings, objects with gaps, a category) and datetimes.
TEXT_COLUMNS = ["occupation", "husband job", "city"]
DATE_COLUMNS = ["married on", "last visit", "visit local"]


def real_table_pipeline():
    """An unfitted scikit-learn Pipeline that takes every column of :func:`real_table`: numbers
    imputed, text one-hot encoded with its gaps as a level, datetimes dropped."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = [c for c in TREE_COLUMNS if c not in TEXT_COLUMNS]
    text = make_pipeline(SimpleImputer(strategy="constant", fill_value="(none)", missing_values=pd.NA),
                         OneHotEncoder(handle_unknown="ignore"))
    prepare = ColumnTransformer([
        ("numbers", SimpleImputer(strategy="median"), numeric),
        ("text", text, TEXT_COLUMNS),
        ("dates", "drop", DATE_COLUMNS),
    ])
    return make_pipeline(prepare, LogisticRegression(max_iter=2000))


# Where a page may fetch from without leaving the machine.
LOCAL_PREFIXES = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:", "about:")


#: The viewport of every browser test and screenshot (the size a demo is judged at).
VIEWPORT = {"width": 1500, "height": 950}


class Watched:
    """A page whose console errors and warnings and off-machine requests are collected while it is used.

    Every browser test of the review app and the Lab wraps its page in one and ends with
    :meth:`assert_clean`: a page that logs a warning (Bokeh's "could not set initial ranges", a
    deprecation) or an error fails its test.
    """

    def __init__(self, page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.console_warnings: list[str] = []
        self.external: list[str] = []
        self.failed: list[str] = []
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"{page.url}: {exc}\n{exc.stack}"))
        page.on("request", lambda r: None if r.url.startswith(LOCAL_PREFIXES) else self.external.append(r.url))
        page.set_viewport_size(VIEWPORT)

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(f"{self.page.url}: {message.text}")
        elif message.type in ("warning", "warn"):
            self.console_warnings.append(f"{self.page.url}: {message.text}")

    def assert_clean(self, *, warnings: bool = True) -> None:
        """No request left the machine, and the console shows no error (nor, with ``warnings``, a warning)."""
        assert self.external == [], f"requests that left the machine: {self.external}"
        assert self.console_errors == [], f"console errors: {self.console_errors}; failed requests: {self.failed}"
        if warnings:
            assert self.console_warnings == [], f"console warnings: {self.console_warnings[:20]}"
