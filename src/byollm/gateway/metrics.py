"""Prometheus metrics for the gateway, in a registry owned by the services (no global state).

Labels are identifiers only: the API, the host, the catalog model, the route's upstream id and the
taxonomy code. Never a token, key, credential, principal or prompt.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "byollm_requests", "Inference requests by API, serving host, model and outcome code",
            ["api", "host", "model", "code"], registry=self.registry,
        )
        self.attempts = Counter(
            "byollm_upstream_attempts", "Upstream attempts by host, route and outcome code",
            ["host", "route", "code"], registry=self.registry,
        )
        self.latency = Histogram(
            "byollm_request_duration_seconds", "End-to-end request duration by API and serving host",
            ["api", "host"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.overhead = Histogram(
            "byollm_gateway_overhead_seconds", "Time spent in byollm itself (upstream excluded)",
            ["api", "stream"], buckets=_OVERHEAD_BUCKETS, registry=self.registry,
        )
        self.log_pending = Gauge(
            "byollm_request_log_pending", "Request-log rows waiting to be written", registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
