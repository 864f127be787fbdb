"""Retrain, challenge, promote: the loop that answers a decaying model, in one cell.

::

    import workbench as wb

    def train(data):                      # the recent window, its inputs and a "truth" column
        X, y = data.drop(columns="truth"), data["truth"]
        return RandomForestClassifier().fit(X, y)

    loop = wb.retrain_on("credit", train=train, when={"accuracy": 0.8},
                         gate=wb.Gate(metric="accuracy", margin=0.02, min_rows=200))
    loop.check()          # one step; or loop.run(timeout=600), or loop.start(interval=30)
    loop.steps            # what happened, step by step (also in the audit trail)

Each :meth:`RetrainLoop.check` moves the loop on by what the deployment's logs say:

1. **watching**: a :class:`~workbench.monitor.LiveMonitor` follows the deployment and the ground
   truth sent to it (``dep.log_feedback``). ``when`` fires on the monitor's report: a mapping of
   measured-metric thresholds (``{"accuracy": 0.8}``: the window's measured accuracy fell below
   0.8), an alert kind (``"dataset_drift"``), or any ``report -> bool`` function.
2. **training**: ``train`` gets those of the newest ``rows`` rows (default: the monitor's window)
   that have their truth (inputs in their training dtypes plus ``truth``) and returns a fitted model (or a logged or registered one). It
   is logged with those rows as its training data and registered as a new version of the
   deployment's model.
3. **challenging**: the new version starts as a challenger in ``shadow`` mode: it sees every request
   and answers none, so both versions answer the *same rows*.
4. **decided**: once ``gate.min_rows`` rows that both versions answered have their truth, the gate
   compares the versions on exactly those rows: the challenger is promoted if it beats the
   champion by ``gate.margin``, otherwise aborted. Then the loop watches the new champion.

Every step is recorded in the audit trail (``retrain``, ``start_challenger``, ``gate``, then
``promote`` or ``abort``) and in :attr:`RetrainLoop.steps`; ``on_step`` sees each one as it happens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from workbench._repeat import Repeater
from workbench.audit import record
from workbench.deployment import abort, get_deployment, promote, start_challenger
from workbench.errors import DeploymentError, InvalidInputError, WorkbenchError
from workbench.monitor import LiveMonitor, MonitorReport, evaluate_performance
from workbench.monitor.performance import LOWER_IS_BETTER
from workbench.registry import ModelVersion, get_version, register, set_version_tag
from workbench.tracking import LoggedModel, log_model, log_values, start_run

__all__ = ["Gate", "GateResult", "RetrainLoop", "RetrainStep", "retrain_on"]

_log = logging.getLogger(__name__)

Stage = Literal["watching", "training", "challenging"]

#: What ``when`` may be: thresholds on measured metrics, an alert kind, or a test of each report.
Trigger = Mapping[str, float] | str | Callable[[MonitorReport], bool]


@dataclass(frozen=True)
class Gate:
    """When a retrained challenger may take over: it must beat the champion on ``metric`` by at least
    ``margin``, measured on the same ``min_rows`` (or more) labelled rows that both versions answered."""

    metric: str = "accuracy"
    margin: float = 0.0
    min_rows: int = 200

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise InvalidInputError(f"the gate needs at least one row to compare on, not {self.min_rows}")


@dataclass(frozen=True)
class GateResult:
    """The comparison a gate decided on."""

    metric: str
    champion: float
    challenger: float
    rows: int
    margin: float
    promote: bool

    def describe(self) -> str:
        """In words, e.g. ``challenger accuracy 0.912 vs champion 0.804 on 240 rows: promoted``."""
        verdict = "promoted" if self.promote else f"aborted (needed a margin of {self.margin})"
        return (f"challenger {self.metric} {self.challenger:.3f} vs champion {self.champion:.3f} on "
                f"{self.rows} rows: {verdict}")


@dataclass(frozen=True)
class RetrainStep:
    """One thing the loop did."""

    time: pd.Timestamp
    #: ``triggered``, ``trained``, ``challenging``, ``waiting``, ``promoted``, ``aborted``, ``failed``.
    kind: str
    message: str
    version: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"time": self.time.isoformat(), "kind": self.kind, "message": self.message,
                "version": self.version, **dict(self.details)}


class RetrainLoop:
    """The state of one retrain-challenge-promote loop on a deployment (see the module docstring)."""

    def __init__(self, name: str, train: Callable[[pd.DataFrame], Any], *, when: Trigger,
                 gate: Gate | None = None, rows: int | None = None, min_train_rows: int = 50,
                 experiment: str | None = None, on_step: Callable[[RetrainStep], None] | None = None,
                 **monitor_options: Any) -> None:
        from workbench.deployment import get_deployment

        if not callable(train):
            raise InvalidInputError("train is a function that takes the labelled rows and returns a fitted model")
        self.name = name
        self.train = train
        self.when = when
        self.gate = gate or Gate()
        self.min_train_rows = min_train_rows
        self.experiment = experiment or f"retrain-{name}"
        self.on_step = on_step
        self._monitor_options = dict(monitor_options)
        if isinstance(when, Mapping):
            self._monitor_options["performance_thresholds"] = dict(when)
        elif not (isinstance(when, str) or callable(when)):
            raise InvalidInputError("when is a mapping of metric thresholds ({'accuracy': 0.8}), an alert kind "
                                    "('dataset_drift') or a function of the monitor's report")
        self.steps: list[RetrainStep] = []
        self.stage: Stage = "watching"
        self.challenger_version: str | None = None
        self._challenge_started = 0.0
        self._lock = threading.RLock()
        self._repeater = Repeater(self.check, name=f"workbench-retrain-{name}", what="retrain loop check")
        deployment = get_deployment(name)
        if deployment.challenger_uri is not None:
            raise DeploymentError(f"deployment {name!r} already has a challenger ({deployment.challenger_uri}): "
                                  f"promote or abort it before a retrain loop starts (`workbench abort {name}`)")
        self.monitor = LiveMonitor.for_deployment(deployment, **self._monitor_options)
        #: How many of the newest rows training reads (those with their truth train): the monitor's
        #: window when it counts rows, else 2,000.
        self.rows = rows or self.monitor.window.rows or 2000

    def __repr__(self) -> str:
        last = self.steps[-1].message if self.steps else "nothing yet"
        return f"RetrainLoop({self.name!r}, {self.stage}, {len(self.steps)} steps; last: {last})"

    def _repr_html_(self) -> str:
        from workbench.cards import card

        rows: list[tuple[str, Any]] = [(f"{s.time:%H:%M:%S}", f"{s.kind}: {s.message}") for s in self.steps[-12:]]
        return card("Retrain loop", self.name, badges=[(self.stage, "warn" if self.stage != "watching" else "good")],
                    rows=rows or [("steps", "nothing yet")])

    def steps_frame(self) -> pd.DataFrame:
        """Every step as a row."""
        return pd.DataFrame([s.to_dict() for s in self.steps])

    # -- one step ----------------------------------------------------------------------------------

    def check(self) -> RetrainStep | None:
        """Move the loop on by one step if the deployment's logs say so; the step, or ``None``."""
        with self._lock:
            try:
                if self.stage == "watching":
                    return self._watch()
                if self.stage == "challenging":
                    return self._judge()
            except WorkbenchError as exc:
                return self._step("failed", str(exc))
            return None

    def _watch(self) -> RetrainStep | None:
        report = self.monitor.update()
        if report is None or not self._fires(report):
            return None
        self._step("triggered", _why(self.when, report))
        return self._retrain()

    def _fires(self, report: MonitorReport) -> bool:
        if isinstance(self.when, Mapping):
            return any(a.kind == "performance" for a in report.alerts)
        if isinstance(self.when, str):
            return any(a.kind == self.when for a in report.alerts)
        return bool(self.when(report))

    def _retrain(self) -> RetrainStep:
        self.stage = "training"
        dep = get_deployment(self.name)
        rows = dep.labelled_rows(self.rows)
        data = rows.frame[rows.frame["truth"].notna()]
        if len(data) < self.min_train_rows:
            self.stage = "watching"
            return self._step("waiting", f"only {len(data)} of the newest {self.rows} rows have their truth; "
                                         f"training needs {self.min_train_rows}: send more with log_feedback")
        features = data[list(rows.inputs)].reset_index(drop=True)
        truth = pd.Series(data["truth"].tolist(), name="truth").infer_objects()
        trained = self.train(features.assign(truth=truth.to_numpy()))
        window = training_window(data["ts"], len(features), self.name, dep.model_version, _why(self.when, self.monitor.latest))
        version = self._register(trained, features, truth, dep.model_name, window)
        self._step("trained", f"trained on {len(features)} labelled rows, registered {dep.model_name} "
                              f"version {version.version}", version.version, {"rows": len(features)})
        start_challenger(self.name, version.uri, shadow=True)
        self.stage, self.challenger_version = "challenging", version.version
        self._challenge_started = time.time()
        return self._step("challenging", f"version {version.version} answers every request in the shadow of "
                                         f"version {dep.model_version}", version.version)

    def _register(self, trained: Any, features: pd.DataFrame, truth: pd.Series, model_name: str,
                  window: Mapping[str, str]) -> ModelVersion:

        if isinstance(trained, ModelVersion):
            version = trained
        else:
            logged = trained
            if not isinstance(trained, LoggedModel):
                with start_run(experiment=self.experiment, run_name=f"retrain {self.name}"):
                    logged = log_model(trained, training_data=features, training_labels=truth)
            version = register(logged, model_name)
        if version.run_id:  # the version's Overview and card show what it was trained on
            log_values(version.run_id, params=window)
        record("retrain", model_name=model_name, to_version=version.version, deployment=self.name,
               details={"rows": len(features), "trigger": _why(self.when, self.monitor.latest)})
        return version

    def _judge(self) -> RetrainStep | None:

        dep = get_deployment(self.name)
        if dep.challenger_version != self.challenger_version:
            self.stage = "watching"
            return self._step("failed", f"the challenger was changed by someone else (now "
                                        f"{dep.challenger_version}): the loop watches again")
        result = compare_on_same_rows(dep, self.gate, since=self._challenge_started, rows=self.rows * 4)
        if result is None:
            return None
        champion_version = dep.model_version
        record("gate", model_name=dep.model_name, from_version=champion_version, to_version=self.challenger_version,
               deployment=self.name, details={"metric": result.metric, "champion": result.champion,
                                              "challenger": result.challenger, "rows": result.rows,
                                              "margin": result.margin, "promote": result.promote})
        version = self.challenger_version
        _log_gate(dep.model_name, version, result)
        if result.promote:
            promote(self.name)
        else:
            abort(self.name)
        self.stage, self.challenger_version = "watching", None
        self.monitor = LiveMonitor.for_deployment(self.name, **self._monitor_options)
        return self._step("promoted" if result.promote else "aborted", result.describe(), version,
                          {"champion": result.champion, "challenger": result.challenger, "rows": result.rows})

    def _step(self, kind: str, message: str, version: str | None = None,
              details: Mapping[str, Any] | None = None) -> RetrainStep:
        step = RetrainStep(pd.Timestamp.now(tz="UTC"), kind, message, version, dict(details or {}))
        self.steps.append(step)
        if self.on_step is not None:
            try:
                self.on_step(step)
            except Exception as exc:  # a broken display must not stop the loop
                _log.warning("on_step failed: %s", exc)
        return step

    # -- running ---------------------------------------------------------------------------------

    def run(self, *, until: Callable[[RetrainLoop], bool] | None = None, interval: float = 2.0,
            timeout: float = 600.0) -> list[RetrainStep]:
        """Check every ``interval`` seconds until ``until(loop)`` (default: a challenger was promoted or
        aborted) or ``timeout``; returns the steps taken meanwhile."""
        done = until or (lambda loop: any(s.kind in ("promoted", "aborted") for s in loop.steps[first:]))
        first = len(self.steps)
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the retrain loop of {self.name!r} did not finish in {timeout:.0f} s "
                                   f"(it is {self.stage}): {self!r}")
            if self.check() is None:
                time.sleep(interval)
        return self.steps[first:]

    def start(self, interval: float = 30.0) -> None:
        """Check every ``interval`` seconds in a background thread until :meth:`stop`."""
        self._repeater.start(interval)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop background checks (waits for a running one to finish)."""
        self._repeater.stop(timeout)

def compare_on_same_rows(deployment: Any, gate: Gate, *, since: float = 0.0, rows: int = 10_000) -> GateResult | None:
    """The gate's comparison of a deployment's champion and challenger on the labelled rows both
    answered after ``since`` (seconds since the epoch); ``None`` while fewer than ``gate.min_rows``."""
    labelled = deployment.labelled_rows(rows).frame
    labelled = labelled[(labelled["ts"] >= since) & labelled["truth"].notna()]
    champion = labelled[labelled["model_version"] == deployment.model_version]
    challenger = labelled[labelled["model_version"] == deployment.challenger_version]
    keys = ["request_id", "row"]
    both = champion.merge(challenger[[*keys, "predict"]], on=keys, suffixes=("", "_challenger"))
    both = both.drop_duplicates(keys)
    if len(both) < gate.min_rows:
        return None
    truth = pd.Series(both["truth"].tolist()).infer_objects().to_numpy()
    scores = []
    for column in ("predict", "predict_challenger"):
        frame = pd.DataFrame({"predict": both[column].to_numpy(), "label": truth, "ts": both["ts"].to_numpy()})
        report = evaluate_performance(frame)
        value = report.overall.get(gate.metric)
        if value is None:
            raise InvalidInputError(f"the gate's metric {gate.metric!r} is not measured for this model; measured: "
                                    f"{sorted(report.overall)}")
        scores.append(value)
    champion_score, challenger_score = scores
    if gate.metric in LOWER_IS_BETTER:
        promote = challenger_score <= champion_score - gate.margin
    else:
        promote = challenger_score >= champion_score + gate.margin
    return GateResult(gate.metric, champion_score, challenger_score, len(both), gate.margin, promote)


def training_window(ts: pd.Series, rows: int, deployment: str, champion: str | None, trigger: str) -> dict[str, str]:
    """The params a retrained version's run records about what it was trained on: the deployment,
    the version it challenges, the number of labelled rows, when the first and last of them were
    answered (UTC), and why the loop fired."""
    times = pd.to_datetime(pd.Series(ts, dtype="float64"), unit="s", utc=True)
    return {
        "retrain.deployment": deployment,
        "retrain.champion_version": champion or "-",
        "retrain.rows": str(rows),
        "retrain.window_start": f"{times.min():%Y-%m-%d %H:%M:%S} UTC" if len(times) else "-",
        "retrain.window_end": f"{times.max():%Y-%m-%d %H:%M:%S} UTC" if len(times) else "-",
        "retrain.trigger": trigger[:500],  # MLflow keeps params up to 6,000 characters
    }


def _log_gate(model_name: str, version: str | None, result: GateResult) -> None:
    """The gate's scores as metrics of the challenger's run (``gate.<metric>``,
    ``gate.champion_<metric>``, ``gate.rows``) and its verdict as a tag of the run and the version."""
    if version is None:
        return
    found = get_version(model_name, version)
    verdict = result.describe()
    set_version_tag(model_name, version, "workbench.gate", verdict)
    if found.run_id:
        log_values(found.run_id, metrics={f"gate.{result.metric}": result.challenger,
                                          f"gate.champion_{result.metric}": result.champion,
                                          "gate.rows": float(result.rows)},
                   params={"gate.margin": result.margin}, tags={"workbench.gate": verdict})


def _why(when: Trigger, report: MonitorReport | None) -> str:
    if report is None:
        return "triggered"
    if isinstance(when, (Mapping, str)):
        kinds = ("performance",) if isinstance(when, Mapping) else (when,)
        messages = [a.message for a in report.alerts if a.kind in kinds]
        if messages:
            return messages[0]
    return f"the trigger fired on the update of {report.time:%H:%M:%S} UTC"


def retrain_on(name: str, train: Callable[[pd.DataFrame], Any], *, when: Trigger, gate: Gate | None = None,
               **options: Any) -> RetrainLoop:
    """A :class:`RetrainLoop` on deployment ``name``: when ``when`` fires, ``train`` runs on the recent
    labelled rows, the result is registered and challenges the champion in shadow, and the ``gate``
    promotes or aborts it on the same rows. ``options`` as for :class:`RetrainLoop` (``rows``,
    ``min_train_rows``, ``experiment``, ``on_step``) and for the monitor (``window``, ``min_labels``, ...).
    Call ``check()``, ``run()`` or ``start()`` on the result."""
    return RetrainLoop(name, train, when=when, gate=gate, **options)
