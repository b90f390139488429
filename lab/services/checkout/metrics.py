"""Prometheus metrics for one app instance, on a private `CollectorRegistry`.

A per-app registry (not the process-global one) lets tests and the bench build several
apps in one process without duplicate-metric errors. Pool gauges are computed at scrape
time from the `Database` wrapper, so they show the queue the moment the lab samples it —
the *cause* of the incident, next to the 500s' symptom.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .cache import CacheFigures

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
    @property
    def pressure_seconds(self) -> float: ...


class _PoolCollector(Collector):
    """Reads pool figures when scraped; silent until the pool exists."""

    def __init__(self, source: Callable[[], PoolStats | None]) -> None:
        self._source = source

    _GAUGES = (
        ("checkout_db_pool_max", "Configured maximum pool size.", "max_size"),
        ("checkout_db_pool_size", "Connections currently open in the pool.", "size"),
        ("checkout_db_pool_in_use", "Connections handed out to requests.", "in_use"),
        ("checkout_db_pool_waiting", "Requests blocked waiting for a pool connection.", "waiting"),
        ("checkout_db_pool_pressure_seconds",
         "How long requests have waited, or use has stayed above the readiness share, "
         "without a break (0: not now). Readiness fails past its grace period.",
         "pressure_seconds"),
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


class CacheStats(Protocol):
    """What the catalog cache's metrics read; `cache.RecomputingCache` provides it."""

    figures: CacheFigures


class _CacheCollector(Collector):
    """Recompute figures of the catalog cache, read when scraped: the stampede's evidence."""

    def __init__(self, source: Callable[[], CacheStats | None]) -> None:
        self._source = source

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("checkout_catalog_cache_recomputes", "")
        yield CounterMetricFamily("checkout_catalog_cache_recompute_failures", "")
        yield GaugeMetricFamily("checkout_catalog_cache_recomputes_in_progress", "")
        yield GaugeMetricFamily("checkout_catalog_cache_recomputes_in_progress_peak", "")
        yield CounterMetricFamily("checkout_catalog_cache_requests", "", labels=["result"])

    def collect(self) -> Iterator[Metric]:
        stats = self._source()
        if stats is None:
            return
        f = stats.figures
        yield CounterMetricFamily(
            "checkout_catalog_cache_recomputes",
            "Recomputes of the catalog's price list started (cache misses that ran the query).",
            value=f.recomputes,
        )
        yield CounterMetricFamily(
            "checkout_catalog_cache_recompute_failures",
            "Recomputes that raised (e.g. no pool connection in time).",
            value=f.recompute_failures,
        )
        yield GaugeMetricFamily(
            "checkout_catalog_cache_recomputes_in_progress",
            "Recomputes running now, waiting for a pool connection included.",
            value=f.in_progress,
        )
        yield GaugeMetricFamily(
            "checkout_catalog_cache_recomputes_in_progress_peak",
            "The most recomputes that ever ran at once (a high-water mark, so 1 Hz sampling "
            "cannot miss a short stampede).",
            value=f.peak_in_progress,
        )
        served = CounterMetricFamily(
            "checkout_catalog_cache_requests",
            "Catalog requests by how the cache served them: hit, miss (recomputed), waited "
            "(for another request's recompute), stale, early (XFetch refresh).",
            labels=["result"],
        )
        for result, count in sorted(f.served.items()):
            served.add_metric([result], count)
        yield served


class DataDirStats(Protocol):
    """What the data-directory metrics read; `datadir.DataDir` provides it."""

    @property
    def write_failures(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def receipts_written(self) -> int: ...
    @property
    def log_bytes_written(self) -> int: ...
    def log_bytes_on_disk(self) -> int: ...
    def usage(self) -> _Usage: ...


class _Usage(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def free(self) -> int: ...
    @property
    def used(self) -> float: ...


class _DataDirCollector(Collector):
    """The data volume's fill and the writes that failed on it, read when scraped."""

    def __init__(self, source: Callable[[], DataDirStats | None]) -> None:
        self._source = source

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("checkout_data_disk_size_bytes", "")
        yield GaugeMetricFamily("checkout_data_disk_free_bytes", "")
        yield GaugeMetricFamily("checkout_data_disk_used_ratio", "")
        yield CounterMetricFamily("checkout_data_write_failures", "", labels=["file", "reason"])
        yield CounterMetricFamily("checkout_receipts_written", "")
        yield CounterMetricFamily("checkout_log_bytes_written", "")
        yield GaugeMetricFamily("checkout_log_file_bytes", "")

    def collect(self) -> Iterator[Metric]:
        stats = self._source()
        if stats is None:
            return
        try:
            usage = stats.usage()
        except OSError:
            usage = None
        if usage is not None:
            yield GaugeMetricFamily(
                "checkout_data_disk_size_bytes", "Size of the data directory's filesystem.",
                value=usage.total,
            )
            yield GaugeMetricFamily(
                "checkout_data_disk_free_bytes", "Bytes still free on it (statvfs f_bavail).",
                value=usage.free,
            )
            yield GaugeMetricFamily(
                "checkout_data_disk_used_ratio", "Share of it in use, 0..1.", value=usage.used
            )
        failures = CounterMetricFamily(
            "checkout_data_write_failures",
            "Writes to the data directory that failed, by file (receipt, log) and errno name.",
            labels=["file", "reason"],
        )
        for (file, reason), count in sorted(stats.write_failures.items()):
            failures.add_metric([file, reason], count)
        yield failures
        yield CounterMetricFamily(
            "checkout_receipts_written", "Receipts appended to the journal.",
            value=stats.receipts_written,
        )
        yield CounterMetricFamily(
            "checkout_log_bytes_written", "Bytes the service's log file accepted since start.",
            value=stats.log_bytes_written,
        )
        yield GaugeMetricFamily(
            "checkout_log_file_bytes",
            "Bytes the log file takes on disk now, rotated backups included: grows without "
            "bound unless LOG_MAX_BYTES is set.",
            value=stats.log_bytes_on_disk(),
        )


@dataclass(frozen=True, slots=True)
class ServiceMetrics:
    """The service's metric objects, all registered on `registry`."""

    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    unhandled_errors: Counter
    dependency_failures: Counter

    @classmethod
    def create(
        cls,
        pool_source: Callable[[], PoolStats | None],
        *,
        cache_source: Callable[[], CacheStats | None] | None = None,
        data_source: Callable[[], DataDirStats | None] | None = None,
    ) -> ServiceMetrics:
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
        if cache_source is not None:
            registry.register(_CacheCollector(cache_source))
        if data_source is not None:
            registry.register(_DataDirCollector(data_source))
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
