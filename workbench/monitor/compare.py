"""Champion and challenger of a deployment side by side, on live traffic: what each version was
routed and logged, its errors and latency, what it predicted, and its input drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from workbench.deployment import TrafficPolicy, get_deployment
from workbench.monitor.drift import detect_drift
from workbench.predlog import log_rows, recent_records
from workbench.registry import load_profile

__all__ = ["VersionComparison", "compare_versions"]


@dataclass(frozen=True)
class VersionComparison:
    """Champion and challenger side by side, from the deployment's prediction logs and router."""

    deployment: str
    #: One column per version (``champion v3``, ``challenger v4``), one row per measure: requests,
    #: error rate, latency p50/p95 (ms), prediction mean, share of each predicted class, drifted
    #: feature share against the model's reference profile.
    table: pd.DataFrame
    traffic: Mapping[str, Any] | None

    def to_frame(self) -> pd.DataFrame:
        """The comparison table."""
        return self.table

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"deployment": self.deployment, "traffic": dict(self.traffic) if self.traffic else None,
                "table": {str(c): {str(k): (None if pd.isna(v) else v) for k, v in self.table[c].items()}
                          for c in self.table.columns}}

    def _repr_html_(self) -> str:
        from workbench.cards import card

        table = self.table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-")
        return card("Champion / challenger", self.deployment,
                    rows=[("traffic", TrafficPolicy.describe(self.traffic) or "champion only")], table=table)


def router_requests(url: str) -> dict[str, tuple[float, float]]:
    """(requests, server errors) per model version, from the router's Prometheus counters at ``url``
    (empty when the deployment has no router answering)."""
    try:
        text = httpx.get(f"{url}/workbench/router/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "router_requests":  # the parser drops a counter's ``_total``
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            entry = totals.setdefault(sample.labels.get("version", ""), [0.0, 0.0])
            entry[0] += sample.value
            if sample.labels.get("status_code", "200").startswith("5"):
                entry[1] += sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def compare_versions(name: str, *, window: int = 10_000) -> VersionComparison:
    """Latency, errors, predictions and input drift of the champion and the challenger of deployment
    ``name`` over the last ``window`` logged requests of each."""
    dep = get_deployment(name)
    records = recent_records(dep.log_sources, window * 2)
    errors = router_requests(dep.url)
    versions = [("champion", dep.model_version, dep.model_uri)]
    if dep.challenger_uri:
        versions.append(("challenger", dep.challenger_version, dep.challenger_uri))
    profile = load_profile(dep.model_uri)
    columns: dict[str, dict[str, Any]] = {}
    for role, version, uri in versions:
        mine = records[records["model_version"].astype(str) == str(version)].tail(window)
        column: dict[str, Any] = {"model_uri": uri, "requests logged": len(mine)}
        requests, failed = errors.get(str(version or ""), (float("nan"), float("nan")))
        column["requests routed"] = requests
        column["error rate"] = failed / requests if requests == requests and requests else float("nan")
        if len(mine):
            latency = mine["latency_ms"].astype(float)
            column["latency p50 ms"] = float(latency.quantile(0.5))
            column["latency p95 ms"] = float(latency.quantile(0.95))
            rows = log_rows(mine).frame
            if "predict" in rows.columns:
                column["prediction mean"] = float(pd.to_numeric(rows["predict"], errors="coerce").mean())
                shares = rows["predict"].astype(str).value_counts(normalize=True).head(10)
                column.update({f"share predicted {value}": float(share) for value, share in shares.items()})
            features = [f for f in profile.feature_names if f in rows.columns]
            if len(rows) >= 20 and features:
                column["drifted feature share"] = detect_drift(profile, rows[features], multivariate=False).share_drifted
        columns[f"{role} v{version}" if version else role] = column
    return VersionComparison(name, pd.DataFrame(columns), dep.traffic)
