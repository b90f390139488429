"""The run's payment ledger: what the gateway charged against what the shop recorded.

Collected once, after the load stopped and before teardown, from the gateway stub (its
charges per order reference) and the database (orders by status, the capture queue), and
the client-side request log (fallback answers the users got). The figures:

  charges               charges the gateway created
  double_charges        charges beyond the first for the same checkout (order_ref): what
                        retries without an idempotency key cause
  duplicate_attempts    attempts the gateway answered with an earlier charge (same key):
                        retries that were *not* charged twice
  confirmed_orders      orders confirmed (each was charged first)
  unmatched_charges     charges − confirmed orders: zero means "gateway charges == distinct
                        successful orders"
  charged_without_order checkouts charged but neither confirmed nor queued for capture:
                        the customer was told it failed and paid anyway
  pending_orders        orders accepted as payment pending (the fallback)
  fallback_responses    payment-pending answers the users received
  pending_unaccounted   of those, how many have no entry in the capture queue
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg

from lab.backends.base import Stack
from lab.errors import BackendError
from lab.load.request_log import RequestRecord


async def collect_ledger(stack: Stack, records: Sequence[RequestRecord]) -> dict[str, int]:
    """The ledger figures; empty when the stack has no payment gateway."""
    gateway = stack.service("payments")
    if gateway is None:
        return {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            stats = await _get(http, f"{gateway.base_url}/v1/stats")
            per_ref: dict[str, int] = await _get(http, f"{gateway.base_url}/v1/charged-refs")
        conn = await asyncpg.connect(stack.db_dsn, timeout=10)
        try:
            by_status = dict(await conn.fetch(
                "SELECT status, count(*) FROM orders GROUP BY status"))
            capture_refs = {r["order_ref"] for r in await conn.fetch(
                "SELECT order_ref FROM payment_captures")}
        finally:
            await conn.close()
    except (OSError, TimeoutError, aiohttp.ClientError, asyncpg.PostgresError) as exc:
        raise BackendError(f"could not read the payment ledger: {exc}") from exc
    return figures(stats, per_ref, by_status, capture_refs, records)


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


def figures(
    stats: dict[str, int],
    per_ref: dict[str, int],
    by_status: dict[str, int],
    capture_refs: set[str],
    records: Sequence[RequestRecord],
) -> dict[str, int]:
    charged = set(per_ref)
    confirmed = int(by_status.get("CONFIRMED", 0))
    pending = int(by_status.get("PAYMENT_PENDING", 0))
    fallbacks = sum(1 for r in records if r.cls == "fallback")
    charged_queued = len(charged & capture_refs)
    return {
        "charges": int(stats["charges"]),
        "double_charges": int(stats["charges"]) - len(charged),
        "duplicate_attempts": int(stats["duplicate_attempts"]),
        "confirmed_orders": confirmed,
        "unmatched_charges": int(stats["charges"]) - confirmed,
        "charged_without_order": max(0, len(charged) - confirmed - charged_queued),
        "pending_orders": pending,
        "fallback_responses": fallbacks,
        "pending_unaccounted": max(0, fallbacks - len(capture_refs)),
    }
