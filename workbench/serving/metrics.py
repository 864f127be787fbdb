"""Prometheus metrics of the inference server, named the way Seldon's MLServer and KServe name theirs.

Each server gets its own registry, so several servers in one process (tests) never share counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ServerMetrics:
    """The server's metric families; ``render()`` gives the ``/metrics`` body."""

    registry: CollectorRegistry
    requests: Counter
    request_duration: Histogram
    infer_success: Counter
    infer_failure: Counter
    infer_duration: Histogram
    batch_size: Histogram
    batch_rows: Histogram
    queue_depth: Gauge
    log_records: Counter
    log_failures: Counter
    #: (method, route template, status) -> its request counter and duration histogram, looked up once.
    _request_series: dict[tuple[str, str, int], tuple[Any, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls) -> ServerMetrics:
        """A fresh registry with every metric family registered."""
        r = CollectorRegistry(auto_describe=True)
        model = ["model_name", "model_version"]
        return cls(
            registry=r,
            requests=Counter(
                "rest_server_requests", "HTTP requests by route and status code",
                ["method", "path", "status_code"], registry=r,
            ),
            request_duration=Histogram(
                "rest_server_request_duration_seconds", "HTTP request duration by route",
                ["method", "path"], buckets=_LATENCY_BUCKETS, registry=r,
            ),
            infer_success=Counter(
                "model_infer_request_success", "Inference requests answered", model, registry=r,
            ),
            infer_failure=Counter(
                "model_infer_request_failure", "Inference requests refused or failed, by status code",
                [*model, "code"], registry=r,
            ),
            infer_duration=Histogram(
                "model_infer_request_duration_seconds", "Inference latency, request in to answer out",
                model, buckets=_LATENCY_BUCKETS, registry=r,
            ),
            batch_size=Histogram(
                "model_infer_batch_size", "Requests predicted together in one batch",
                model, buckets=_BATCH_BUCKETS, registry=r,
            ),
            batch_rows=Histogram(
                "model_infer_batch_rows", "Rows predicted together in one batch",
                model, buckets=_BATCH_BUCKETS, registry=r,
            ),
            queue_depth=Gauge(
                "batch_request_queue", "Requests waiting for the model", model, registry=r,
            ),
            log_records=Counter(
                "prediction_log_records", "Records committed to the prediction log", model, registry=r,
            ),
            log_failures=Counter(
                "prediction_log_failures", "Requests whose record could not be committed", model, registry=r,
            ),
        )

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count and time one HTTP request by its route template (never a raw path: bounded labels)."""
        series = self._request_series.get((method, path, status))
        if series is None:  # labels() costs microseconds a call: each series is looked up once
            series = self._request_series[method, path, status] = (
                self.requests.labels(method, path, str(status)), self.request_duration.labels(method, path))
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
