"""Assembles the checkout aiohttp application and serves it.

Middleware order, outermost first: metrics (sees the final status of every response,
errors included), errors (turns every exception into a problem response), sessions
(touches the session on arrival, before any waiting for the database).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import disable_created_metrics

from .config import CheckoutConfig, redact_dsn
from .db import Database
from .handlers import (
    CONFIG,
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
INSTANCE_HEADER = "X-Instance"


class StartupError(Exception):
    """The service could not start (e.g. Postgres unreachable); `var` names the culprit."""

    def __init__(self, var: str, message: str) -> None:
        self.var = var
        super().__init__(f"STARTUP_FAILURE: {var}: {message}")


def build_app(config: CheckoutConfig, log: JsonLog) -> web.Application:
    """The application, with the pool opened on startup and closed on cleanup."""
    app = web.Application()
    sessions = SessionStore(config.session_ttl_s)
    service_metrics = ServiceMetrics.create(lambda: app.get(DB))
    app.middlewares.extend(
        [
            service_metrics.middleware(),
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
    app[SESSIONS] = sessions
    app[METRICS] = service_metrics

    app.router.add_post(CHECKOUT_ROUTE, complete_checkout)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics)

    async def add_instance_header(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers[INSTANCE_HEADER] = config.instance

    app.on_response_prepare.append(add_instance_header)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_payments_ctx)
    app.cleanup_ctx.append(_session_sweeper_ctx)

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
