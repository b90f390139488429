"""Prometheus metrics for one app instance, on a private `CollectorRegistry`.

A per-app registry (not the process-global one) lets tests and the bench build several
apps in one process without duplicate-metric errors. Pool gauges are computed at scrape
time from the `Database` wrapper, so they show the queue the moment the lab samples it —
the *cause* of the incident, next to the 500s' symptom.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METRICS_PATH = "/metrics"


def route_template(request: web.Request) -> str:
    """The matched route's template (`/api/checkout/complete`), never the raw path, so
    label cardinality stays bounded whatever URLs clients send."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "<unmatched>"


class PoolStats(Protocol):
    """What the pool gauges read; `db.Database` provides it."""

    @property
    def max_size(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def in_use(self) -> int: ...
    @property
    def waiting(self) -> int: ...


class _PoolCollector(Collector):
    """Reads pool figures when scraped; silent until the pool exists."""

    def __init__(self, source: Callable[[], PoolStats | None]) -> None:
        self._source = source

    _GAUGES = (
        ("checkout_db_pool_max", "Configured maximum pool size.", "max_size"),
        ("checkout_db_pool_size", "Connections currently open in the pool.", "size"),
        ("checkout_db_pool_in_use", "Connections handed out to requests.", "in_use"),
        ("checkout_db_pool_waiting", "Requests blocked waiting for a pool connection.", "waiting"),
    )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Names only, so registering does not read a pool that does not exist yet."""
        for name, doc, _attr in self._GAUGES:
            yield GaugeMetricFamily(name, doc)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._source()
        if stats is None:
            return
        for name, doc, attr in self._GAUGES:
            yield GaugeMetricFamily(name, doc, value=getattr(stats, attr))


@dataclass(frozen=True, slots=True)
class ServiceMetrics:
    """The service's metric objects, all registered on `registry`."""

    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    unhandled_errors: Counter
    dependency_failures: Counter

    @classmethod
    def create(cls, pool_source: Callable[[], PoolStats | None]) -> ServiceMetrics:
        registry = CollectorRegistry(auto_describe=True)
        metrics = cls(
            registry=registry,
            requests=Counter(
                "checkout_requests_total",
                "HTTP requests answered, by route template, method and status.",
                ["route", "method", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "checkout_request_duration_seconds",
                "Time from request arrival to response, by route template.",
                ["route"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            unhandled_errors=Counter(
                "checkout_unhandled_errors_total",
                "Exceptions that became a 500, by exception class.",
                ["exception"],
                registry=registry,
            ),
            dependency_failures=Counter(
                "checkout_dependency_failures_total",
                "Known dependency failures (timeouts, refused connections), by reason.",
                ["dependency", "reason"],
                registry=registry,
            ),
        )
        registry.register(_PoolCollector(pool_source))
        return metrics

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition and its content type, for the /metrics handler."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def middleware(self) -> Middleware:
        """Count and time every request except scrapes of /metrics itself."""

        @web.middleware
        async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == METRICS_PATH:
                return await handler(request)
            route = route_template(request)
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.requests.labels(route, request.method, str(status)).inc()
                self.duration.labels(route).observe(time.perf_counter() - started)

        return metrics_middleware
