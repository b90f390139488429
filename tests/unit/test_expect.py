"""Expectation evaluation on recorded timelines: verdicts and the measured figures."""

from __future__ import annotations

from typing import Any

import pytest

from lab.load.request_log import RequestRecord
from lab.records.samples import Sample, parse_metrics
from lab.scenario.models import Expectation
from lab.verdict.judge import evaluate
from lab.verdict.results import Windows, WindowSummary, percentile, timeline

W = Windows(load_start=1000.0, fault_start=1010.0, fault_end=1020.0, load_end=1030.0)


def rec(t: float, status: int | None, ms: float = 10.0, *, outcome: str = "response",
        retry_after: bool = False, kind: str = "ok") -> RequestRecord:
    return RequestRecord(start=t, latency_ms=ms, status=status, outcome=outcome,
                         retry_after=retry_after, body_kind=kind, request="checkout",
                         instance="checkout-1")


def exp(**kw: Any) -> Expectation:
    return Expectation.model_validate(kw)


# 10 before (all 201), 20 in the fault (10×500, 8×503 of which 6 with Retry-After,
# 2 timeouts), 10 after (9×201, 1×500).
RECORDS = (
    [rec(1000 + i, 201) for i in range(10)]
    + [rec(1010 + i * 0.5, 500, 3000) for i in range(10)]
    + [rec(1015 + i * 0.5, 503, 20, retry_after=i < 6, kind="problem") for i in range(8)]
    + [rec(1019 + i * 0.4, None, 5000, outcome="timeout", kind="none") for i in range(2)]
    + [rec(1020 + i, 201) for i in range(9)]
    + [rec(1029.5, 500)]
)


def check(**kw: Any) -> tuple[bool, str]:
    r = evaluate(exp(**kw), RECORDS, [], W)
    return r.passed, r.measured


def test_rate_of_500_in_fault() -> None:
    assert check(window="fault", status=500, rate=">= 50%") == (True, "50.0% (10 of 20)")
    assert check(window="fault", status=500, rate="> 50%") == (False, "50.0% (10 of 20)")


def test_counts_and_classes() -> None:
    assert check(window="fault", status="5xx", count="== 18") == (True, "18 of 20")
    assert check(window="fault", status="timeout", count="== 0") == (False, "2 of 20")
    assert check(window="before", status="2xx", rate=">= 100%")[0]


def test_retry_after_must_be_on_every_response() -> None:
    assert check(window="fault", status=503, count=">= 1", retry_after=True) == (
        False, "8 of 20; Retry-After on 6 of 8")


def test_after_window_with_offset_skips_recovery() -> None:
    # 'after' includes the trailing 500; 'after+5s' starts at 1025 and still has it.
    assert check(window="after", status="2xx", rate=">= 90%") == (True, "90.0% (9 of 10)")
    assert check(window="after+5s", status="2xx", rate=">= 90%") == (False, "80.0% (4 of 5)")


def test_latency_percentiles_with_and_without_status_filter() -> None:
    passed, measured = check(window="fault", p99="<= 1s")
    assert (passed, measured) == (False, "p99 5000 ms over 20")
    assert check(window="fault", status=503, p99="<= 50ms") == (True, "p99 20 ms over 8")


def test_empty_window_fails_with_a_reason() -> None:
    r = evaluate(exp(window="fault", status=500, rate=">= 1%"), [], [], W)
    assert (r.passed, r.measured) == (False, "no requests in the window")


def test_health_samples() -> None:
    samples = [Sample(1011 + i, "checkout-1", "503" if i < 7 else "200") for i in range(9)]
    r = evaluate(exp(window="fault", health=503, rate=">= 70%"), [], samples, W)
    assert (r.passed, r.measured) == (True, "77.8% (7 of 9) samples")


def test_metric_max() -> None:
    samples = [Sample(1011 + i, "checkout-1", "200", {"pool_waiting": float(i)})
               for i in range(5)]
    r = evaluate(exp(window="fault", metric="pool_waiting", max=">= 4"), [], samples, W)
    assert (r.passed, r.value) == (True, 4.0)
    r = evaluate(exp(window="before", metric="pool_waiting", max=">= 1"), [], samples, W)
    assert (r.passed, r.measured) == (False, "pool_waiting was never sampled in the window")


def test_window_summary_and_percentile() -> None:
    fault = [r for r in RECORDS if 1010 <= r.start < 1020]
    s = WindowSummary.of(fault, 10, 20)
    assert s.total == 20
    assert s.by_status == {"500": 10, "503": 8, "timeout": 2}
    assert s.by_class == {"500": 10, "503": 8, "timeout": 2}
    assert s.retry_after == {"503": 6}
    assert s.p50_ms == 3000 and s.p99_ms == 5000
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([], 99) is None


def test_timeline_has_one_entry_per_second_with_phase() -> None:
    tl = timeline(RECORDS, [Sample(1012.2, "checkout-1", "503", {"x": 1.0})], W)
    assert len(tl) == 30
    assert tl[0]["phase"] == "before" and tl[10]["phase"] == "fault" and tl[20]["phase"] == "after"
    assert tl[10]["by_class"] == {"500": 2}
    assert tl[12]["health"] == {"checkout-1": "503"}
    assert sum(e["total"] for e in tl) == len(RECORDS)


def test_parse_metrics_sums_label_sets_and_drops_buckets() -> None:
    text = (
        "# TYPE checkout_requests_total counter\n"
        'checkout_requests_total{status="201"} 5\n'
        'checkout_requests_total{status="500"} 3\n'
        "# TYPE checkout_db_pool_waiting gauge\n"
        "checkout_db_pool_waiting 7\n"
        "# TYPE lat histogram\n"
        'lat_bucket{le="0.1"} 1\nlat_bucket{le="+Inf"} 2\nlat_count 2\nlat_sum 0.3\n'
    )
    m = parse_metrics(text)
    assert m["checkout_requests_total"] == 8
    assert m["checkout_db_pool_waiting"] == 7
    assert "lat_bucket" not in m and m["lat_count"] == 2


@pytest.mark.parametrize("bound", ["== 0", "0"])
def test_bare_number_means_equal(bound: str) -> None:
    assert check(window="before", status=500, count=bound) == (True, "0 of 10")
