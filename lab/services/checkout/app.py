"""Assembles the checkout aiohttp application and serves it.

Middleware order, outermost first: metrics (sees the final status of every response,
errors included), the access log in DATA_DIR when set (same reason), errors (turns every
exception into a problem response), sessions (touches the session on arrival, before any
waiting for the database).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import disable_created_metrics

from .cache import RecomputingCache
from .catalog import (
    CATALOG_CACHE,
    PRICES_KEY,
    cache_expire,
    cache_state,
    catalog_prices,
    compute_prices,
)
from .config import CheckoutConfig, redact_dsn
from .datadir import DataDir
from .datalog import make_access_log_middleware
from .db import Database
from .handlers import (
    CONFIG,
    DATA,
    DB,
    METRICS,
    PAYMENTS,
    SESSIONS,
    complete_checkout,
    health,
    livez,
    metrics,
)
from .logs import JsonLog
from .metrics import ServiceMetrics
from .payments import PaymentClient
from .problems import make_error_middleware
from .sessions import SessionStore, make_session_middleware

CHECKOUT_ROUTE = "/api/checkout/complete"
CATALOG_ROUTE = "/api/catalog/prices"
INSTANCE_HEADER = "X-Instance"
LOG = web.AppKey("log", JsonLog)


class StartupError(Exception):
    """The service could not start (e.g. Postgres unreachable); `var` names the culprit."""

    def __init__(self, var: str, message: str) -> None:
        self.var = var
        super().__init__(f"STARTUP_FAILURE: {var}: {message}")


def build_app(config: CheckoutConfig, log: JsonLog) -> web.Application:
    """The application, with the pool opened on startup and closed on cleanup."""
    app = web.Application()
    sessions = SessionStore(config.session_ttl_s)
    catalog_cache = RecomputingCache[bytes](
        config.catalog_cache_strategy,
        config.catalog_cache_ttl_ms / 1000,
        max_stale_s=config.catalog_cache_max_stale_ms / 1000,
        beta=config.catalog_xfetch_beta,
    )
    data_dir = None
    if config.data_dir is not None:
        data_dir = DataDir(
            config.data_dir,
            log=log,
            failure_interval_s=config.write_failure_log_interval_ms / 1000,
            max_log_bytes=config.log_max_bytes,
            log_backups=config.log_backups,
        )
        app[DATA] = data_dir
    service_metrics = ServiceMetrics.create(
        lambda: app.get(DB), cache_source=lambda: catalog_cache, data_source=lambda: data_dir
    )
    app.middlewares.append(service_metrics.middleware())
    if data_dir is not None:
        app.middlewares.append(make_access_log_middleware(data_dir.log, config.instance))
    app.middlewares.extend(
        [
            make_error_middleware(
                log=log,
                metrics=service_metrics,
                errors_as_503=config.db_errors_as_503,
                retry_after_s=config.retry_after_s,
                payment_errors_as_503=config.payments.errors_as_503,
            ),
            make_session_middleware(sessions),
        ]
    )
    app[CONFIG] = config
    app[LOG] = log
    app[SESSIONS] = sessions
    app[METRICS] = service_metrics
    app[CATALOG_CACHE] = catalog_cache

    app.router.add_post(CHECKOUT_ROUTE, complete_checkout)
    app.router.add_get(CATALOG_ROUTE, catalog_prices)
    app.router.add_get("/admin/cache", cache_state)
    app.router.add_post("/admin/cache/expire", cache_expire)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics)

    async def add_instance_header(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers[INSTANCE_HEADER] = config.instance

    app.on_response_prepare.append(add_instance_header)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_payments_ctx)
    app.cleanup_ctx.append(_catalog_ctx)
    app.cleanup_ctx.append(_session_sweeper_ctx)
    if data_dir is not None:
        app.cleanup_ctx.append(_data_dir_ctx)

    async def log_stopped(_app: web.Application) -> None:
        log.info("stopped")

    app.on_cleanup.append(log_stopped)
    return app


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    try:
        db = await Database.open(
            config.database_url,
            min_size=config.db_pool_min,
            max_size=config.db_pool_max,
            acquire_timeout_s=config.acquire_timeout_s,
            server_settings=config.server_settings,
            pressure_use=config.readiness_max_pool_use,
        )
    except (TimeoutError, OSError) as exc:
        raise StartupError(
            "DATABASE_URL",
            f"cannot connect to {redact_dsn(config.database_url)} ({type(exc).__name__}: {exc})",
        ) from exc
    except Exception as exc:  # asyncpg's own errors: bad password, missing database...
        raise StartupError(
            "DATABASE_URL",
            f"cannot use {redact_dsn(config.database_url)} ({type(exc).__name__}: {exc})",
        ) from exc
    app[DB] = db
    yield
    await db.close(timeout_s=max(config.shutdown_timeout_s, 0.1))


async def _payments_ctx(app: web.Application) -> AsyncIterator[None]:
    """The gateway client (when PAYMENT_URL is set), its connection pool and metrics."""
    config = app[CONFIG]
    if config.payments.url is None:
        yield
        return
    async with aiohttp.ClientSession() as http:
        app[PAYMENTS] = PaymentClient(config, http, app[METRICS].registry)
        yield


async def _catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Warm the price list before the port is bound, so the first users all hit; a failure
    here is not fatal (the first request recomputes), only logged."""
    cache, db = app[CATALOG_CACHE], app[DB]
    try:
        await cache.warm(PRICES_KEY, lambda: compute_prices(db))
    except Exception as exc:
        app[LOG].warning("catalog_warm_failed", exception=type(exc).__name__, message=str(exc))
    yield
    await cache.close()


async def _data_dir_ctx(app: web.Application) -> AsyncIterator[None]:
    data_dir = app[DATA]
    task = asyncio.create_task(data_dir.failures.run_flusher(), name="write-failure-flusher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    data_dir.close()


async def _session_sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SESSIONS].run_sweeper(), name="session-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def serve(config: CheckoutConfig, log: JsonLog) -> None:
    """Run until SIGTERM/SIGINT; the pool is opened before the port is bound.

    Raises StartupError when the database cannot be reached or the port cannot be bound.
    """
    # `*_created` series are noise for the lab's sampler; this process is ours to configure.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
    app = build_app(config, log)

    def announce(*_args: Any, **_kwargs: Any) -> None:
        # aiohttp calls this once every site is bound; our one "started" line replaces
        # its banner on stdout.
        log.info("started", port=config.port, host=config.host, config=config.public())

    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            access_log=None,
            print=announce,
            handler_cancellation=False,  # a client disconnect does not cancel the work
            shutdown_timeout=config.shutdown_timeout_s,
        )
    except OSError as exc:  # only binding raises OSError out of run_app (DB errors are wrapped)
        raise StartupError(
            "CHECKOUT_PORT", f"cannot bind {config.host}:{config.port} ({exc.strerror or exc})"
        ) from exc
