"""Expectations added for the payment incidents: metrics of other services, counter
increases while a condition held, a problem's reason, and the payment ledger."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lab.load.request_log import RequestRecord
from lab.records.ledger import CONFIRMED, PAYMENT_PENDING, Order, figures, inconsistencies
from lab.records.samples import Sample
from lab.report.table import render_table
from lab.scenario.models import LEDGER_FIGURES, Expectation
from lab.verdict.judge import evaluate
from lab.verdict.results import RunResults, VariantResult, Windows, WindowSummary

W = Windows(load_start=1000.0, fault_start=1010.0, fault_end=1020.0, load_end=1030.0)


def exp(**kw: Any) -> Expectation:
    return Expectation.model_validate(kw)


def rec(t: float, status: int | None, ms: float = 10.0, *, reason: str | None = None,
        kind: str = "ok") -> RequestRecord:
    return RequestRecord(start=t, latency_ms=ms, status=status, outcome="response",
                         retry_after=status == 503, body_kind=kind, request="checkout",
                         instance="checkout-1", reason=reason)


def samples() -> list[Sample]:
    """Rounds 1..20 at 1010..1029: the breaker is open in rounds 3-7; the proxy's request
    counter rises by 10 a round, except by 1 a round while the breaker is open."""
    out, total = [], 0.0
    for rnd in range(1, 21):
        t = 1009.5 + rnd
        is_open = 3 <= rnd <= 7
        total += 1 if 4 <= rnd <= 7 else 10
        out.append(Sample(t, "checkout-1", "200",
                          {"checkout_breaker_open": float(is_open),
                           "checkout_breaker_closed": float(rnd >= 9)}, "checkout", rnd))
        out.append(Sample(t, "proxy", "200", {"proxy_requests_total": total}, "proxy", rnd))
    return out


def check(records: list[RequestRecord] | None = None, **kw: Any) -> tuple[bool, str]:
    r = evaluate(exp(**kw), records or [], samples(), W)
    return r.passed, r.measured


def test_increase_of_another_services_counter_while_a_condition_held() -> None:
    # Rounds 3..7 are open: pairs (3,4) (4,5) (5,6) (6,7) rose by 1 each.
    assert check(window="fault", service="proxy", metric="proxy_requests_total",
                 increase="<= 4", **{"while": "checkout_breaker_open >= 1"}) == (
        True, "rose by 4 during 4 s while checkout_breaker_open >= 1")
    assert not check(window="fault", service="proxy", metric="proxy_requests_total",
                     increase="<= 3", **{"while": "checkout_breaker_open >= 1"})[0]
    # Never held → fails, whatever the bound.
    assert check(window="fault", service="proxy", metric="proxy_requests_total",
                 increase=">= 0", **{"while": "checkout_breaker_open >= 2"}) == (
        False, "checkout_breaker_open >= 2 never held for two samples in a row")


def reopened_between_samples() -> list[Sample]:
    """The breaker is open at every sample of rounds 1..4, but between rounds 2 and 3 it
    closed, let 80 calls through and opened again: only `checkout_breaker_opened` shows it."""
    out = []
    for rnd, opened, proxy in ((1, 1, 100), (2, 1, 101), (3, 2, 181), (4, 2, 182)):
        t = 1010.5 + rnd
        out.append(Sample(t, "checkout-1", "200", {"checkout_breaker_open": 1.0,
                                                    "checkout_breaker_opened": float(opened)},
                          "checkout", rnd))
        out.append(Sample(t, "proxy", "200", {"proxy_requests_total": float(proxy)}, "proxy",
                          rnd))
    return out


def test_episodes_leave_out_intervals_in_which_the_condition_ended_and_held_again() -> None:
    kw: dict[str, Any] = {"window": "fault", "service": "proxy",
                          "metric": "proxy_requests_total", "increase": "<= 30",
                          "while": "checkout_breaker_open >= 1"}
    blind = evaluate(exp(**kw), [], reopened_between_samples(), W)
    assert (blind.passed, blind.measured) == (
        False, "rose by 82 during 3 s while checkout_breaker_open >= 1")
    seen = evaluate(exp(**kw, episodes="checkout_breaker_opened"), [],
                    reopened_between_samples(), W)
    assert (seen.passed, seen.measured) == (
        True, "rose by 2 during 2 s while checkout_breaker_open >= 1 "
              "(1 interval left out: checkout_breaker_opened rose or was not sampled)")
    # A counter that is never sampled leaves every interval out: the claim cannot pass.
    unsampled = evaluate(exp(**kw, episodes="checkout_breaker_reopened"), [],
                         reopened_between_samples(), W)
    assert not unsampled.passed
    assert unsampled.measured.startswith("checkout_breaker_open >= 1 never held")


def test_plain_increase_and_service_filter() -> None:
    assert check(window="after", metric="checkout_breaker_closed", increase=">= 1") == (
        False, "increase 0 (1 → 1; 10 samples)")
    ok, measured = check(window="fault", metric="checkout_breaker_closed", increase=">= 1")
    assert ok and measured == "increase 1 (0 → 1; 10 samples)"
    # max over the checkout only: the proxy's counter is not mixed in.
    assert check(window="fault", metric="checkout_breaker_open", max="== 1")[0]
    assert check(window="fault", metric="proxy_requests_total", max=">= 0") == (
        False, "proxy_requests_total was never sampled in the window")


def test_reason_narrows_status_and_latency() -> None:
    records = ([rec(1011 + i * 0.1, 503, 900, reason="timeout") for i in range(5)]
               + [rec(1012 + i * 0.01, 503, 8, reason="breaker_open") for i in range(95)])
    assert check(records, window="fault", status=503, reason="breaker_open",
                 p99="<= 50ms") == (True, "p99 8 ms over 95")
    assert check(records, window="fault", status=503, p99="<= 50ms") == (
        False, "p99 900 ms over 100")
    # `reason` narrows what is counted, not what it is counted out of: 95 of the window's
    # 100 answers, not 95 of 95 (which would read 100 % from one breaker answer in 1000).
    assert check(records, window="fault", status=503, reason="breaker_open",
                 count="== 95") == (True, "95 of 100")
    assert check(records, window="fault", status=503, reason="breaker_open",
                 rate=">= 99%") == (False, "95.0% (95 of 100)")


def test_ledger_expectations() -> None:
    ledger = {"double_charges": 0, "duplicate_attempts": 12}
    r = evaluate(exp(ledger="double_charges", count="== 0"), [], [], W, ledger)
    assert (r.passed, r.measured, r.text) == (True, "0", "[run] ledger double_charges == 0")
    assert not evaluate(exp(ledger="duplicate_attempts", count="== 0"), [], [], W, ledger).passed
    assert evaluate(exp(ledger="charges", count=">= 1"), [], [], W, {}).measured == (
        "no payment ledger was recorded for this run")


@pytest.mark.parametrize(("doc", "message"), [
    ({"ledger": "double_charges", "count": "== 0", "window": "fault"}, "no 'window'"),
    ({"ledger": "double_charges", "rate": "<= 1%"}, "takes only 'count'"),
    ({"ledger": "nonsense", "count": "== 0"}, "ledger"),
    ({"status": 500, "count": "== 0"}, "'window' is missing"),
    ({"window": "fault", "metric": "m", "max": "== 1", "increase": ">= 1"}, "exactly one"),
    ({"window": "fault", "metric": "m", "max": "== 1", "while": "x >= 1"}, "'while' goes"),
    ({"window": "fault", "metric": "m", "increase": "== 1", "while": "x"}, "<metric> <op>"),
    ({"window": "fault", "metric": "m", "increase": "== 1", "episodes": "x_opened"},
     "'episodes' goes with 'while'"),
    ({"window": "fault", "status": "500", "count": "== 0", "episodes": "x_opened"},
     "'while' and 'episodes' go"),
    ({"window": "fault", "status": 500, "count": "== 0", "service": "proxy"}, "'service' goes"),
    ({"window": "fault", "health": 503, "count": "== 0", "reason": "x"}, "'reason' narrows"),
])
def test_new_fields_are_validated(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        exp(**doc)


def test_ledger_figures() -> None:
    """A consistent run: retries double-charged `b`; `p1` was charged but its answer lost
    (pending, queued); `p2`, `p3` never reached the gateway (pending, queued)."""
    orders = [Order(i, ref, CONFIRMED) for i, ref in enumerate("abcd", 1)] + [
        Order(10 + i, f"p{i}", PAYMENT_PENDING) for i in (1, 2, 3)]
    out = figures(charged={"a": 1, "b": 2, "c": 1, "d": 1, "p1": 1}, duplicate_attempts=5,
                  orders=orders, queued=["p1", "p2", "p3"], fallback_responses=3)
    assert out == {
        "charges": 6, "double_charges": 1, "double_charged_refs": 1, "duplicate_attempts": 5,
        "confirmed_orders": 4, "unmatched_charges": 2, "charged_without_order": 0,
        "confirmed_without_charge": 0, "pending_orders": 3, "pending_not_queued": 0,
        "queued_not_pending": 0, "queued_without_order": 0, "duplicate_order_refs": 0,
        "fallback_responses": 3, "pending_unaccounted": 0,
    }
    assert set(out) == set(LEDGER_FIGURES)
    assert inconsistencies(out) == []


def test_inconsistencies_do_not_net_out() -> None:
    """Each inconsistency has its own figure. The old counts netted them out into the
    passing 0: charged_without_order = max(0, 2 charged refs − 3 confirmed − 1 charged and
    queued) and pending_unaccounted = max(0, 3 answers − 3 capture entries)."""
    orders = [Order(1, "a", CONFIRMED), Order(2, "b", CONFIRMED), Order(3, "c", CONFIRMED),
              Order(4, "p", PAYMENT_PENDING)]
    out = figures(
        charged={"b": 1, "x": 1},  # a confirmed order `a` was never charged; `x` is no order
        duplicate_attempts=0,
        orders=orders,
        queued=["b", "c", "p"],  # capture entries for two confirmed orders
        fallback_responses=3,  # three pending answers, one pending order
    )
    assert out["confirmed_without_charge"] == 2  # `a`, and `c` (queued, not charged)
    assert out["charged_without_order"] == 1  # `x`
    assert out["queued_not_pending"] == 2  # `b`, `c`
    assert out["pending_unaccounted"] == 2
    assert out["unmatched_charges"] == 1  # `x`: `b` is the one charge of a confirmed order
    assert (out["pending_not_queued"], out["queued_without_order"]) == (0, 0)


def test_more_pending_orders_than_answers_is_negative_not_zero() -> None:
    orders = [Order(i, f"p{i}", PAYMENT_PENDING) for i in range(4)]
    out = figures({}, 0, orders, queued=["p0", "p1", "p2", "ghost"], fallback_responses=1)
    assert out["pending_unaccounted"] == -2  # p0..p2 queued, 1 answer: max(0, 1 − 4) read 0
    assert (out["pending_not_queued"], out["queued_without_order"]) == (1, 1)  # p3, ghost


def test_shared_refs_and_orders_without_a_ref() -> None:
    orders = [Order(1, "a", CONFIRMED), Order(2, "a", CONFIRMED), Order(3, None, CONFIRMED)]
    out = figures({"a": 1}, 0, orders, queued=[], fallback_responses=0)
    assert out["duplicate_order_refs"] == 1
    assert out["confirmed_orders"] == 3
    assert out["confirmed_without_charge"] == 1  # the order with no ref joins to no charge


def test_ledger_line_names_each_inconsistency() -> None:
    orders = [Order(1, "a", CONFIRMED), Order(2, "p", PAYMENT_PENDING),
              Order(3, "q", PAYMENT_PENDING)]
    ledger = figures({"x": 1}, 0, orders, queued=["a", "q"], fallback_responses=0)
    window = WindowSummary(0, {}, {}, {}, None, None, None, 0.0, 1.0)
    variant = VariantResult(
        scenario="flaky-dependency", name="fallback", description="", backend="local",
        run_id="cl-x", config={}, fault={}, windows={w: window for w in ("before", "fault",
                                                                       "after")},
        timeline=[], expectations=[], evidence={}, signatures=[], timing={}, ledger=ledger)
    line = next(x for x in render_table(RunResults([variant])).splitlines()
                if x.startswith("  ledger:"))
    assert line.endswith(
        "1 charged without an order; 1 confirmed orders never charged; "
        "1 pending orders missing from the capture queue; "
        "1 capture entries for orders that are not pending; "
        "1 more pending orders in the capture queue than payment-pending answers users "
        "received")
    assert "pending_unaccounted" not in line
