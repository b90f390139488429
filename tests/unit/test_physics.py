"""Physics, not tuning: the load sized from a measured cost, and the mechanism read back.

Pure arithmetic (lab.scenario.physics) and the scenario grammar around it; the measurement itself
(lab.load.calibrate against real Postgres) is exercised by the integration tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.load.request_log import RequestRecord
from lab.records.samples import Sample
from lab.scenario.physics import (
    Measurement,
    PhysicsSpec,
    calibration_text,
    mechanism,
    mechanism_text,
    size_load,
    slow_share,
    why_not,
)
from tests.unit.scenario_docs import load, problems_if_any


def measured(cost_ms: float, *, cores: int = 2, pool: int = 10,
             healthy_ms: float | None = 0.05) -> Measurement:
    return Measurement("test", [cost_ms * 1.1, cost_ms, cost_ms * 1.5],
                       None if healthy_ms is None else [healthy_ms] * 3, cores, pool, 0.1)


def spec(**kw: Any) -> PhysicsSpec:
    return PhysicsSpec.model_validate({"slow_path": "cart-lookup", "fault_demand": 3, **kw})


# ---------------------------------------------------------------- sizing the load


def test_the_rate_is_demand_times_what_the_slow_path_can_serve() -> None:
    cal = size_load(spec(longest_wait="2s"), measured(40), 1.0, 1000)
    # the least of 44, 40, 60 ms (the rest was interference); 2 at once (2 cores < pool 10)
    assert (cal.slow_cost_ms, cal.parallel, cal.capacity_per_s) == (40, 2, 50)
    assert (cal.rate_per_s, cal.max_in_flight) == (150, 100)  # 3 × 50/s; 50/s × 2 s
    assert cal.limited_by is None and cal.headroom_ok


def test_fewer_cores_or_a_smaller_pool_lower_the_rate() -> None:
    one_core = size_load(spec(), measured(40, cores=1), 1.0, 1000)
    assert (one_core.parallel, one_core.rate_per_s) == (1, 75)
    small_pool = size_load(spec(), measured(40, cores=8, pool=4), 1.0, 1000)
    assert (small_pool.parallel, small_pool.rate_per_s) == (4, 300)


def test_a_faster_slow_path_is_compensated_by_the_arrival_rate() -> None:
    """The stand-in for a faster machine: 40 % of the data, 40 % of the cost."""
    full = size_load(spec(longest_wait="2s"), measured(40), 1.0, 1000)
    small = size_load(spec(longest_wait="2s"), measured(16), 1.0, 1000)
    assert small.rate_per_s == pytest.approx(full.rate_per_s / 0.4)
    assert small.max_in_flight == pytest.approx(full.max_in_flight / 0.4, abs=1)
    # and so the modelled demand stays the same: rate × cost / parallel
    assert small.rate_per_s * 0.016 / 2 == pytest.approx(full.rate_per_s * 0.040 / 2)


def test_only_the_slow_requests_count_towards_demand() -> None:
    share = slow_share([("catalog", 9), ("checkout", 1)], "catalog-aggregate")
    assert share == 0.9
    cal = size_load(spec(slow_path="catalog-aggregate"), measured(250, healthy_ms=None),
                    share, 1000)
    # a burst: 3 × the pool's 10 connections per 0.25 s aggregate, 90 % of the arrivals
    assert cal.parallel == 10 and cal.rate_per_s == pytest.approx(3 * 40 / 0.9, rel=1e-3)
    assert cal.max_in_flight == 1000 and cal.healthy_use is None
    assert "a burst against the pool's 10" in calibration_text(cal.to_json())
    # one core or eight: the same burst
    assert size_load(spec(slow_path="catalog-aggregate"), measured(250, cores=1,
                     healthy_ms=None), share, 1000).rate_per_s == cal.rate_per_s


def test_the_generator_limit_holds_the_rate_and_says_so() -> None:
    cal = size_load(spec(max_rate=100), measured(4), 1.0, 1000)  # would be 1500/s
    assert cal.rate_per_s == 100 and cal.limited_by is not None
    assert "max_rate" in calibration_text(cal.to_json())
    assert "grow the data set" in why_not({"slow_path": "cart-lookup", "demand": 0.5}, cal)


def test_a_healthy_path_without_headroom_is_flagged() -> None:
    cal = size_load(spec(max_healthy_use=0.5), measured(40, healthy_ms=40), 1.0, 1000)
    # 150/s × 40 ms over 10 connections = 60 % of the pool before the fault
    assert cal.healthy_use == pytest.approx(0.6)
    assert not cal.headroom_ok and cal.to_json()["headroom_ok"] is False


def test_calibration_json_round_trips_into_its_text() -> None:
    cal = size_load(spec(longest_wait="2s"), measured(40), 1.0, 1000)
    text = calibration_text(json.loads(json.dumps(cal.to_json())))
    assert "40.0 ms" in text and "capacity 50/s" in text and "150/s" in text
    assert "at most 100 in flight" in text and "pool use" in text


# ---------------------------------------------------------------- the mechanism, read back


def rec(start: float, latency_ms: float, status: int | None = 500, outcome: str = "response",
        request: str = "checkout") -> RequestRecord:
    return RequestRecord(start, latency_ms, status, outcome, False, "problem", request,
                         "checkout-1")


def test_the_mechanism_counts_arrivals_served_drops_and_waits() -> None:
    records = [rec(100 + i * 0.1, 3000) for i in range(100)]  # 10 s × 10/s arrived
    records += [rec(100 + i * 0.1 + 0.05, 0, None, "dropped") for i in range(100)]
    records += [rec(99.0, 50, 201)]  # before the window: not counted
    samples = [Sample(100 + i, "checkout-1", "200", {"checkout_db_pool_waiting": w})
               for i, w in enumerate([0, 12, 30, 29])]
    m = mechanism("cart-lookup", records, samples, (100.0, 110.0),
                  {"DB_POOL_MAX": 10, "SESSION_TTL_MS": 1000}, before=(98.0, 100.0))
    assert m["arrived_per_s"] == 20.0 and m["dropped"] == 100
    # completed in the window: started before 107 s and took 3 s
    assert m["served_per_s"] == 7.0 and m["demand"] == pytest.approx(20 / 7, abs=0.01)
    assert (m["longest_wait_s"], m["session_ttl_s"], m["pool_waiting_max"]) == (3.0, 1.0, 30)
    text = mechanism_text(m)
    assert "30 waiting on 10 connections" in text and "against the 1 s session" in text
    # before the fault: one 2xx in 2 s, answered in 50 ms — the healthy path kept up
    assert (m["before_arrived_per_s"], m["before_2xx_share"], m["before_median_wait_s"]) == (
        0.5, 1.0, 0.05)
    assert "SATURATED" not in text


def test_a_load_that_saturates_the_healthy_path_is_named_before_the_fault() -> None:
    """40 % of the data on this machine: the rate that compensated for the cheaper scan
    was more than the Python service serves, and the baseline failed 'before'."""
    records = [rec(90 + i * 0.01, 580, 201 if i % 20 else 500) for i in range(1000)]
    m = mechanism("cart-lookup", records, [], (100.0, 110.0),
                  {"DB_POOL_MAX": 10, "SESSION_TTL_MS": 1000}, before=(90.0, 100.0))
    assert m["before_2xx_share"] == 0.95 and m["before_median_wait_s"] == 0.58
    assert "SATURATED" in mechanism_text(m)
    assert "did not keep up before the fault" in why_not({**m, "demand": 4}, None)


def test_a_stampede_mechanism_counts_recomputes_from_the_round_before() -> None:
    before = [Sample(99.5, "checkout-1", "200", {"checkout_catalog_cache_recomputes_total": 1})]
    samples = [Sample(100 + i, "checkout-1", "200", {
        "checkout_catalog_cache_recomputes_total": 1 + n,
        "checkout_catalog_cache_recomputes_in_progress_peak": p})
        for i, (n, p) in enumerate([(14, 14), (30, 22), (30, 22)])]
    m = mechanism("catalog-aggregate", [rec(100.5, 1200, request="catalog")], samples,
                  (100.0, 110.0), {"DB_POOL_MAX": 10, "DB_ACQUIRE_TIMEOUT_MS": 1000},
                  before_samples=before)
    assert (m["recomputes"], m["recomputes_at_once_max"], m["acquire_timeout_s"]) == (30, 22, 1)
    assert "22 recomputes at once against 10 connections" in mechanism_text(m)


@pytest.mark.parametrize(("figures", "knob"), [
    ({"slow_path": "cart-lookup", "demand": 0.95}, "physics.fault_demand"),
    ({"slow_path": "cart-lookup", "demand": 3, "session_ttl_s": 1.0, "longest_wait_s": 0.8},
     "physics.longest_wait"),
    ({"slow_path": "catalog-aggregate", "demand": 3, "pool": 10,
      "recomputes_at_once_max": 4}, "physics.fault_demand"),
    ({"slow_path": "catalog-aggregate", "demand": 3, "pool": 10, "recomputes_at_once_max": 20,
      "acquire_timeout_s": 1.0, "longest_wait_s": 0.6}, "grow the data set"),
])
def test_a_baseline_that_did_not_reproduce_names_the_knob(
        figures: dict[str, Any], knob: str) -> None:
    assert knob in why_not(figures, None)


# ---------------------------------------------------------------- the scenario grammar

BASE: dict[str, Any] = {
    "name": "demo",
    "title": "a demo",
    "description": "what happened",
    "physics": {"slow_path": "cart-lookup", "fault_demand": 3, "longest_wait": "2s"},
    "load": {"rate": "calibrated", "duration": "20s", "endpoints": [{"request": "checkout"}]},
    "fault": {"kind": "drop-index", "at": "5s", "until": "10s"},
    "variants": {"baseline": {"expect": [{"window": "fault", "status": 500, "rate": ">= 10%"}]}},
}


def doc(physics: Any = "keep", **load: Any) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(json.dumps(BASE))
    if physics is None:
        del d["physics"]
    elif physics != "keep":
        d["physics"] = physics
    d["load"].update(load)
    return d


def test_a_physics_scenario_loads_and_sizes_its_load_later(tmp_path: Path) -> None:
    scenario = load(tmp_path, doc())
    assert scenario.load.calibrated and scenario.load.open_model
    assert scenario.physics is not None and scenario.physics.longest_wait == 2.0
    sized = scenario.load.sized(123.4, 77)
    assert (sized.rate_per_s, sized.max_in_flight, sized.calibrated) == (123.4, 77, False)


@pytest.mark.parametrize(("document", "says"), [
    (doc(physics=None), "no 'physics' section"),
    (doc(rate="100/s"), "set load.rate to 'calibrated'"),
    (doc(endpoints=[{"request": "catalog"}]), "never sends"),
    (doc(max_in_flight=50), "not both"),
    (doc(rate="fast"), "or 'calibrated'"),
    (doc(physics={"slow_path": "cart-lookup", "fault_demand": 0.9}), "fault_demand"),
    (doc(physics={"slow_path": "index-scan", "fault_demand": 3}), "slow_path"),
])
def test_the_loader_refuses_physics_that_cannot_size_a_load(
        tmp_path: Path, document: dict[str, Any], says: str) -> None:
    problems = problems_if_any(tmp_path, document)
    assert problems and says in " ".join(problems), problems


def test_scaling_the_data_set_scales_the_carts_only(tmp_path: Path) -> None:
    scenario = load(tmp_path, doc())
    small = scenario.with_data_scale(0.4)
    assert small.stack.seed.carts == round(scenario.stack.seed.carts * 0.4)
    assert small.stack.seed.items_per_cart == scenario.stack.seed.items_per_cart
    assert scenario.with_data_scale(1e-9).stack.seed.carts == 1
