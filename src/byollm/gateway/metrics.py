"""Prometheus metrics for the gateway, in a registry owned by the services (no global state).

Labels are identifiers only: the API, the host, the catalog model, the route's upstream id and the
taxonomy code. Never a token, key, credential, principal or prompt.

Why every label value comes from a closed set: ``/metrics`` is unauthenticated by default, and each distinct
label value is a time series kept for the process's life. A value taken from the request (a model name nobody
configured, 1 MB long) would let any caller grow the scrape, and the server's memory, without bound and
write their text into the operator's monitoring. So each label accepts only its known values (the APIs
byollm serves, the host registry, the catalog's model ids, the taxonomy codes, route names up to a bound)
and anything else is counted as ``other``. The wrapper sits in ``labels()``, so the call sites stay as they
are and cannot forget it.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from byollm.errors import ErrorClass
from byollm.policy.types import Host

__all__ = ["CONTENT_TYPE", "OTHER", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"
MAX_ROUTES = 512  # distinct route names kept as labels; routes come from admins' policies, not requests
MAX_ROUTE_LENGTH = 256

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1)

APIS = frozenset({"anthropic", "openai", "openai_responses"})
HOSTS = frozenset({h.value for h in Host} | {"none"})
CODES = frozenset({c.code for c in ErrorClass} | {"ok"})
STREAM = frozenset({"true", "false"})


class _RouteNames:
    """Route names (``host:upstream-id``) seen so far, up to ``MAX_ROUTES``; later new ones are ``other``."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str) or len(value) > MAX_ROUTE_LENGTH or value.split(":", 1)[0] not in HOSTS:
            return False
        if value in self._seen:
            return True
        if len(self._seen) >= MAX_ROUTES:
            return False
        self._seen.add(value)
        return True


Allowed = Container[str]


class _Closed:
    """A labelled metric whose ``labels(...)`` maps every value outside its label's closed set to ``other``."""

    def __init__(self, metric: Any, allowed: tuple[Allowed | Callable[[], Allowed], ...]) -> None:
        self._metric = metric
        self._allowed = allowed

    def labels(self, *values: str) -> Any:
        closed = []
        for value, allowed in zip(values, self._allowed, strict=True):
            known = allowed() if callable(allowed) else allowed
            closed.append(value if value in known else OTHER)
        return self._metric.labels(*closed)


class GatewayMetrics:
    def __init__(self, models: Allowed | Callable[[], Allowed] = frozenset()) -> None:
        """``models``: the catalog's model ids (or a callable returning them, for a catalog that changes)."""
        self.registry = CollectorRegistry(auto_describe=True)
        routes = _RouteNames()
        self.requests = _Closed(Counter(
            "byollm_requests", "Inference requests by API, serving host, model and outcome code",
            ["api", "host", "model", "code"], registry=self.registry,
        ), (APIS, HOSTS, models, CODES))
        self.attempts = _Closed(Counter(
            "byollm_upstream_attempts", "Upstream attempts by host, route and outcome code",
            ["host", "route", "code"], registry=self.registry,
        ), (HOSTS, routes, CODES))
        self.latency = _Closed(Histogram(
            "byollm_request_duration_seconds", "End-to-end request duration by API and serving host",
            ["api", "host"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        ), (APIS, HOSTS))
        self.overhead = _Closed(Histogram(
            "byollm_gateway_overhead_seconds", "Time spent in byollm itself (upstream excluded)",
            ["api", "stream"], buckets=_OVERHEAD_BUCKETS, registry=self.registry,
        ), (APIS, STREAM))
        self.log_pending = Gauge(
            "byollm_request_log_pending", "Request-log rows waiting to be written", registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
