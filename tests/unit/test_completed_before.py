"""Requests in flight across a window boundary: windows are by send time, so a claim about
what happened before an instant is made over the requests that *completed* before it."""

from __future__ import annotations

from lab.load.request_log import RequestRecord
from lab.run.runner import _window_summaries
from lab.verdict.results import Windows, WindowSummary, completed_before, in_window

W = Windows(load_start=1000.0, fault_start=1010.0, fault_end=1020.0, load_end=1030.0)


def rec(t: float, status: int | None, ms: float, *, outcome: str = "response") -> RequestRecord:
    return RequestRecord(start=t, latency_ms=ms, status=status, outcome=outcome,
                         retry_after=False, body_kind="ok" if status else "none",
                         request="checkout", instance="checkout-1" if status else None)


# Sent 5 ms before the injection, answered 50 ms later (45 ms into the fault): a 500.
IN_FLIGHT_500 = rec(1009.995, 500, 50)
# Sent 100 ms before, answered 50 ms before the injection.
COMPLETED_201 = rec(1009.9, 201, 50)


def test_a_request_served_after_the_injection_is_not_counted_before_it() -> None:
    assert in_window([IN_FLIGHT_500], W.range("before")) == [IN_FLIGHT_500]  # by send time
    assert completed_before([IN_FLIGHT_500, COMPLETED_201], W.fault_start) == [COMPLETED_201]


def test_completed_means_strictly_before_and_counts_failures_and_timeouts() -> None:
    at_the_instant = rec(1009.95, 201, 50)  # answered exactly at the injection
    failed_before = rec(1009.0, 500, 20)  # a 500 the fault cannot explain
    gave_up_before = rec(1005.0, None, 4990, outcome="timeout")  # 1009.99
    records = [at_the_instant, failed_before, gave_up_before]
    assert completed_before(records, W.fault_start) == [failed_before, gave_up_before]


def test_window_summary_keeps_the_send_time_mix_and_adds_the_completed_one() -> None:
    before = [rec(1001.0, 201, 10), COMPLETED_201, IN_FLIGHT_500]
    s = WindowSummary.of(before, 0.0, 10.0, ends_at=W.fault_start)
    assert s.total == 3
    assert s.by_class == {"2xx": 2, "500": 1}
    assert s.completed_by_class == {"2xx": 2}
    assert s.to_json()["completed_by_class"] == {"2xx": 2}
    # Without the window's wall-clock end it is not computed, rather than guessed.
    assert WindowSummary.of(before, 0.0, 10.0).completed_by_class is None


def test_the_runner_summarises_each_window_against_its_own_end() -> None:
    records = [
        COMPLETED_201, IN_FLIGHT_500, rec(1009.0, 500, 20),  # before: one 500 was not in flight
        rec(1019.99, 500, 30),  # sent in the fault, answered after the revert
        rec(1025.0, 201, 10),
    ]
    s = _window_summaries(records, W)
    assert s["before"].by_class == {"2xx": 1, "500": 2}
    assert s["before"].completed_by_class == {"2xx": 1, "500": 1}
    assert s["fault"].by_class == {"500": 1} and s["fault"].completed_by_class == {}
    assert s["after"].completed_by_class == {"2xx": 1}
