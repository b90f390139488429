"""The gateway stub's aiohttp application.

`POST /v1/charges` with `Authorization: Bearer <key>` creates a charge. With an
`Idempotency-Key`, a second request with the same key returns the original charge (200,
`Idempotent-Replayed: true`, as Stripe does) and creates nothing; without one, every
request is a new charge — which is how a retried call double-charges. `GET /v1/stats`
and `/metrics` expose the ledger the lab checks for double charges.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab.services.serving import metrics_response

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class ChargeRequest(BaseModel):
    """Body of `POST /v1/charges`; `order_ref` is the caller's reference (like Stripe's
    metadata), which lets the ledger count charges per checkout."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    amount_cents: int = Field(ge=1)
    currency: str = Field("eur", min_length=3, max_length=3)
    token: str = Field(min_length=1, max_length=256)
    order_ref: str = Field(min_length=1, max_length=128)


@dataclass
class Ledger:
    """Every charge created, and every attempt that replayed one."""

    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # charge id → charge
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key → charge id
    charges_per_ref: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    unauthorized: int = 0

    def stats(self) -> dict[str, int]:
        charged_refs = len(self.charges_per_ref)
        return {
            "charges": len(self.charges),
            "distinct_idempotency_keys": len(self.by_key),
            "duplicate_attempts": self.replays,
            "charged_order_refs": charged_refs,
            "double_charges": len(self.charges) - charged_refs,
            "unauthorized": self.unauthorized,
        }


class GatewayMetrics:
    def __init__(self, ledger: Ledger) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("payments_requests_total", "Charge requests, by outcome.",
                                ["outcome"], registry=self.registry)
        charges = Gauge("payments_charges", "Charges created.", registry=self.registry)
        charges.set_function(lambda: len(ledger.charges))
        replays = Gauge("payments_duplicate_attempts",
                        "Requests answered with an earlier charge (same Idempotency-Key).",
                        registry=self.registry)
        replays.set_function(lambda: ledger.replays)
        doubles = Gauge("payments_double_charges",
                        "Charges beyond the first for the same order_ref.", registry=self.registry)
        doubles.set_function(lambda: len(ledger.charges) - len(ledger.charges_per_ref))


LEDGER = web.AppKey("ledger", Ledger)
METRICS = web.AppKey("metrics", GatewayMetrics)


def build_app(api_key: str) -> web.Application:
    app = web.Application()
    ledger = Ledger()
    app[LEDGER] = ledger
    app[METRICS] = GatewayMetrics(ledger)
    expected = f"Bearer {api_key}".encode()

    async def create_charge(request: web.Request) -> web.Response:
        metrics = request.app[METRICS]
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            ledger.unauthorized += 1
            metrics.requests.labels("unauthorized").inc()
            return _error(401, "invalid_api_key", "No valid API key provided.")
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and key in ledger.by_key:
            ledger.replays += 1
            metrics.requests.labels("replayed").inc()
            return web.json_response(ledger.charges[ledger.by_key[key]],
                                     headers={REPLAYED_HEADER: "true"})
        try:
            body = ChargeRequest.model_validate(json.loads(await request.read()))
        except (ValueError, ValidationError) as exc:
            metrics.requests.labels("invalid").inc()
            return _error(400, "invalid_request", str(exc)[:300])
        charge_id = f"ch_{secrets.token_hex(8)}"
        charge: dict[str, Any] = {
            "id": charge_id,
            "object": "charge",
            "amount": body.amount_cents,
            "currency": body.currency,
            "status": "succeeded",
            "order_ref": body.order_ref,
            "created": int(time.time()),
        }
        ledger.charges[charge_id] = charge
        ledger.charges_per_ref[body.order_ref] = ledger.charges_per_ref.get(body.order_ref, 0) + 1
        if key is not None:
            ledger.by_key[key] = charge_id
        metrics.requests.labels("charged").inc()
        return web.json_response(charge, status=201)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(ledger.stats())

    async def charged_refs(_request: web.Request) -> web.Response:
        """Every order_ref charged, with how many times: what reconciliation reads."""
        return web.json_response(ledger.charges_per_ref)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        return metrics_response(request.app[METRICS].registry)

    app.router.add_post("/v1/charges", create_charge)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/v1/charged-refs", charged_refs)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", health)
    app.router.add_get("/metrics", metrics)
    return app


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": "invalid_request_error", "code": code,
                                        "message": message}}, status=status)
