"""Calibration against real Postgres: the slow path's cost follows the data, and the
sized load compensates for it (the stand-in for a faster machine is a smaller data set).

Two stacks, one with 40 % of the other's carts: the sequential scan without the index
is linear in the rows, so its measured cost must fall and the calibrated rate rise;
the cart lookup with the index must stay far cheaper than without it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lab.load.calibrate import calibrate, usable_cores
from lab.scenario.physics import Calibration, PhysicsSpec
from lab.stack.base import StackRequest
from lab.stack.local import LocalBackend
from lab.system.run_dirs import new_run_id

pytestmark = pytest.mark.integration

CARTS = 30_000
ITEMS = 10


async def _calibrated(carts: int, slow_path: str) -> Calibration:
    request = StackRequest(new_run_id(), 1, {"DB_POOL_MAX": "10"}, carts, ITEMS)
    physics = PhysicsSpec.model_validate(
        {"slow_path": slow_path, "fault_demand": 3, "longest_wait": "1.5s"})
    endpoint = "checkout" if slow_path == "cart-lookup" else "catalog"
    async with LocalBackend().up(request) as handle:
        return await calibrate(handle.stack.db_dsn, physics, endpoints=[(endpoint, 1)],
                               carts=carts, pool=10, seed=1, default_max_in_flight=1000)


def test_a_cheaper_scan_is_compensated_by_a_higher_rate(runs_root: Path) -> None:
    full = asyncio.run(_calibrated(CARTS, "cart-lookup"))
    small = asyncio.run(_calibrated(round(CARTS * 0.4), "cart-lookup"))
    assert full.cores == usable_cores() and full.parallel == min(10, full.cores)
    assert full.healthy_cost_ms is not None and full.healthy_use is not None
    # the index makes the lookup at least ten times cheaper than the sequential scan
    assert full.healthy_cost_ms * 10 < full.slow_cost_ms, full
    # 40 % of the rows: the scan must get clearly cheaper (ideal 0.4×) ...
    assert small.slow_cost_ms < 0.75 * full.slow_cost_ms, (small, full)
    # ... and the load is sized up by the same factor: the modelled demand is unchanged
    assert small.rate_per_s > 1.3 * full.rate_per_s
    for cal in (full, small):
        assert cal.rate_per_s == pytest.approx(
            3 * cal.parallel / (cal.slow_cost_ms / 1000), rel=0.01)
        assert cal.max_in_flight == pytest.approx(1.5 * cal.capacity_per_s, abs=1)
        assert cal.headroom_ok and cal.limited_by is None


def test_the_aggregate_is_timed_as_the_service_runs_it(runs_root: Path) -> None:
    cal = asyncio.run(_calibrated(CARTS, "catalog-aggregate"))
    assert cal.healthy_cost_ms is None and cal.healthy_use is None
    # an aggregate over every cart line costs far more than one cart's lookup
    assert cal.slow_cost_ms > 20, cal
    assert len(cal.samples_ms) == 3
