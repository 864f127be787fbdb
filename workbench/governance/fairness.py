"""Group fairness of a classifier's decisions across a sensitive attribute, with fairlearn.

The sensitive attribute is given at evaluation time (it need not be, and usually should not be, a
model input). Per group: count, actual positives, selection rate, true and false positive rates and
accuracy (fairlearn's :class:`~fairlearn.metrics.MetricFrame`); across groups: fairlearn's
demographic parity and equalized odds differences and ratios.

Example::

    import workbench as wb
    report = wb.fairness_report(y_test, model.predict(X_test), sensitive_features=people["sex"],
                                model_uri="models:/credit/3", log=True)
    report.demographic_parity_difference      # 0.07
    report.to_frame()                         # one row per group
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, RunNotFoundError

__all__ = ["FAIRNESS_ARTIFACT_DIR", "FairnessReport", "fairness_report", "logged_fairness"]

#: Where :meth:`FairnessReport.log_to_mlflow` writes its JSON in the run's artifacts.
FAIRNESS_ARTIFACT_DIR = "fairness"
#: Per-group metrics, in the order of :meth:`FairnessReport.to_frame`'s columns.
GROUP_METRICS = ("count", "positives", "selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")
_DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                "equalized_odds_ratio")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")


def _key(*parts: str) -> str:
    return _UNSAFE.sub("_", ".".join(parts))


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class FairnessReport:
    """Group metrics of binary decisions across one sensitive attribute (or several, intersected)."""

    #: The sensitive attribute's name (``"sex"``, or ``"sex+race"`` for intersected groups).
    attribute: str
    #: One row per group: the attribute column(s), then :data:`GROUP_METRICS`.
    by_group: pd.DataFrame = field(repr=False)
    #: The same metrics over all rows.
    overall: Mapping[str, float]
    #: Largest difference (and smallest ratio) of selection rates between groups.
    demographic_parity_difference: float
    demographic_parity_ratio: float
    #: The worse of the true and false positive rate differences (ratios) between groups.
    equalized_odds_difference: float
    equalized_odds_ratio: float
    n_rows: int
    #: The label counted as the positive decision.
    pos_label: Any = 1
    model_uri: str | None = None

    @property
    def groups(self) -> list[str]:
        """Group labels (intersected groups joined with ``|``)."""
        columns = self._group_columns()
        return ["|".join(str(v) for v in row) for row in self.by_group[columns].itertuples(index=False)]

    def _group_columns(self) -> list[str]:
        return [c for c in self.by_group.columns if c not in GROUP_METRICS]

    def disparities(self) -> dict[str, float]:
        """The four between-group numbers by name."""
        return {name: getattr(self, name) for name in _DISPARITIES}

    def summary(self) -> str:
        """One line: the disparities."""
        return (f"{self.attribute}: {len(self.by_group)} groups over {self.n_rows} rows; demographic parity "
                f"difference {self.demographic_parity_difference:.3f} (ratio {self.demographic_parity_ratio:.3f}), "
                f"equalized odds difference {self.equalized_odds_difference:.3f} "
                f"(ratio {self.equalized_odds_ratio:.3f})")

    def to_frame(self) -> pd.DataFrame:
        """One row per group (a copy)."""
        return self.by_group.copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back."""
        rows = [{k: _json_value(v) for k, v in row.items()} for row in self.by_group.to_dict(orient="records")]
        return {
            "attribute": self.attribute, "n_rows": self.n_rows, "pos_label": _plain_label(self.pos_label),
            "model_uri": self.model_uri, "group_columns": self._group_columns(), "by_group": rows,
            "overall": {k: _finite(v) for k, v in self.overall.items()},
            **{name: _finite(getattr(self, name)) for name in _DISPARITIES},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessReport:
        """Inverse of :meth:`to_dict`."""
        columns = list(data["group_columns"]) + list(GROUP_METRICS)
        nan = float("nan")
        return cls(
            attribute=data["attribute"],
            by_group=pd.DataFrame(list(data["by_group"]), columns=columns),
            overall=MappingProxyType({k: nan if v is None else float(v) for k, v in data["overall"].items()}),
            n_rows=int(data["n_rows"]),
            pos_label=data.get("pos_label", 1),
            model_uri=data.get("model_uri"),
            **{name: nan if data.get(name) is None else float(data[name]) for name in _DISPARITIES},
        )

    def _repr_html_(self) -> str:
        table = self.by_group.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")
        return f"<div><strong>FairnessReport</strong>: {html.escape(self.summary())}{table}</div>"

    def mlflow_metrics(self) -> dict[str, float]:
        """The numbers :meth:`log_to_mlflow` logs: ``fairness.<attribute>.<disparity>`` and
        ``fairness.<attribute>.<group>.<metric>`` (finite values only)."""
        out = {_key("fairness", self.attribute, name): getattr(self, name) for name in _DISPARITIES}
        for label, (_, row) in zip(self.groups, self.by_group.iterrows(), strict=True):
            for metric in GROUP_METRICS[2:]:
                out[_key("fairness", self.attribute, label, metric)] = row[metric]
        return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}

    def log_to_mlflow(self, run_id: str | None = None) -> str:
        """Log :meth:`mlflow_metrics` and the JSON report (``fairness/<attribute>.json``) to a run.

        The run is ``run_id``, else the run of the report's model version (``model_uri``), else the
        active MLflow run. Returns the run id.
        """
        import mlflow
        from mlflow.entities import Metric

        from workbench import _mlflow

        _mlflow.ensure_ready()
        if run_id is None and self.model_uri is not None:
            run_id = _run_of(self.model_uri)
        if run_id is None and (active := mlflow.active_run()) is not None:
            run_id = active.info.run_id
        if run_id is None:
            raise InvalidInputError(
                "no run to log the fairness report to: give model_uri= (a registered version with a run), "
                "run_id=, or call it inside workbench.start_run()"
            )
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in self.mlflow_metrics().items()]
        client = _mlflow.client()
        with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
            for start in range(0, len(metrics), 1000):  # MLflow's batch limit
                client.log_batch(run_id, metrics=metrics[start:start + 1000])
            client.log_text(run_id, json.dumps(self.to_dict(), indent=2),
                            f"{FAIRNESS_ARTIFACT_DIR}/{_key(self.attribute).replace('/', '_')}.json")
        return run_id


def _plain_label(label: Any) -> Any:
    return label.item() if hasattr(label, "item") else label


def _json_value(value: Any) -> Any:
    """A table cell as JSON: numpy scalars as Python ones, NaN as ``None``."""
    value = _plain_label(value)
    return _finite(value) if isinstance(value, float) else value


def _run_of(model_uri: str) -> str | None:
    from workbench.registry import lineage, registered_version

    if registered_version(model_uri) is None:
        return None
    return lineage(model_uri).run_id


def _as_array(values: Any, what: str) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be one-dimensional (one value per row), got shape {array.shape}")
    return array


def fairness_report(
    y_true: Any,
    y_pred: Any,
    sensitive_features: Any,
    *,
    pos_label: Any = 1,
    attribute: str | None = None,
    model_uri: str | None = None,
    log: bool = False,
) -> FairnessReport:
    """Group fairness of predicted labels ``y_pred`` against ``y_true`` across ``sensitive_features``.

    ``sensitive_features`` is one value per row (a Series, array or list), or a DataFrame whose
    columns are intersected (``sex`` x ``race``). ``pos_label`` is the favourable decision (the one
    whose rate is compared). With ``log=True`` the report is logged to the run of ``model_uri``'s
    version (or the active run): metrics and ``fairness/<attribute>.json``, which model cards read.
    """
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    truth = _as_array(y_true, "y_true")
    predicted = _as_array(y_pred, "y_pred")
    if isinstance(sensitive_features, pd.DataFrame):
        sensitive: pd.Series | pd.DataFrame = sensitive_features.reset_index(drop=True)
        name = attribute or "+".join(map(str, sensitive.columns))
        missing = bool(sensitive.isna().any().any())
    else:
        values = _as_array(sensitive_features, "sensitive_features")
        name = attribute or (str(sensitive_features.name) if isinstance(sensitive_features, pd.Series)
                             and sensitive_features.name is not None else "sensitive")
        sensitive = pd.Series(values, name=name)
        missing = bool(sensitive.isna().any())
    if not (len(truth) == len(predicted) == len(sensitive)):
        raise InvalidInputError(
            f"y_true, y_pred and sensitive_features must have one value per row: got {len(truth)}, "
            f"{len(predicted)} and {len(sensitive)}"
        )
    if len(truth) == 0:
        raise InvalidInputError("no rows to evaluate: give at least one labelled prediction per group")
    if missing:
        raise InvalidInputError(
            "sensitive_features has missing values: fill them with an explicit group (e.g. 'not stated') first"
        )
    labels = set(pd.unique(truth)) | set(pd.unique(predicted))
    if len(set(pd.unique(predicted))) > 2:
        raise InvalidInputError(
            "y_pred has more than two distinct values: give predicted labels (threshold scores first, e.g. "
            "proba >= 0.5), not scores"
        )
    if pos_label not in labels:
        raise InvalidInputError(
            f"pos_label={pos_label!r} is not among the labels {sorted(map(str, labels))}: give the favourable label"
        )
    # Binarised once so fairlearn's rates, which count 1 as positive, follow pos_label.
    truth01 = (truth == pos_label).astype(int)
    pred01 = (predicted == pos_label).astype(int)

    def positives(yt: np.ndarray, yp: np.ndarray) -> float:
        return float(np.sum(yt))

    frame = MetricFrame(
        metrics={"count": count, "positives": positives, "selection_rate": selection_rate,
                 "true_positive_rate": true_positive_rate, "false_positive_rate": false_positive_rate,
                 "accuracy": accuracy_score},
        y_true=truth01, y_pred=pred01, sensitive_features=sensitive,
    )
    by_group = frame.by_group.reset_index()
    by_group["count"] = by_group["count"].astype(int)
    by_group["positives"] = by_group["positives"].astype(int)
    overall = {k: float(v) for k, v in frame.overall.items()}
    kwargs = {"sensitive_features": sensitive}
    report = FairnessReport(
        attribute=name,
        by_group=by_group,
        overall=MappingProxyType(overall),
        demographic_parity_difference=float(demographic_parity_difference(truth01, pred01, **kwargs)),
        demographic_parity_ratio=float(demographic_parity_ratio(truth01, pred01, **kwargs)),
        equalized_odds_difference=float(equalized_odds_difference(truth01, pred01, **kwargs)),
        equalized_odds_ratio=float(equalized_odds_ratio(truth01, pred01, **kwargs)),
        n_rows=int(len(truth)),
        pos_label=_plain_label(pos_label),
        model_uri=model_uri,
    )
    if log:
        report.log_to_mlflow()
    return report


def logged_fairness(model_uri: str) -> list[FairnessReport]:
    """The fairness reports logged (with ``log=True``) on the run of ``model_uri``'s version."""
    from workbench import _mlflow

    run_id = _run_of(model_uri)
    if run_id is None:
        return []
    client = _mlflow.client()
    reports = []
    with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
        files = [f for f in client.list_artifacts(run_id, FAIRNESS_ARTIFACT_DIR) if f.path.endswith(".json")]
        if not files:
            return []
        import mlflow.artifacts

        for item in sorted(files, key=lambda f: f.path):
            text = mlflow.artifacts.load_text(f"runs:/{run_id}/{item.path}")
            reports.append(FairnessReport.from_dict(json.loads(text)))
    return reports
