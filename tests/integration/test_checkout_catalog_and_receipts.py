"""The checkout's catalog endpoint, its cache admin, and its data directory, against a
real Postgres, as a real process (no load: the incidents' tests bring that)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lab.load.classify import classify_body
from lab.services.checkout.catalog import PRICES_QUERY
from lab.stack.postgres import PostgresServer
from tests.integration.conftest_checkout import http, running_postgres, running_service

CATALOG = "/api/catalog/prices"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with running_postgres(carts=3000) as server:
        yield server


def fetch(dsn: str, sql: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def recomputes(url: str) -> int:
    return int(http("GET", url + "/admin/cache").json()["recomputes"])


def test_price_list_is_the_aggregate_served_from_cache(pg: PostgresServer) -> None:
    expected = fetch(pg.dsn, PRICES_QUERY)
    with running_service(pg.dsn, CATALOG_CACHE_STRATEGY="single-flight") as svc:
        assert recomputes(svc.url) == 1  # warmed before the port was bound
        bodies = [http("GET", svc.url + CATALOG) for _ in range(20)]
        assert {b.status for b in bodies} == {200}
        assert len({b.body for b in bodies}) == 1
        skus = bodies[0].json()["skus"]
        assert [s["sku"] for s in skus] == [r["sku"] for r in expected]
        assert [s["units"] for s in skus] == [r["units"] for r in expected]
        assert len(skus) == 50
        assert recomputes(svc.url) == 1  # 20 hits, no recompute

        expired = http("POST", svc.url + "/admin/cache/expire", {"in_ms": 0})
        assert expired.status == 200
        assert expired.json()["strategy"] == "single-flight"
        assert expired.json()["entry"]["expires_in_s"] <= 0
        assert http("GET", svc.url + CATALOG).body == bodies[0].body
        state = http("GET", svc.url + "/admin/cache").json()
        assert state["recomputes"] == 2 and state["entry"]["expires_in_s"] > 59
        assert http("POST", svc.url + "/admin/cache/expire", {"key": "nope"}).status == 404
        assert http("POST", svc.url + "/admin/cache/expire", {"in_ms": -1}).status == 400
        assert http("POST", svc.url + "/admin/cache/expire", [1]).status == 400
        metrics = http("GET", svc.url + "/metrics").body.decode()
        assert "checkout_catalog_cache_recomputes_total 2.0" in metrics
        assert 'checkout_catalog_cache_requests_total{result="hit"} 20.0' in metrics


def test_receipts_and_the_access_log_land_in_the_data_dir(pg: PostgresServer) -> None:
    with tempfile.TemporaryDirectory(prefix="chaoslab-data-") as data_dir:
        with running_service(pg.dsn, DATA_DIR=data_dir) as svc:
            orders = []
            for cart in (11, 12, 13):
                resp = http("POST", svc.url + "/api/checkout/complete",
                            {"cart_id": cart, "user_id": cart, "payment_token": "tok"},
                            headers={"X-Session-Id": f"s-{cart}", "Authorization": "secret"})
                assert resp.status == 201
                assert "degraded" not in resp.json()
                orders.append(resp.json())
            health = http("GET", svc.url + "/health").json()
        receipts = [json.loads(x) for x in Path(data_dir, "receipts.jsonl").read_text()
                    .splitlines()]
        log = [json.loads(x) for x in Path(data_dir, "checkout.log").read_text().splitlines()]
    assert [(r["order_id"], r["total_cents"]) for r in receipts] == [
        (o["order_id"], o["total_cents"]) for o in orders]
    assert [(e["status"], e["order_id"]) for e in log] == [(201, o["order_id"]) for o in orders]
    assert log[0]["headers"]["Authorization"] == "<redacted>"
    assert len(log[0]["items"]) == 10
    volume = health["checks"]["data_volume"]
    assert volume["status"] == "pass" and volume["threshold"] is None
    assert volume["size_bytes"] > 0


def test_a_degraded_checkout_is_an_honest_fallback() -> None:
    body = json.dumps({"order_id": 7, "status": "CONFIRMED", "degraded": True,
                       "degraded_reasons": ["receipt_not_written"]}).encode()
    assert classify_body(201, "application/json", body) == "fallback"
