"""The checkout service against a real Postgres, run as a real process.

Covers the incident's whole chain (a held connection, a queue for the pool, an expired
session, an AttributeError logged with an errorId) and each mitigation switch the lab
relies on (acquire timeout, statement timeout, 503 mapping, readiness threshold).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.services.checkout.schema import CART_ITEMS_INDEX
from lab.stack.postgres import PostgresServer
from lab.system.ports import free_port
from lab.system.processes import python_env
from tests.integration.conftest_checkout import (
    ServiceProcess,
    http,
    running_postgres,
    running_service,
    start_service_process,
)

pytestmark = pytest.mark.integration

CHECKOUT = "/api/checkout/complete"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def shared_service(pg: PostgresServer) -> Iterator[ServiceProcess]:
    """One service for the read-only tests, so they do not each pay a start-up."""
    with running_service(pg.dsn, CHECKOUT_INSTANCE="checkout-shared") as svc:
        yield svc


def body(cart_id: int, user_id: int | None = None) -> dict[str, Any]:
    return {"cart_id": cart_id, "user_id": user_id or cart_id, "payment_token": "tok_visa"}


def samples(svc: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics keyed by (name, sorted labels)."""
    text = http("GET", svc.url + "/metrics").body.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def metric(svc: ServiceProcess, name: str, **labels: str) -> float:
    return samples(svc).get((name, tuple(sorted(labels.items()))), 0.0)


def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@asynccontextmanager
async def locked_cart_items(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold ACCESS EXCLUSIVE on cart_items until the block ends (the 'slow query')."""
    conn = await asyncpg.connect(dsn)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("LOCK TABLE cart_items IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def blocked_on_lock(lock_conn: asyncpg.Connection, n: int = 1) -> bool:
    waiting = await lock_conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
    return bool(waiting >= n)


async def post(
    client: aiohttp.ClientSession, url: str, cart_id: int, session_id: str
) -> tuple[int, dict[str, str], Any]:
    async with client.post(
        url + CHECKOUT, json=body(cart_id), headers={"X-Session-Id": session_id}
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def health(client: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with client.get(url + "/health") as resp:
        return resp.status, await resp.json()


# -- happy path and input handling ------------------------------------------------------------


def test_checkout_confirms_and_persists_order(pg: PostgresServer) -> None:
    with running_service(pg.dsn) as svc:
        resp = http("POST", svc.url + CHECKOUT, body(42), headers={"X-Session-Id": "s-42"})
        assert resp.status == 201, resp.body
        assert resp.headers["X-Instance"] == "checkout-1"
        data = resp.json()
        assert data["status"] == "CONFIRMED"
        expected_total = fetchval(
            pg.dsn, "SELECT sum(qty * unit_price_cents) FROM cart_items WHERE cart_id = 42"
        )
        assert data["total_cents"] == expected_total
        row = fetchval(
            pg.dsn,
            "SELECT row(cart_id, user_id, total_cents, status)::text FROM orders WHERE id = $1",
            data["order_id"],
        )
        assert row == f"(42,42,{expected_total},CONFIRMED)"

        missing = http("POST", svc.url + CHECKOUT, body(10**9))
        assert missing.status == 404
        assert missing.headers["Content-Type"].startswith(PROBLEM_JSON)
        assert missing.json()["status"] == 404


@pytest.mark.parametrize(
    ("payload", "raw", "fields"),
    [
        (None, b"{not json", ["(body)"]),
        ([1, 2], None, ["(body)"]),
        ({}, None, ["cart_id", "user_id", "payment_token"]),
        (
            {"cart_id": "7", "user_id": True, "payment_token": 5},
            None,
            ["cart_id", "user_id", "payment_token"],
        ),
        ({"cart_id": 0, "user_id": 1, "payment_token": "t"}, None, ["cart_id"]),
        ({"cart_id": 2**63, "user_id": 1, "payment_token": "t"}, None, ["cart_id"]),
        ({"cart_id": 1.5, "user_id": 1, "payment_token": ""}, None, ["cart_id", "payment_token"]),
    ],
)
def test_bad_input_is_400_naming_fields(
    shared_service: ServiceProcess, payload: Any, raw: bytes | None, fields: list[str]
) -> None:
    svc = shared_service
    resp = http("POST", svc.url + CHECKOUT, payload, raw=raw)
    assert resp.status == 400
    assert resp.headers["Content-Type"].startswith(PROBLEM_JSON)
    problem = resp.json()
    assert problem["status"] == 400
    assert sorted(e["field"] for e in problem["errors"]) == sorted(fields)
    for field in fields:
        assert field in problem["detail"]


def test_health_livez_and_pool_figures(shared_service: ServiceProcess) -> None:
    resp = http("GET", shared_service.url + "/health")
    assert resp.status == 200
    data = resp.json()
    assert data["status"] == "ready"
    assert data["instance"] == "checkout-shared"
    assert data["checks"]["postgres"]["status"] == "pass"
    pool = data["checks"]["pool"]
    assert pool["max"] == 10
    assert 2 <= pool["size"] <= 10
    assert (pool["in_use"], pool["waiting"], pool["use"]) == (0, 0, 0.0)
    assert pool["threshold"] is None

    live = http("GET", shared_service.url + "/livez")
    assert (live.status, live.json()["status"]) == (200, "alive")
    assert live.headers["X-Instance"] == "checkout-shared"


def test_metrics_count_requests_by_route_template(pg: PostgresServer) -> None:
    with running_service(pg.dsn) as svc:
        livez = {"route": "/livez", "method": "GET", "status": "200"}
        livez_before = metric(svc, "checkout_requests_total", **livez)  # the readiness wait
        for cart in range(100, 105):
            assert http("POST", svc.url + CHECKOUT, body(cart)).status == 201
        for _ in range(2):
            assert http("POST", svc.url + CHECKOUT, {"cart_id": -1}).status == 400
        assert http("GET", svc.url + "/livez").status == 200
        http("GET", svc.url + "/metrics")
        route = {"route": CHECKOUT, "method": "POST"}
        m = samples(svc)

        def get(name: str, **labels: str) -> float:
            return m.get((name, tuple(sorted(labels.items()))), 0.0)

        assert get("checkout_requests_total", **route, status="201") == 5
        assert get("checkout_requests_total", **route, status="400") == 2
        assert get("checkout_requests_total", **livez) == livez_before + 1
        assert get("checkout_request_duration_seconds_count", route=CHECKOUT) == 7
        assert not any(labels and ("route", "/metrics") in labels for (_, labels) in m)
        assert get("checkout_db_pool_max") == 10
        assert get("checkout_db_pool_in_use") == 0
        assert get("checkout_db_pool_waiting") == 0
        assert get("checkout_db_pool_size") >= 2
        assert sum(v for (n, _), v in m.items() if n == "checkout_unhandled_errors_total") == 0


# -- known dependency failures: 503 with the switch, 500 without ---------------------------


POOL_OF_ONE = {
    "DB_POOL_MAX": "1",
    "DB_ACQUIRE_TIMEOUT_MS": "100",
    "SESSION_TTL_MS": "60000",
}


async def _second_checkout_while_pool_is_held(
    svc: ServiceProcess, dsn: str
) -> tuple[int, dict[str, str], Any, int]:
    """Checkout A holds the only connection (blocked on a lock); B asks for another."""
    async with aiohttp.ClientSession() as client:
        async with locked_cart_items(dsn) as lock_conn:
            first = asyncio.create_task(post(client, svc.url, 201, "s-a"))
            await wait_until(lambda: blocked_on_lock(lock_conn))
            started = time.monotonic()
            status, headers, problem = await post(client, svc.url, 202, "s-b")
            assert time.monotonic() - started < 2.0  # failed fast, did not queue
        first_status, _, _ = await first
    return status, headers, problem, first_status


def test_acquire_timeout_is_503_with_retry_after_when_switch_on(pg: PostgresServer) -> None:
    with running_service(pg.dsn, **POOL_OF_ONE, DB_ERRORS_AS_503="true") as svc:
        status, headers, problem, first = asyncio.run(
            _second_checkout_while_pool_is_held(svc, pg.dsn)
        )
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert headers["Content-Type"].startswith(PROBLEM_JSON)
        assert (problem["status"], problem["reason"]) == (503, "pool_acquire_timeout")
        assert first == 201  # the request holding the connection still completes
        assert (
            metric(
                svc,
                "checkout_dependency_failures_total",
                dependency="postgres",
                reason="pool_acquire_timeout",
            )
            == 1
        )
        assert not [e for e in svc.events() if e["event"] == "unhandled_exception"]


def test_acquire_timeout_is_logged_500_when_switch_off(pg: PostgresServer) -> None:
    with running_service(pg.dsn, **POOL_OF_ONE, DB_ERRORS_AS_503="false") as svc:
        status, headers, problem, _ = asyncio.run(_second_checkout_while_pool_is_held(svc, pg.dsn))
        assert status == 500
        assert headers["Content-Type"].startswith(PROBLEM_JSON)
        assert problem["title"] == "Internal Server Error"
        assert problem["detail"] == "An unexpected error occurred."
        assert "Traceback" not in str(problem)
        logged = [e for e in svc.events() if e.get("errorId") == problem["errorId"]]
        assert len(logged) == 1
        event = logged[0]
        assert (event["event"], event["level"]) == ("unhandled_exception", "error")
        assert event["exception"] == "DependencyUnavailable"
        assert event["route"] == CHECKOUT
        assert event["frame"].startswith("lab/services/checkout/db.py:")
        assert "TimeoutError" in event["traceback"]
        assert (
            metric(svc, "checkout_unhandled_errors_total", exception="DependencyUnavailable") == 1
        )


def test_statement_timeout_is_503_when_switch_on(pg: PostgresServer) -> None:
    async def scenario(svc: ServiceProcess) -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as client, locked_cart_items(pg.dsn):
            return await post(client, svc.url, 301, "s-st")

    env = {"DB_STATEMENT_TIMEOUT_MS": "200", "DB_ERRORS_AS_503": "yes"}
    with running_service(pg.dsn, **env) as svc:
        status, headers, problem = asyncio.run(scenario(svc))
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert problem["reason"] == "statement_timeout"


def test_readiness_goes_503_once_the_pool_stays_above_the_threshold(
    pg: PostgresServer,
) -> None:
    """The only connection held (blocked behind a lock): ready at first, 503 once that has
    lasted the grace period, ready again when it is returned."""

    async def scenario(svc: ServiceProcess) -> tuple[Any, Any, Any]:
        async with aiohttp.ClientSession() as client:
            async with locked_cart_items(pg.dsn) as lock_conn:
                first = asyncio.create_task(post(client, svc.url, 401, "s-r"))
                await wait_until(lambda: blocked_on_lock(lock_conn))
                early = await health(client, svc.url)
                busy: list[Any] = []

                async def unavailable() -> bool:
                    busy[:] = await health(client, svc.url)
                    return bool(busy[0] == 503)

                await wait_until(unavailable)
            await first
            idle = await health(client, svc.url)
        return early, busy, idle

    env = {"DB_POOL_MAX": "1", "READINESS_MAX_POOL_USE": "0.8", "RETRY_AFTER_S": "3",
           "READINESS_POOL_GRACE_MS": "1500"}
    with running_service(pg.dsn, **env) as svc:
        early, (busy_status, busy), (idle_status, idle) = asyncio.run(scenario(svc))
    # Within the grace period: under pressure, not yet unready (a burst would end here).
    assert early[0] == 200, early
    assert early[1]["checks"]["pool"]["status"] == "pass"
    assert 0 <= early[1]["checks"]["pool"]["pressure_ms"] < 1500
    assert busy_status == 503
    assert busy["status"] == "unavailable"
    pool = busy["checks"]["pool"]
    assert pool.pop("pressure_ms") >= 1500
    assert pool == {
        "status": "fail",
        "size": 1,
        "max": 1,
        "in_use": 1,
        "waiting": 0,
        "use": 1.0,
        "threshold": 0.8,
        "grace_ms": 1500,
    }
    assert busy["checks"]["postgres"]["status"] == "pass"  # the probe bypasses the pool
    assert idle_status == 200
    assert idle["checks"]["pool"]["in_use"] == 0
    assert idle["checks"]["pool"]["pressure_ms"] is None


# -- the incident's chain: queue for the pool -> expired session -> None dereference ---------


def test_pool_queue_expires_session_and_none_dereference_is_logged(pg: PostgresServer) -> None:
    """No acquire timeout, pool of one, session TTL 200 ms, the connection held 500 ms.

    A holds the connection (blocked behind the lock), B queues for the pool. Both outlive
    their sessions, read them after the DB work, and die on `session.user_id`.
    """

    async def scenario(svc: ServiceProcess) -> tuple[list[Any], Any]:
        async with aiohttp.ClientSession() as client:
            async with locked_cart_items(pg.dsn) as lock_conn:
                a = asyncio.create_task(post(client, svc.url, 501, "s-a"))
                await wait_until(lambda: blocked_on_lock(lock_conn))
                b = asyncio.create_task(post(client, svc.url, 502, "s-b"))

                async def b_is_queued() -> bool:
                    _, state = await health(client, svc.url)
                    return bool(state["checks"]["pool"]["waiting"] == 1)

                await wait_until(b_is_queued)
                _, during = await health(client, svc.url)
                await asyncio.sleep(0.5)
            results = [await a, await b]
        return results, during

    env = {"DB_POOL_MAX": "1", "SESSION_TTL_MS": "200"}
    orders_before = fetchval(pg.dsn, "SELECT count(*) FROM orders")
    with running_service(pg.dsn, **env) as svc:
        results, during = asyncio.run(scenario(svc))
        events = {e["errorId"]: e for e in svc.events() if e["event"] == "unhandled_exception"}
        unhandled = metric(svc, "checkout_unhandled_errors_total", exception="AttributeError")

    assert during["checks"]["pool"]["in_use"] == 1
    assert during["checks"]["pool"]["waiting"] == 1
    for status, headers, problem in results:
        assert status == 500
        assert headers["Content-Type"].startswith(PROBLEM_JSON)
        event = events[problem["errorId"]]
        assert event["exception"] == "AttributeError"
        assert event["message"] == "'NoneType' object has no attribute 'user_id'"
        assert event["frame"].startswith("lab/services/checkout/handlers.py:")
        assert event["frame"].endswith(" in complete_checkout")
        assert "session.user_id" in event["traceback"]
    assert unhandled == 2
    assert fetchval(pg.dsn, "SELECT count(*) FROM orders") == orders_before


def test_session_expiring_while_blocked_on_a_slow_query(pg: PostgresServer) -> None:
    """The brief's simplest form: TTL 200 ms, the table locked for 500 ms -> 500."""

    async def scenario(svc: ServiceProcess) -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as client:
            async with locked_cart_items(pg.dsn):
                task = asyncio.create_task(post(client, svc.url, 601, "s-slow"))
                await asyncio.sleep(0.5)
            return await task

    with running_service(pg.dsn, SESSION_TTL_MS="200") as svc:
        status, _, problem = asyncio.run(scenario(svc))
        ok = http("POST", svc.url + CHECKOUT, body(602), headers={"X-Session-Id": "s-fast"})
        events = [e for e in svc.events() if e.get("errorId") == problem.get("errorId")]
    assert status == 500
    assert len(events) == 1
    assert events[0]["exception"] == "AttributeError"
    assert events[0]["frame"].startswith("lab/services/checkout/handlers.py:")
    assert ok.status == 201  # without the wait, the same TTL is plenty


# -- the root cause: the missing index -----------------------------------------------------


def test_lookup_without_index_is_a_slow_seq_scan(pg: PostgresServer) -> None:
    query = "SELECT sku, qty, unit_price_cents FROM cart_items WHERE cart_id = $1"

    async def timings(conn: asyncpg.Connection) -> tuple[float, str]:
        stmt = await conn.prepare(query)
        explain = await conn.fetch(f"EXPLAIN (FORMAT TEXT) {query.replace('$1', '777')}")
        plan = "\n".join(r[0] for r in explain)
        for cart in range(1, 4):  # warm up
            await stmt.fetch(cart)
        runs = []
        for cart in range(1000, 1020):
            started = time.perf_counter()
            rows = await stmt.fetch(cart)
            runs.append(time.perf_counter() - started)
            assert len(rows) == 10
        return statistics.median(runs), plan

    async def measure() -> tuple[float, str, float, str]:
        conn = await asyncpg.connect(pg.dsn)
        try:
            with_index, plan_with = await timings(conn)
            tx = conn.transaction()
            await tx.start()
            try:  # dropped inside a transaction: the rollback restores it
                await conn.execute(f"DROP INDEX {CART_ITEMS_INDEX}")
                without, plan_without = await timings(conn)
            finally:
                await tx.rollback()
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", CART_ITEMS_INDEX)
        finally:
            await conn.close()
        return with_index, plan_with, without, plan_without

    with_index, plan_with, without, plan_without = asyncio.run(measure())
    rows = fetchval(pg.dsn, "SELECT count(*) FROM cart_items")
    print(
        f"\ncart_items={rows}: lookup with {CART_ITEMS_INDEX} {with_index * 1000:.3f} ms, "
        f"seq scan without it {without * 1000:.3f} ms ({without / with_index:.0f}x)"
    )
    assert CART_ITEMS_INDEX in plan_with
    assert "Seq Scan on cart_items" in plan_without
    assert without > 10 * with_index


# -- start-up and shutdown -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"DB_POOL_MAX": "abc"},
            "STARTUP_FAILURE: DB_POOL_MAX: expected an integer in 1..1000, got 'abc'",
        ),
        (
            {"DB_ERRORS_AS_503": "maybe"},
            "STARTUP_FAILURE: DB_ERRORS_AS_503: expected one of true/false/1/0/yes/no, got 'maybe'",
        ),
        (
            {"READINESS_MAX_POOL_USE": "1.5"},
            "STARTUP_FAILURE: READINESS_MAX_POOL_USE: expected a number in 0..1, got '1.5'",
        ),
        (
            {"DB_POOL_MIN": "20"},
            "STARTUP_FAILURE: DB_POOL_MIN: expected an integer in 0..10, got '20'",
        ),
    ],
)
def test_bad_config_exits_2_before_binding(env: dict[str, str], line: str) -> None:
    port = free_port()
    full_env = {
        "CHECKOUT_PORT": str(port),
        "DATABASE_URL": "postgresql://lab@127.0.0.1:1/shop",
        **env,
    }
    with tempfile.TemporaryDirectory() as logs:
        started = time.monotonic()
        process = start_service_process(full_env, Path(logs))
        try:
            bound = False
            while process.poll() is None and time.monotonic() - started < 5:
                with socket.socket() as probe:
                    bound |= probe.connect_ex(("127.0.0.1", port)) == 0
                time.sleep(0.01)
            elapsed = time.monotonic() - started
            assert process.poll() == 2
            assert elapsed < 1.0, f"took {elapsed:.2f}s"
            assert not bound
            assert process.stderr_path.read_text().splitlines() == [line]
            assert process.stdout_path.read_text() == ""
        finally:
            process.stop()


@pytest.fixture
def log_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="chaoslab-checkout-test-") as path:
        yield Path(path)


def test_missing_port_and_unreachable_database(log_dir: Path) -> None:
    missing = start_service_process({"DATABASE_URL": "postgresql://x@127.0.0.1/db"}, log_dir)
    try:
        assert missing.popen.wait(5) == 2
        assert missing.stderr_path.read_text().startswith(
            "STARTUP_FAILURE: CHECKOUT_PORT: expected an integer in 1..65535 (required), got ''"
        )
    finally:
        missing.stop()

    dead_db = f"postgresql://lab@127.0.0.1:{free_port()}/shop"
    port = free_port()
    unreachable = start_service_process(
        {"CHECKOUT_PORT": str(port), "DATABASE_URL": dead_db}, log_dir
    )
    try:
        assert unreachable.popen.wait(10) == 3
        lines = unreachable.stderr_path.read_text().splitlines()
        assert lines[-1].startswith("STARTUP_FAILURE: DATABASE_URL: cannot connect to")
        assert not any("Traceback" in line for line in lines)
    finally:
        unreachable.stop()


def test_sigterm_stops_cleanly_and_closes_the_pool(pg: PostgresServer) -> None:
    count = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND pid <> pg_backend_pid()"
    )
    before = fetchval(pg.dsn, count)
    with running_service(pg.dsn, DB_POOL_MIN="3") as svc:
        assert http("GET", svc.url + "/health").status == 200
        assert fetchval(pg.dsn, count) == before + 4  # 3 pooled + 1 probe
        started_events = [e for e in svc.events() if e["event"] == "started"]
        assert started_events[0]["config"]["DB_POOL_MIN"] == 3
        assert started_events[0]["port"] == svc.port
        os.kill(svc.process.pid, signal.SIGTERM)
        assert svc.process.popen.wait(5) == 0
        assert [e["event"] for e in svc.events()] == ["started", "stopped"]
    deadline = time.monotonic() + 5
    while fetchval(pg.dsn, count) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fetchval(pg.dsn, count) == before


def test_bare_service_answers_without_a_database() -> None:
    with running_service("postgresql://unused@127.0.0.1:1/none", service="bare") as svc:
        resp = http("POST", svc.url + CHECKOUT, body(1))
        assert (resp.status, resp.json()) == (201, {"order_id": 1, "status": "CONFIRMED"})
        assert http("GET", svc.url + "/health").status == 200
        assert http("GET", svc.url + "/livez").status == 200


def test_port_in_use_is_a_startup_failure(pg: PostgresServer, log_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_service_process(
            {"CHECKOUT_PORT": str(port), "DATABASE_URL": pg.dsn}, log_dir
        )
        try:
            assert process.popen.wait(10) == 3
            lines = process.stderr_path.read_text().splitlines()
            assert lines[-1].startswith(
                f"STARTUP_FAILURE: CHECKOUT_PORT: cannot bind 127.0.0.1:{port}"
            )
            assert not any("Traceback" in line for line in lines)
        finally:
            process.stop()


def test_migrate_command_seeds_with_generate_series(pg: PostgresServer) -> None:
    """The CLI on a second database, so the shared seed stays intact."""
    fetchval(pg.dsn, "DROP DATABASE IF EXISTS migrate_cli")
    fetchval(pg.dsn, "CREATE DATABASE migrate_cli")
    dsn = pg.dsn.rsplit("/", 1)[0] + "/migrate_cli"
    env = python_env({"DATABASE_URL": dsn, "SEED_CARTS": "500", "SEED_ITEMS_PER_CART": "4"})
    for _ in range(2):  # idempotent: the second run drops and recreates
        done = subprocess.run(
            [sys.executable, "-m", "lab.services.checkout", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1
        event = json.loads(lines[0])
        assert (event["event"], event["cart_items"]) == ("migrated", 2000)
        assert event["seconds"] < 5
    assert fetchval(dsn, "SELECT count(*) FROM cart_items") == 2000
    assert fetchval(dsn, "SELECT count(DISTINCT cart_id) FROM cart_items") == 500
    assert fetchval(dsn, "SELECT count(*) FROM orders") == 0
    assert fetchval(dsn, "SELECT to_regclass($1) IS NOT NULL", CART_ITEMS_INDEX)
    fetchval(pg.dsn, "DROP DATABASE migrate_cli")
