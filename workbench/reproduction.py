"""Re-train a logged model from what was stored with it, and say whether the result is the same model.

:func:`reproduce` needs two things a model can carry: the code that trained it (``training_code/``,
captured at ``log_model`` by default) and a snapshot of its training data (``log_model(...,
snapshot_data=True)`` or ``WORKBENCH_SNAPSHOT_DATA=1``). It runs the captured script (with its
arguments) or the notebook's captured cells in a fresh Python process of the same interpreter, in the
directory the code ran in when it still exists, against a scratch workspace. The code loads its data
and trains as it did; the ``log_model`` call numbered as the one that logged the original (the
earlier ones stay in the scratch workspace) logs the new model in a new run of the original's
experiment, tagged ``workbench.reproduction_of``, and stops the process there (see
:mod:`workbench.replay`), so nothing after it (registering, deploying) runs twice.

The rows the code gave ``log_model`` are checked against the snapshot's content key: the new model is
proven to be trained on exactly the snapshot's rows, or the result says it was not. Then both models
predict the original's reference rows (its profile sample) and the answers are compared exactly, by
:func:`workbench.diff`, which also lists any metric, parameter or environment that changed. Each
reproduction is recorded in the audit trail (action ``reproduce``) and shown in the model card.

Example::

    import workbench as wb
    result = wb.reproduce("models:/churn/1")
    result.matches        # True: 455 of 455 answers are bit-for-bit the same
    result.summary()
    X, y = wb.training_data("models:/churn/1")     # the snapshot itself
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import _mlflow
from workbench.capture import CODE_DIR, CODE_MANIFEST
from workbench.config import get_settings
from workbench.diff import Difference, VersionDiff, diff, model_of
from workbench.errors import ReproductionError, RunNotFoundError
from workbench.registry import logged_model_tags, model_file, registered_version
from workbench.replay import ENV_SPEC, ReplayOutcome, ReplaySpec
from workbench.snapshot import SNAPSHOT_DIR, SNAPSHOT_MANIFEST, SnapshotManifest, read_snapshot
from workbench.tracking import TAG_USER, get_run, record_hashes

__all__ = ["ReproduceResult", "reproduce", "training_data"]

#: The tag a reproduction's run carries with its verdict (``true`` or ``false``).
TAG_MATCHES = "workbench.reproduction_matches"
#: Lines of the captured code's output an error shows.
_TAIL_LINES = 30

# Runs the captured cells in order in an IPython shell (magics work), or plainly without IPython;
# stops after the cell whose log_model wrote the outcome.
_NOTEBOOK_DRIVER = """\
import re, sys
from pathlib import Path
text, outcome = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
cells = [c for c in re.split(r"(?m)^# In\\[\\d+\\]:\\n", text) if c.strip()]
try:
    from IPython.core.interactiveshell import InteractiveShell
except ImportError:
    scope = {"__name__": "__main__"}
    for n, cell in enumerate(cells, start=1):
        exec(compile(cell, f"<captured cell {n}>", "exec"), scope)
else:
    shell = InteractiveShell.instance()
    for cell in cells:
        result = shell.run_cell(cell, store_history=True)
        if outcome.exists():
            break
        result.raise_error()
"""


@dataclass(frozen=True)
class ReproduceResult:
    """The outcome of :func:`reproduce`: is the re-trained model the same model?"""

    #: The model as given (``models:/churn/1``, ``models:/churn@champion``, a run id).
    original: str
    original_run_id: str | None
    #: The run the reproduction logged (tagged ``workbench.reproduction_of``) and its model.
    new_run_id: str
    new_model_uri: str
    #: True when the code trained on exactly the snapshot's rows and every answer on the reference
    #: rows is bit-for-bit the same.
    matches: bool
    #: True when the rows the code gave ``log_model`` are exactly the snapshot's.
    data_matches: bool
    #: Reference rows both models predicted, and how many answers differ.
    rows_compared: int
    rows_differing: int
    #: Metrics that differ between the original's run and the reproduction's (``a`` original, ``b`` new).
    metric_differences: tuple[Difference, ...]
    #: Wall time of the reproduction, in seconds (re-running the code, comparing, recording).
    seconds: float
    #: Everything :func:`workbench.diff` found between the original and the reproduction.
    diff: VersionDiff
    #: Who logged the code that ran (the original's ``workbench.user``).
    code_by: str | None = None

    def summary(self) -> str:
        """One line: the verdict, the answers compared, and what differs."""
        if self.matches:
            text = f"reproduced {self.original}: all {self.rows_compared} answers match exactly"
        else:
            text = f"{self.original} did not reproduce"
            if not self.data_matches:
                text += ": the code trained on other rows than the snapshot"
            if self.rows_compared:
                text += f"{';' if not self.data_matches else ':'} {self.rows_differing} of {self.rows_compared} answers differ"
            else:
                text += "; no reference rows could be compared"
        if self.metric_differences:
            text += f"; {len(self.metric_differences)} metric{'s' if len(self.metric_differences) != 1 else ''} differ"
        return f"{text} (code by {self.code_by or 'an unknown user'}; new run {self.new_run_id}, {self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"original": self.original, "original_run_id": self.original_run_id, "new_run_id": self.new_run_id,
                "new_model_uri": self.new_model_uri, "matches": self.matches, "data_matches": self.data_matches,
                "rows_compared": self.rows_compared, "rows_differing": self.rows_differing,
                "metric_differences": [d.to_dict() for d in self.metric_differences],
                "seconds": round(self.seconds, 3), "summary": self.summary(), "diff": self.diff.to_dict(),
                "code_by": self.code_by}

    def _repr_html_(self) -> str:
        from workbench.cards import Tone, card

        badge: tuple[str, Tone] = ("matches", "good") if self.matches else ("differs", "bad")
        metrics = pd.DataFrame([(d.name, d.a, d.b, d.detail) for d in self.metric_differences],
                               columns=["metric", "original", "reproduction", "change"])
        return card("Reproduction", self.original, badges=[badge], rows=[
            ("answers", f"{self.rows_differing} of {self.rows_compared} differ"),
            ("training rows", "exactly the snapshot's" if self.data_matches else "not the snapshot's"),
            ("new run", self.new_run_id), ("new model", self.new_model_uri),
            ("took", f"{self.seconds:.1f} s"),
            ("not compared", "; ".join(self.diff.notes)),
        ], table=metrics.to_html(index=False, na_rep="-") if len(metrics) else "")


def _manifest(model_uri: str, path: str) -> dict[str, Any] | None:
    text = model_file(model_uri, path)
    return json.loads(text) if text is not None else None


def _snapshot_of(model_uri: str) -> SnapshotManifest | None:
    found = _manifest(model_uri, f"{SNAPSHOT_DIR}/{SNAPSHOT_MANIFEST}")
    return SnapshotManifest.from_dict(found) if found is not None else None


def training_data(uri: str) -> tuple[pd.DataFrame, pd.Series | None]:
    """The training features and labels stored with a model (``log_model(..., snapshot_data=True)``),
    exactly as they were logged, with a fresh index. ``uri``: ``models:/<name>/<version>``,
    ``models:/<name>@<alias>`` or a run id."""
    _, model_uri = model_of(uri)
    snapshot = _snapshot_of(model_uri) if model_uri is not None else None
    if snapshot is None:
        raise ReproductionError(f"{uri} was logged without a training data snapshot: log the next version with "
                                "workbench.log_model(model, training_data=X, training_labels=y, snapshot_data=True) "
                                "(or set WORKBENCH_SNAPSHOT_DATA=1)")
    if not snapshot.stored:
        raise ReproductionError(f"the training data of {uri} was not stored: {snapshot.reason}")
    return read_snapshot(snapshot)


def _what_is_missing(uri: str, code: dict[str, Any] | None, snapshot: SnapshotManifest | None) -> str | None:
    missing = []
    if code is None:
        missing.append("the code that trained it (leave code capture on next time: log_model(..., "
                       "capture_code=True), WORKBENCH_CAPTURE_CODE=1, the default)")
    elif code.get("cut"):
        missing.append(f"the whole code: {', '.join(code['cut'])} was cut at WORKBENCH_MAX_CODE_BYTES (raise it "
                       "next time)")
    if snapshot is None:
        missing.append("a snapshot of its training data (log it next time with log_model(model, training_data=X, "
                       "training_labels=y, snapshot_data=True), or set WORKBENCH_SNAPSHOT_DATA=1)")
    elif not snapshot.stored:
        missing.append(f"a stored snapshot of its training data ({snapshot.reason})")
    if not missing:
        return None
    return f"{uri} cannot be reproduced: it was logged without " + "; and without ".join(missing)


def _command(code: dict[str, Any], folder: Path, outcome: Path) -> list[str]:
    name = code.get("code_file")
    if not name:
        raise ReproductionError("the captured code names no file to run: log the model again with code capture on")
    if code.get("source") == "notebook":
        return [sys.executable, "-c", _NOTEBOOK_DRIVER, str(folder / name), str(outcome)]
    return [sys.executable, str(folder / name), *[str(a) for a in code.get("args") or ()]]


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])


def _run_captured(uri: str, model_uri: str, code: dict[str, Any], spec_of: dict[str, Any],
                  timeout: float | None) -> ReplayOutcome:
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="workbench-reproduce-") as tmp:
        folder = Path(tmp)
        # The code runs on a scratch workspace until the log_model call that logged the original.
        scratch = dataclasses.replace(settings, home=folder / "scratch-workspace", tracking_uri=None,
                                      registry_uri=None)
        for name in code.get("bytes") or {}:
            text = model_file(model_uri, f"{CODE_DIR}/{name}")
            if text is not None:
                (folder / name).write_text(text)
        outcome_path = folder / "outcome.json"
        spec = ReplaySpec(outcome_path=str(outcome_path), call=int(code.get("log_model_call") or 1),
                          settings_env=settings.as_env(), **spec_of)
        spec.save(folder / "spec.json")
        workdir = code.get("workdir")
        cwd = workdir if workdir and Path(workdir).is_dir() else str(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")
               and k not in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        env.update({**scratch.as_env(), ENV_SPEC: str(folder / "spec.json")})
        script_dir = Path(code["path"]).parent if code.get("path") else None
        if script_dir is not None and script_dir.is_dir():  # its own modules import as they did
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(script_dir), env.get("PYTHONPATH", "")) if p)
        try:
            done = subprocess.run(_command(code, folder, outcome_path), cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ReproductionError(f"re-running the code of {uri} took longer than {timeout} s: give "
                                    "reproduce(..., timeout=SECONDS) more time") from exc
        outcome = ReplayOutcome.load(outcome_path)
        if outcome is None:
            raise ReproductionError(
                f"re-running the code of {uri} ended (exit status {done.returncode}) without logging a model; "
                f"the code must call workbench.log_model as it did. Its last output:\n{_tail(done.stderr or done.stdout)}")
        if outcome.run_id is None:
            raise ReproductionError(f"re-running the code of {uri} logged a model outside any run")
        return outcome


def _copy_provenance(model_uri: str, code: dict[str, Any], new_model_uri: str, model_id: str) -> None:
    """Give the reproduction the original's code and snapshot manifest: it ran that code on those
    rows, and so can itself be reproduced and diffed without a spurious code difference."""
    with tempfile.TemporaryDirectory(prefix="workbench-provenance-") as tmp:
        for path in [f"{CODE_DIR}/{CODE_MANIFEST}", *(f"{CODE_DIR}/{n}" for n in code.get("bytes") or {}),
                     f"{SNAPSHOT_DIR}/{SNAPSHOT_MANIFEST}"]:
            text = model_file(model_uri, path)
            if text is not None:
                target = Path(tmp) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        with _mlflow.translated(RunNotFoundError, f"model {new_model_uri!r}"):
            _mlflow.client().log_model_artifacts(model_id, tmp)
            record_hashes(model_id)  # the copied code is the reproduction's own now


def reproduce(uri: str, *, timeout: float | None = 3600.0, trust: bool = False) -> ReproduceResult:
    """Re-run the code that trained ``uri`` on its training data snapshot in a fresh process, log
    the result as a new run linked to the original, and compare both models' answers exactly.

    ``uri`` is ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or a run id. A model logged
    without its code or without a data snapshot raises :class:`~workbench.errors.ReproductionError`
    saying what to log next time; so does code that fails, or ends without calling ``log_model``
    (its last output is in the message). ``timeout`` bounds the re-run, in seconds.

    The captured code runs as you, on this machine: a model another user logged (its
    ``workbench.user`` is not yours) is reproduced only with ``trust=True`` (``--trust``), after you
    have read its code; the result says whose code ran (``code_by``). The code and its manifest are
    checked against the hashes recorded at ``log_model`` first (:mod:`workbench.integrity`).
    """
    from workbench.audit import record

    started = time.perf_counter()
    run_id, model_uri = model_of(uri)
    if model_uri is None:
        raise ReproductionError(f"{uri} logged no model, so there is nothing to reproduce: give a version or a run "
                                "that logged one with workbench.log_model")
    code_by = logged_model_tags(model_uri).get(TAG_USER) or (get_run(run_id).tags.get(TAG_USER) if run_id else None)
    me = get_settings().user
    if code_by != me and not trust:
        raise ReproductionError(
            f"{uri} was logged by {code_by or 'an unknown user'!r}, not by you ({me!r}): reproducing it runs "
            f"their captured code on this machine as you. Read it first (its training_code/ files), then "
            f"pass trust=True (`workbench reproduce {uri} --trust`)")
    code = _manifest(model_uri, f"{CODE_DIR}/{CODE_MANIFEST}")
    snapshot = _snapshot_of(model_uri)
    missing = _what_is_missing(uri, code, snapshot)
    if missing or code is None or snapshot is None:
        raise ReproductionError(missing or f"{uri} cannot be reproduced")
    experiment_id = get_run(run_id).experiment_id if run_id else None
    outcome = _run_captured(uri, model_uri, code, {"original": uri, "original_run_id": run_id,
                                                   "snapshot_key": snapshot.key, "experiment_id": experiment_id},
                            timeout)
    _copy_provenance(model_uri, code, outcome.model_uri, outcome.model_id)
    new_run_id = outcome.run_id or ""
    found = diff(uri, new_run_id)
    data_matches = outcome.data_key == snapshot.key
    matches = data_matches and found.rows_compared > 0 and found.rows_differing == 0
    with _mlflow.translated(RunNotFoundError, f"run {new_run_id!r}"):
        _mlflow.client().set_tag(new_run_id, TAG_MATCHES, "true" if matches else "false")
    seconds = time.perf_counter() - started
    result = ReproduceResult(
        original=uri, original_run_id=run_id, new_run_id=new_run_id, new_model_uri=outcome.model_uri,
        matches=matches, data_matches=data_matches, rows_compared=found.rows_compared,
        rows_differing=found.rows_differing, metric_differences=tuple(found.of_kind("metric")),
        seconds=seconds, diff=found, code_by=code_by)
    version = registered_version(uri) if uri.startswith("models:/") else None
    record("reproduce", model_name=version.name if version else None, from_version=version.version if version else None,
           details={"matches": matches, "data_matches": data_matches, "original": uri, "original_run_id": run_id,
                    "new_run_id": new_run_id, "new_model_uri": outcome.model_uri,
                    "rows_compared": found.rows_compared, "rows_differing": found.rows_differing,
                    "seconds": round(seconds, 3)})
    return result
