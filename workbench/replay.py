"""The child's side of ``wb.reproduce``: what ``log_model`` does in the process re-running captured code.

:func:`workbench.reproduce` runs a model's captured notebook cells or script in a fresh Python process
with :data:`ENV_SPEC` naming a JSON file (:class:`ReplaySpec`), against a scratch workspace. There the
code runs as it did, loading its data and training, until its ``log_model`` call numbered as the one
that logged the original (a notebook often logs several models, in a loop or a function); the calls
before it, and whatever the code registers with them, stay in the scratch workspace. That call moves
to the real store: a new run in the original's experiment, tagged :data:`TAG_REPRODUCTION_OF`, with
the params, metrics and tags the code logged so far (:func:`enter_real_store`). It logs the model
there, computes the snapshot key of the rows it was given (so the parent knows whether the code
trained on exactly the snapshot's rows), writes a :class:`ReplayOutcome`, ends its runs as finished
and stops the process (:func:`finish`): what the code does after ``log_model`` (registering a
version, setting an alias, deploying) is not done a second time.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

from workbench import _mlflow
from workbench.config import configure
from workbench.errors import RunNotFoundError

__all__ = ["ENV_SPEC", "TAG_REPRODUCTION_OF", "ReplayOutcome", "ReplaySpec", "active_spec", "count_call",
           "enter_real_store", "finish"]

#: The environment variable naming the replay spec file in the child process.
ENV_SPEC = "WORKBENCH_REPRODUCE_SPEC"
#: The tag of a reproduction's run (and model) naming the run it reproduces.
TAG_REPRODUCTION_OF = "workbench.reproduction_of"


@dataclass(frozen=True)
class ReplaySpec:
    """What the parent tells the child: which model is reproduced, and where to write the outcome."""

    #: The model as the user named it (``models:/churn/1``, a run id).
    original: str
    original_run_id: str | None
    #: The content key of the original's training data snapshot.
    snapshot_key: str
    #: Where the child writes its :class:`ReplayOutcome`.
    outcome_path: str
    #: Which ``log_model`` call of the process logged the original (1 for the first).
    call: int = 1
    #: The original run's experiment, where the reproduction's run goes.
    experiment_id: str | None = None
    #: The ``WORKBENCH_*`` settings of the real store (the child starts on a scratch workspace).
    settings_env: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Write the spec as JSON."""
        path.write_text(json.dumps(asdict(self)))
        return path


@dataclass(frozen=True)
class ReplayOutcome:
    """What the child logged: the new run and model, and the key of the rows it trained on."""

    run_id: str | None
    model_id: str
    model_uri: str
    #: The snapshot key of the training rows given to ``log_model`` (``None`` when none were given).
    data_key: str | None

    @classmethod
    def load(cls, path: Path) -> ReplayOutcome | None:
        """The outcome the child wrote, or ``None`` when it never reached ``log_model``."""
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def active_spec() -> ReplaySpec | None:
    """The replay spec of this process, when ``wb.reproduce`` started it (else ``None``)."""
    where = os.environ.get(ENV_SPEC)
    if not where:
        return None
    return ReplaySpec(**json.loads(Path(where).read_text()))


_calls = itertools.count(1)
_calls_lock = threading.Lock()


def count_call() -> int:
    """Number this process's ``log_model`` calls: 1 for the first, 2 for the next, ..."""
    with _calls_lock:
        return next(_calls)


def enter_real_store(spec: ReplaySpec) -> None:
    """Leave the scratch workspace for the real store, in a new run of the original's experiment
    carrying the name, params, metrics and tags the code logged in its scratch run so far."""
    import mlflow

    scratch = mlflow.active_run()
    carried = _mlflow.client().get_run(scratch.info.run_id) if scratch is not None else None
    while mlflow.active_run() is not None:
        mlflow.end_run("FINISHED")
    os.environ.update(spec.settings_env)
    configure()  # re-read the environment: the real store's settings
    _mlflow.ensure_ready()
    tags = {TAG_REPRODUCTION_OF: spec.original_run_id or spec.original}
    if carried is not None:
        tags = {**{k: v for k, v in carried.data.tags.items() if not k.startswith("mlflow.")}, **tags}
    with _mlflow.translated(RunNotFoundError, f"the experiment of {spec.original}"):
        mlflow.start_run(experiment_id=spec.experiment_id, tags=tags,
                         run_name=carried.info.run_name if carried is not None else None)
        if carried is not None:
            mlflow.log_params(dict(carried.data.params))
            mlflow.log_metrics(dict(carried.data.metrics))


def finish(spec: ReplaySpec, outcome: ReplayOutcome) -> NoReturn:
    """Tag the new run, write the outcome, end the runs as finished and stop the captured code."""
    import mlflow

    if outcome.run_id:
        with _mlflow.translated(RunNotFoundError, f"run {outcome.run_id!r}"):
            _mlflow.client().set_tag(outcome.run_id, TAG_REPRODUCTION_OF, spec.original_run_id or spec.original)
    Path(spec.outcome_path).write_text(json.dumps(asdict(outcome)))
    while mlflow.active_run() is not None:
        mlflow.end_run("FINISHED")
    raise SystemExit(0)
