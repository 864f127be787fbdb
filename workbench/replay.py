"""The child's side of ``wb.reproduce``: what ``log_model`` does in the process re-running captured code.

:func:`workbench.reproduce` runs a model's captured notebook cells or script in a fresh Python process
with :data:`ENV_SPEC` naming a JSON file (:class:`ReplaySpec`). There the code runs as it did, loading
its data and training its model, until it calls ``log_model``. That call logs the new model in a run
tagged :data:`TAG_REPRODUCTION_OF` (the original's run), computes the snapshot key of the rows it was
given (so the parent knows whether the code trained on exactly the snapshot's rows), writes a
:class:`ReplayOutcome`, ends its runs as finished and stops the process: what the code does after
``log_model`` (registering a version, setting an alias, deploying) is not done a second time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from workbench import _mlflow
from workbench.errors import RunNotFoundError

__all__ = ["ENV_SPEC", "TAG_REPRODUCTION_OF", "ReplayOutcome", "ReplaySpec", "active_spec", "finish"]

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
