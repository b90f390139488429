"""Time an incident's slow path on this machine, before the load (see lab.scenario.physics).

The cost is what Postgres reports for the very query the service runs — EXPLAIN
(ANALYZE, TIMING OFF), the least of a few runs after one warm-up — on the variant's own
freshly started database, so it reflects this CPU, this data set and this Postgres. The
cart lookup is timed twice: as the fault leaves it (index scans off, so a sequential
scan) and as the healthy path runs it (with the index).

A measurement is kept for the rest of the process, keyed by everything it depends on, so
the variants of one scenario share it: the aggregate costs about a second to time.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import asyncpg

from lab.errors import ScenarioError
from lab.load.ceiling import usable_cores
from lab.load.own_requests import fill
from lab.scenario.physics import (
    Calibration,
    Measurement,
    OwnSlowPath,
    PhysicsSpec,
    size_load,
    slow_share,
)
from lab.services.checkout.catalog import PRICES_QUERY
from lab.services.checkout.db import CART_ITEMS_QUERY

SAMPLES = 5
AGGREGATE_SAMPLES = 3

_measured: dict[tuple[Any, ...], Measurement] = {}


async def _execution_ms(conn: asyncpg.Connection, query: str, *args: object,
                        seq_scan_only: bool = False) -> float:
    async with conn.transaction():
        if seq_scan_only:
            await conn.execute("SET LOCAL enable_indexscan = off; "
                               "SET LOCAL enable_bitmapscan = off")
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {query}", *args)
    plan = json.loads(raw) if isinstance(raw, str) else raw
    return float(plan[0]["Execution Time"])


async def measure(dsn: str, slow_path: str | OwnSlowPath, *, carts: int, pool: int,
                  seed: int, key: tuple[Any, ...] = ()) -> Measurement:
    """Time `slow_path` on the database at `dsn` (cached per process under `key`)."""
    cores = usable_cores()
    cache_key = (*key, str(slow_path), carts, pool, cores)
    if key and cache_key in _measured:
        return _measured[cache_key]
    began = time.perf_counter()
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    try:
        if isinstance(slow_path, OwnSlowPath):  # the user's query, with and without its index
            runs = [[fill(a, rng) for a in slow_path.args] for _ in range(SAMPLES + 1)]
            try:
                slow = [await _execution_ms(conn, slow_path.query, *args, seq_scan_only=True)
                        for args in runs]
                healthy: list[float] | None = [
                    await _execution_ms(conn, slow_path.query, *args) for args in runs]
            except asyncpg.PostgresError as exc:
                raise ScenarioError("physics.slow_path.query", [
                    f"the query failed on your database: {type(exc).__name__}: {exc}"]) from None
            probe = f"EXPLAIN ANALYZE, least of {SAMPLES}, index scans off"
        elif slow_path == "cart-lookup":
            ids = [rng.randint(1, carts) for _ in range(SAMPLES + 1)]
            slow = [await _execution_ms(conn, CART_ITEMS_QUERY, c, seq_scan_only=True)
                    for c in ids]
            healthy = [await _execution_ms(conn, CART_ITEMS_QUERY, c) for c in ids]
            probe = f"EXPLAIN ANALYZE, least of {SAMPLES}, sequential scan"
        elif slow_path == "catalog-aggregate":
            slow = [await _execution_ms(conn, PRICES_QUERY)
                    for _ in range(AGGREGATE_SAMPLES + 1)]
            healthy = None
            probe = f"EXPLAIN ANALYZE, least of {AGGREGATE_SAMPLES}"
        else:  # the model's Literal keeps this unreachable
            raise ValueError(f"unknown slow path {slow_path!r}")
    finally:
        await conn.close()
    measurement = Measurement(
        probe=probe, slow_ms=slow[1:], healthy_ms=None if healthy is None else healthy[1:],
        cores=cores, pool=pool, took_s=time.perf_counter() - began)
    if key:
        _measured[cache_key] = measurement
    return measurement


async def calibrate(dsn: str, physics: PhysicsSpec, *, endpoints: list[tuple[str, int]],
                    carts: int, pool: int, seed: int, default_max_in_flight: int,
                    key: tuple[Any, ...] = ()) -> Calibration:
    """Measure the slow path and size the load from it."""
    measurement = await measure(dsn, physics.slow_path, carts=carts, pool=pool, seed=seed,
                                key=key)
    return size_load(physics, measurement, slow_share(endpoints, physics.slow_path),
                     default_max_in_flight)
