"""The live per-second series: what `lab up`'s dashboard and a drill's score read."""

from __future__ import annotations

from lab.live.series import BARE_503, CLOSE_AFTER_S, LiveSeries, bad_count, live_class
from lab.load.request_log import RequestRecord


def rec(t: float, status: int | None = 200, *, outcome: str = "response",
        retry_after: bool = False, kind: str = "ok", ms: float = 10.0) -> RequestRecord:
    return RequestRecord(start=t, latency_ms=ms, status=status, outcome=outcome,
                         retry_after=retry_after, body_kind=kind, request="checkout",
                         instance="checkout-1")


def test_a_503_without_retry_after_is_told_apart_and_counted_bad() -> None:
    assert live_class(rec(1, 503, retry_after=True, kind="problem")) == "503"
    assert live_class(rec(1, 503, kind="problem")) == BARE_503
    series = LiveSeries()
    series.add([rec(100.1, 503, retry_after=True), rec(100.2, 503), rec(100.3, 500),
                rec(100.4, 200, kind="lying_200")], now=100 + CLOSE_AFTER_S + 1)
    assert [s["t"] for s in series.seconds] == [100]
    assert series.seconds[0]["counts"] == {"500": 1, "503": 1, BARE_503: 1, "lying_200": 1}
    assert bad_count(series.seconds) == 3  # all but the honest 503


def test_seconds_close_only_after_a_slow_answer_could_still_arrive() -> None:
    series = LiveSeries()
    series.add([rec(100.5), rec(101.5)], now=103.0)
    assert series.seconds == []  # a request sent at 100 may still be waiting
    assert [s["t"] for s in series.current()] == [100, 101]
    series.add([rec(100.9, 500, ms=4000)], now=100 + CLOSE_AFTER_S + 1.5)
    assert [s["t"] for s in series.seconds] == [100]
    assert series.seconds[0]["counts"] == {"2xx": 1, "500": 1}
    assert series.seconds[0]["p99_ms"] is not None and series.seconds[0]["p99_ms"] > 3000


def test_quiet_seconds_are_kept_as_empty_entries_and_drops_count_as_bad() -> None:
    series = LiveSeries()
    series.add([rec(100.0), rec(103.0), rec(103.5, None, outcome="dropped")], now=120)
    assert [(s["t"], s["n"]) for s in series.seconds] == [(100, 1), (101, 0), (102, 0),
                                                          (103, 2)] + [
        (t, 0) for t in range(104, 120 - CLOSE_AFTER_S)]
    assert series.seconds[3]["counts"] == {"2xx": 1, "dropped": 1}
    assert bad_count(series.seconds) == 1  # the lab never saw that user's answer
    assert series.dropped == 1 and series.total == 3
    assert series.seconds[1]["p50_ms"] is None


def test_a_very_late_answer_still_counts_in_its_closed_second() -> None:
    series = LiveSeries()
    series.add([rec(100.0)], now=120)
    series.add([rec(100.5, 500, outcome="response", ms=15000)], now=121)
    assert series.seconds[0]["counts"] == {"2xx": 1, "500": 1} and series.seconds[0]["n"] == 2
    assert bad_count(series.between(100, 101)) == 1


def test_flush_closes_everything_up_to_the_end() -> None:
    series = LiveSeries()
    series.add([rec(100.2), rec(104.9, 500)], now=105.0)
    series.flush(105.0)
    assert [s["t"] for s in series.seconds] == [100, 101, 102, 103, 104, 105]
    assert bad_count(series.seconds) == 1 and series.current() == []
