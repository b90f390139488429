"""Alert rules on recorded timelines: when they fire, relative to the fault, and resolve."""

from __future__ import annotations

from typing import Any

from lab.report.alerts import evaluate_alerts


def second(t: int, ok: int, errors: int, in_use: float | None = None) -> dict[str, Any]:
    metrics = {} if in_use is None else {
        "checkout-1": {"checkout_db_pool_in_use": in_use, "checkout_db_pool_max": 10.0}}
    return {"t": t, "phase": "x", "total": ok + errors,
            "by_class": {"2xx": ok, "500": errors}, "metrics": metrics}


def variant(timeline: list[dict[str, Any]], fault_start: float = 10) -> dict[str, Any]:
    return {"timeline": timeline, "fault": {"fault_start_s": fault_start}}


def by_name(v: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a.rule.name: a.to_json() for a in evaluate_alerts(v)}


def test_error_rate_pages_after_three_seconds_and_resolves() -> None:
    tl = ([second(t, 100, 0) for t in range(10)]
          + [second(t, 50, 50) for t in range(10, 20)]
          + [second(t, 100, 0) for t in range(20, 30)])
    alert = by_name(variant(tl))["HighErrorRate"]
    assert alert["fired"] is True
    assert alert["first_fired_s"] == 12 and alert["after_fault_start_s"] == 2
    assert alert["resolved_s"] == 20 and alert["firing_seconds"] == 8


def test_one_percent_is_not_above_one_percent() -> None:
    tl = [second(t, 99, 1) for t in range(30)]
    assert by_name(variant(tl))["HighErrorRate"]["fired"] is False


def test_pool_warn_and_page_thresholds() -> None:
    tl = ([second(t, 10, 0, in_use=2) for t in range(10)]
          + [second(t, 10, 0, in_use=9) for t in range(10, 15)]   # 90 %: warn only
          + [second(t, 10, 0, in_use=10) for t in range(15, 20)]  # 100 %: page too
          + [second(t, 10, 0, in_use=1) for t in range(20, 25)])
    alerts = by_name(variant(tl))
    assert alerts["PoolSaturationWarning"]["first_fired_s"] == 12
    assert alerts["PoolSaturation"]["first_fired_s"] == 17
    assert alerts["PoolSaturation"]["after_fault_start_s"] == 7


def test_rule_without_its_series_is_not_applicable() -> None:
    tl = [second(t, 10, 0) for t in range(10)]
    alerts = by_name(variant(tl))
    assert alerts["DiskFull"]["applicable"] is False
    assert alerts["PoolSaturation"]["applicable"] is False


def test_still_firing_at_the_end_has_no_resolution() -> None:
    tl = [second(t, 0, 10) for t in range(10)]
    alert = by_name(variant(tl, fault_start=0))["HighErrorRate"]
    assert alert["fired"] and alert["resolved_s"] is None
