"""What every monitoring report shares: JSON, an HTML table for notebooks, and logging to MLflow."""

from __future__ import annotations

import html
import json
import math
import re
import time
from typing import Any

import pandas as pd

from workbench.errors import RunNotFoundError
from workbench.serialize import jsonable

_METRIC_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")


def metric_key(*parts: str) -> str:
    """An MLflow metric key from name parts (characters MLflow refuses become ``_``)."""
    return _METRIC_KEY_UNSAFE.sub("_", ".".join(p for p in parts if p))


class Report:
    """Mixin for frozen report dataclasses that define ``to_frame``, ``to_dict`` and ``summary``."""

    def to_frame(self) -> pd.DataFrame:  # pragma: no cover - every report overrides it
        """One row per item of the report."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every report overrides it
        """JSON-ready form."""
        raise NotImplementedError

    def summary(self) -> str:  # pragma: no cover - every report overrides it
        """One line for people: the verdict."""
        raise NotImplementedError

    def mlflow_metrics(self) -> dict[str, float]:
        """The numbers :meth:`log_to_mlflow` logs (finite values only)."""
        return {}

    def to_json(self, indent: int | None = None) -> str:
        """The report as a JSON string (NaN written as ``null``)."""
        return json.dumps(jsonable(self.to_dict()), indent=indent)

    def _repr_html_(self) -> str:
        title = html.escape(type(self).__name__)
        table = self.to_frame().to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")
        return f"<div><strong>{title}</strong>: {html.escape(self.summary())}{table}</div>"

    def log_to_mlflow(
        self, run_id: str | None = None, *, experiment: str = "monitoring", step: int | None = None,
        artifact_file: str | None = None,
    ) -> str:
        """Log :meth:`mlflow_metrics` and the JSON report to an MLflow run; returns the run id.

        The run is ``run_id``, else the active run, else a new run in ``experiment``. The JSON goes
        to ``artifact_file`` (default ``monitoring/<ReportClass>.json``).
        """
        import mlflow
        from mlflow.entities import Metric

        from workbench import _mlflow
        from workbench.tracking import start_run

        _mlflow.ensure_ready()
        artifact = artifact_file or f"monitoring/{type(self).__name__}.json"
        now = int(time.time() * 1000)
        metrics = [
            Metric(metric_key(k), float(v), now, step or 0)
            for k, v in self.mlflow_metrics().items()
            if v is not None and math.isfinite(v)
        ]

        def write(target: str) -> None:
            client = _mlflow.client()
            with _mlflow.translated(RunNotFoundError, f"run {target!r}"):
                for start in range(0, len(metrics), 1000):  # MLflow's batch limit
                    client.log_batch(target, metrics=metrics[start:start + 1000])
                client.log_text(target, self.to_json(indent=2), artifact)

        if run_id is None and (active := mlflow.active_run()) is not None:
            run_id = active.info.run_id
        if run_id is not None:
            write(run_id)
            return run_id
        with start_run(experiment, run_name=type(self).__name__) as run:
            write(run.info.run_id)
            return str(run.info.run_id)
