"""HTTP handlers: checkout, readiness, liveness and metrics, plus the app-state keys they use.

The checkout is written the way the incident's code was: one pooled connection held for
the whole request, the cart lookup by `cart_id` (a sequential scan once the index is
gone), and the session read *after* the database work, without a None check.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import CheckoutConfig
from .datadir import DataDir
from .datalog import LOG_FIELDS
from .db import Database, fetch_cart_items, fetch_stock, insert_order, insert_pending_order
from .metrics import ServiceMetrics
from .payments import PaymentClient
from .problems import DependencyUnavailable, problem_response
from .sessions import SESSION_ID, SessionStore

INT8_MAX = 2**63 - 1  # ids are bigint columns: anything larger would be a driver error

CONFIG = web.AppKey("config", CheckoutConfig)
DB = web.AppKey("db", Database)
SESSIONS = web.AppKey("sessions", SessionStore)
METRICS = web.AppKey("metrics", ServiceMetrics)
PAYMENTS = web.AppKey("payments", PaymentClient)
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Present only when DATA_DIR is set.
DATA = web.AppKey("data_dir", DataDir)


class CheckoutRequest(BaseModel):
    """Body of `POST /api/checkout/complete`; strict so `"7"` or `true` is not an id."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    cart_id: int = Field(ge=1, le=INT8_MAX)
    user_id: int = Field(ge=1, le=INT8_MAX)
    payment_token: str = Field(min_length=1, max_length=256)


def _bad_request(errors: list[dict[str, str]]) -> web.Response:
    return problem_response(
        400,
        title="Invalid request body",
        detail="; ".join(f"{e['field']}: {e['message']}" for e in errors),
        errors=errors,
    )


async def _parse_checkout(request: web.Request) -> CheckoutRequest | web.Response:
    """The validated body, or a 400 problem listing every field error."""
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad_request([{"field": "(body)", "message": f"invalid JSON: {exc}"}])
    try:
        return CheckoutRequest.model_validate(payload)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "message": err["msg"],
            }
            for err in exc.errors(include_url=False)
        ]
        return _bad_request(errors)


async def complete_checkout(request: web.Request) -> web.Response:
    """Turn a cart into a confirmed order."""
    parsed = await _parse_checkout(request)
    if isinstance(parsed, web.Response):
        return parsed
    db = request.app[DB]
    sessions = request.app[SESSIONS]
    payments = request.app.get(PAYMENTS)
    if payments is not None and not request.app[CONFIG].payments.fallback:
        payments.fail_fast()  # an open breaker refuses before any work (the fallback needs it)

    async with db.connection() as conn:
        items = await fetch_cart_items(conn, parsed.cart_id)
        if not items:
            raise web.HTTPNotFound(text=f"Cart {parsed.cart_id} does not exist or is empty.")
        stock = await fetch_stock(conn, [item.sku for item in items])
        short = sorted({i.sku for i in items if stock.get(i.sku, 0) < i.qty})
        if short:
            return problem_response(
                409, detail=f"Not enough stock for {', '.join(short)}.", skus=short
            )
        total_cents = sum(item.qty * item.unit_price_cents for item in items)

        # The order belongs to the session's user. This is the incident's code, kept as
        # it was on purpose: its author assumed the session outlives the request (the
        # middleware touched it on arrival) and silenced mypy. A request that waited for
        # a connection longer than the session TTL finds it expired, `get` returns None
        # and the next line raises AttributeError — the symptom in the stack trace, while
        # the pool metrics show the cause. The lab reproduces it; do not "fix" it here.
        session = sessions.get(request.get(SESSION_ID, ""))
        user_id = session.user_id  # type: ignore[union-attr]  # middleware created it

        # Charge between the inventory check and the order insert, still holding the
        # pooled connection (as the incident's code did): a slow gateway holds it too.
        order_ref: str | None = None
        if payments is not None:
            order_ref = request.headers.get(IDEMPOTENCY_HEADER) or uuid.uuid4().hex
            try:
                await payments.charge(amount_cents=total_cents, token=parsed.payment_token,
                                      order_ref=order_ref)
            except DependencyUnavailable as exc:
                settings = request.app[CONFIG].payments
                if settings.fallback:
                    order_id = await insert_pending_order(
                        conn, cart_id=parsed.cart_id, user_id=user_id,
                        total_cents=total_cents, order_ref=order_ref,
                    )
                    return web.json_response(
                        {"order_id": order_id, "status": "payment_pending",
                         "total_cents": total_cents,
                         "detail": "Order accepted; the payment will be captured later."},
                        status=202,
                    )
                if settings.swallow_errors:
                    # The anti-pattern the lab must catch: a failure dressed as a 200.
                    return web.json_response(
                        {"order_id": None, "status": "failed", "error": str(exc)}, status=200
                    )
                raise

        order_id = await insert_order(
            conn, cart_id=parsed.cart_id, user_id=user_id, total_cents=total_cents,
            order_ref=order_ref,
        )
    request[LOG_FIELDS] = {
        "order_id": order_id,
        "cart_id": parsed.cart_id,
        "total_cents": total_cents,
        "items": [[i.sku, i.qty, i.unit_price_cents] for i in items],
    }
    body: dict[str, Any] = {"order_id": order_id, "status": "CONFIRMED", "total_cents": total_cents}
    data = request.app.get(DATA)
    if data is not None:
        body.update(_write_receipt(request, data, order_id, parsed, user_id, total_cents))
    return web.json_response(body, status=201)


def _write_receipt(
    request: web.Request,
    data: DataDir,
    order_id: int,
    order: CheckoutRequest,
    user_id: int,
    total_cents: int,
) -> dict[str, Any]:
    """Append the order's receipt; the order is already committed whatever happens here.

    With the incident's setting the write's OSError (ENOSPC on a full disk) propagates and
    the client gets a 500 for an order that exists. With DEGRADE_RECEIPT_WRITES the
    receipt is treated as non-critical: the answer stays 201, marked degraded.
    """
    receipt = {
        "order_id": order_id,
        "cart_id": order.cart_id,
        "user_id": user_id,
        "total_cents": total_cents,
        "currency": "EUR",
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    try:
        data.receipts.append(receipt)
    except OSError as exc:
        data.failures.record("receipt", exc)
        if not request.app[CONFIG].degrade_receipt_writes:
            raise
        return {"degraded": True, "degraded_reasons": ["receipt_not_written"]}
    return {}


async def health(request: web.Request) -> web.Response:
    """Readiness: config, Postgres reachable (outside the pool), pool pressure, and with
    DATA_DIR the data volume's fill."""
    config = request.app[CONFIG]
    db = request.app[DB]
    ready = True
    checks: dict[str, Any] = {"config": {"status": "pass"}}
    missing = config.config_checks.missing
    if missing:
        gated = config.config_checks.readiness_checks_config
        ready = not gated
        checks["config"] = {"status": "fail" if gated else "warn", "missing": list(missing)}

    try:
        latency_s = await db.probe()
        checks["postgres"] = {"status": "pass", "latency_ms": round(latency_s * 1000, 2)}
    except DependencyUnavailable as exc:
        ready = False
        checks["postgres"] = {"status": "fail", "reason": exc.reason, "detail": exc.detail}

    pool = db.snapshot()
    threshold = config.readiness_max_pool_use
    grace_s = config.readiness_pool_grace_ms / 1000
    # Under pressure (use above the threshold, or requests waiting) for the whole grace
    # period: a burst that drains in milliseconds would only make the router flap.
    saturated = threshold > 0 and pool.pressure_s is not None and pool.pressure_s >= grace_s
    ready = ready and not saturated
    checks["pool"] = {
        "status": "fail" if saturated else "pass",
        "size": pool.size,
        "max": pool.max,
        "in_use": pool.in_use,
        "waiting": pool.waiting,
        "use": round(pool.use, 3),
        "threshold": threshold if threshold > 0 else None,
        "pressure_ms": None if pool.pressure_s is None else round(pool.pressure_s * 1000),
        "grace_ms": config.readiness_pool_grace_ms if threshold > 0 else None,
    }

    payments = request.app.get(PAYMENTS)
    if payments is not None and payments.breaker is not None:
        # Reported, not gated on: an open breaker is this instance coping with the gateway,
        # and taking every instance out of rotation for it would turn a partial outage
        # into a total one.
        state = payments.breaker.state
        checks["payments_breaker"] = {
            "status": "pass" if state == "closed" else "warn",
            "state": str(state),
            "consecutive_failures": payments.breaker.consecutive_failures,
        }
    data = request.app.get(DATA)
    if data is not None:
        volume_ok, checks["data_volume"] = _data_volume_check(data, config.readiness_max_disk_use)
        ready = ready and volume_ok

    body = {
        "status": "ready" if ready else "unavailable",
        "instance": config.instance,
        "checks": checks,
    }
    if ready:
        return web.json_response(body)
    return web.json_response(body, status=503, headers={"Retry-After": str(config.retry_after_s)})


def _data_volume_check(data: DataDir, threshold: float) -> tuple[bool, dict[str, Any]]:
    """The data volume's fill; failing above `threshold` (0 = reported, never failing)."""
    try:
        usage = data.usage()
    except OSError as exc:
        return threshold <= 0, {"status": "fail", "reason": str(exc)}
    full = threshold > 0 and usage.used > threshold
    return not full, {
        "status": "fail" if full else "pass",
        "size_bytes": usage.total,
        "free_bytes": usage.free,
        "used": round(usage.used, 4),
        "threshold": threshold if threshold > 0 else None,
    }


async def livez(request: web.Request) -> web.Response:
    """Liveness: the event loop answers. Never touches the database."""
    return web.json_response({"status": "alive", "instance": request.app[CONFIG].instance})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's registry."""
    body, content_type = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
