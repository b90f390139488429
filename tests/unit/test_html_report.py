"""The HTML report from results JSON: self-contained, with the matrix, the baseline's
three layers, a chart per variant, and lying 200s called out."""

from __future__ import annotations

import re
from typing import Any

from lab.load.request_log import RequestRecord
from lab.records.samples import Sample
from lab.report.html import render_html
from lab.verdict.results import Windows, WindowSummary, in_window, timeline

W = Windows(load_start=0.0, fault_start=5.0, fault_end=10.0, load_end=15.0)


def rec(t: float, status: int, kind: str = "ok") -> RequestRecord:
    return RequestRecord(t, 12.0, status, "response", status == 503, kind, "checkout", "c-1")


def variant(name: str, fault_records: list[RequestRecord]) -> dict[str, Any]:
    records = [rec(t * 0.5, 201) for t in range(10)] + fault_records
    records += [rec(10 + t * 0.5, 201) for t in range(10)]
    samples = [Sample(t + 0.1, "checkout-1", "200",
                      {"checkout_db_pool_in_use": 10.0 if 5 <= t < 10 else 1.0,
                       "checkout_db_pool_max": 10.0, "checkout_db_pool_waiting": 3.0})
               for t in range(15)]
    windows = {w: WindowSummary.of(in_window(records, W.range(w)), *W.range(w)).to_json()
               for w in ("before", "fault", "after")}
    return {
        "scenario": "demo", "name": name, "passed": name != "swallow", "description": name,
        "backend": "local", "run_id": "cl-x", "config": {"DB_POOL_MAX": "10"},
        "fault": {"kind": "drop-index", "params": {}, **W.relative()},
        "windows": windows, "timeline": timeline(records, samples, W),
        "expectations": [{"text": "[fault] 500 share >= 10%", "passed": True,
                          "measured": "50.0% (5 of 10)", "value": 0.5, "note": None}],
        "evidence": {"took_effect": True, "facts": {"index": "idx"}, "observations": []},
        "signatures": [{"exception": "AttributeError", "frame": "handlers.py:95 in checkout",
                        "count": 5, "example_error_id": "1234-5678-90ab-cdef",
                        "message": "'NoneType' object has no attribute 'user_id'"}],
        "timing": {},
    }


RESULTS = {"schema_version": 1, "passed": False, "variants": [
    variant("baseline", [rec(5 + t * 0.5, 500) for t in range(10)]),
    variant("timeouts", [rec(5 + t * 0.5, 503, "problem") for t in range(10)]),
    variant("swallow", [rec(5 + t * 0.5, 200, "lying_200") for t in range(10)]),
]}


def test_report_is_self_contained() -> None:
    page = render_html(RESULTS)
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "<script" not in page


def test_matrix_has_a_row_per_variant_with_the_fault_mix() -> None:
    page = render_html(RESULTS)
    matrix = page[page.index('<section id="matrix">'):page.index("</section>")]
    for name in ("baseline", "timeouts", "swallow"):
        assert f'data-variant="{name}"' in matrix
    row = re.search(r'<tr data-scenario="demo" data-variant="timeouts">.*?</tr>', matrix)
    assert row is not None and '10 <span class="muted">(10 RA)</span>' in row.group(0)
    assert 'class="badge lying">lying 200s' in matrix
    assert matrix.count('class="badge fail">FAIL') == 1


def test_baseline_alone_has_the_three_layers() -> None:
    page = render_html(RESULTS)
    assert page.count('id="layer-client"') == 1
    assert page.count('id="layer-app"') == 1 and "AttributeError" in page
    assert page.count('id="layer-infra"') == 1


def test_a_chart_per_variant_and_alerts() -> None:
    page = render_html(RESULTS)
    assert page.count('<figure class="timeline-chart"><svg') == 3
    assert page.count("HighErrorRate") == 3  # one alerts table per variant
    assert "PoolSaturation" in page


def test_a_physics_variant_shows_its_calibration_its_mechanism_and_why_not() -> None:
    from lab.scenario.physics import Measurement, PhysicsSpec, size_load

    cal = size_load(PhysicsSpec(slow_path="cart-lookup", fault_demand=2.5, longest_wait=1.5),
                    Measurement("EXPLAIN ANALYZE", [79.0], [0.1], 2, 10, 0.2), 1.0, 1000)
    physical = variant("baseline", [rec(5 + t * 0.5, 201) for t in range(10)])
    physical |= {"passed": False, "calibration": cal.to_json(), "mechanism": {
        "slow_path": "cart-lookup", "arrived_per_s": 63.0, "served_per_s": 62.0,
        "demand": 1.02, "dropped": 0, "pool": 10, "pool_waiting_max": 2.0,
        "longest_wait_s": 0.4, "session_ttl_s": 1.0,
        "why_not": "no wait outlived the 1 s session (longest 0.4 s): raise physics.longest_wait"}}
    page = render_html({"schema_version": 2, "passed": False, "variants": [physical]})
    text = re.sub(r"<[^>]+>", "", page)
    assert "calibration: cart lookup without the index 79.0 ms" in text
    assert "load 63/s (2.5× the capacity)" in text
    assert "physics: 63/s arrived, 62/s served (1.02×)" in text
    assert "why it did not reproduce: no wait outlived the 1 s session" in text
    # a scenario without physics shows none of it
    assert "calibration:" not in re.sub(r"<[^>]+>", "", render_html(RESULTS))
