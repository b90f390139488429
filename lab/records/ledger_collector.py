"""Reads a run's payment ledger off its stack (the database, the gateway stub) and the
client's request log, after the load stopped and before teardown; the figures are
lab.records.ledger's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg

from lab.errors import BackendError
from lab.load.request_log import RequestRecord
from lab.records.ledger import Order, figures
from lab.stack.base import Stack


async def collect_ledger(stack: Stack, records: Sequence[RequestRecord]) -> dict[str, int]:
    """The ledger figures; empty when the stack has no payment gateway."""
    gateway = stack.service("payments")
    if gateway is None:
        return {}
    try:
        # The database first, in one snapshot: an order is written only after its charge,
        # so every order read here was charged before the gateway is read below. (Read the
        # other way round, a checkout finishing in between would look confirmed and
        # never charged.)
        conn = await asyncpg.connect(stack.db_dsn, timeout=10)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                orders = [Order(int(r["id"]), r["order_ref"], str(r["status"]))
                          for r in await conn.fetch("SELECT id, order_ref, status FROM orders")]
                queued = [str(r["order_ref"]) for r in await conn.fetch(
                    "SELECT order_ref FROM payment_captures")]
        finally:
            await conn.close()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            stats = await _get(http, f"{gateway.base_url}/v1/stats")
            per_ref: dict[str, int] = await _get(http, f"{gateway.base_url}/v1/charged-refs")
    except (OSError, TimeoutError, aiohttp.ClientError, asyncpg.PostgresError) as exc:
        raise BackendError(f"could not read the payment ledger: {exc}") from exc
    fallbacks = sum(1 for r in records if r.cls == "fallback")
    return figures(per_ref, int(stats["duplicate_attempts"]), orders, queued, fallbacks)


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()
