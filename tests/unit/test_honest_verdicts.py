"""Verdicts you can trust: the built-in honest line of every mitigation, allowances,
controls, empty windows, the 502/504 classes and the `server_errors` selector."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lab.load.classify import answer_outcome, matches, response_class
from lab.load.request_log import RequestRecord
from lab.records.samples import Sample
from lab.report.table import render_table
from lab.scenario.models import Expectation, Variant
from lab.verdict.judge import HONEST_TEXT, evaluate, judge
from lab.verdict.results import ExpectationResult, RunResults, VariantResult, Windows, WindowSummary

W = Windows(load_start=1000.0, fault_start=1010.0, fault_end=1020.0, load_end=1030.0)


def rec(t: float, status: int | None, *, outcome: str = "response", retry_after: bool = False,
        kind: str = "ok", error: str | None = None) -> RequestRecord:
    return RequestRecord(start=t, latency_ms=10.0, status=status, outcome=outcome,
                         retry_after=retry_after, body_kind=kind, request="checkout",
                         instance="checkout-1", error=error)


def variant(*expect: dict[str, Any], **kw: Any) -> Variant:
    return Variant.model_validate({"expect": list(expect), **kw})


NO_500S = {"window": "fault", "status": 500, "count": "== 0"}
# 10 honest answers before the fault, then 10 x 201 and 5 x 503 with Retry-After in the
# fault, and 10 x 201 after it: what a good mitigation looks like.
GOOD = ([rec(1000 + i, 201) for i in range(10)]
        + [rec(1010 + i * 0.5, 201) for i in range(10)]
        + [rec(1015.2 + i * 0.5, 503, retry_after=True, kind="problem") for i in range(5)]
        + [rec(1020 + i, 201) for i in range(10)])


def honest_line(v: Variant, records: list[RequestRecord], name: str = "timeouts"
                ) -> ExpectationResult | None:
    results = judge(name, v, records, [], W)
    own, extra = results[:len(v.expect)], results[len(v.expect):]
    assert all(r.text != HONEST_TEXT for r in own)
    return extra[0] if extra else None


def test_a_good_mitigation_passes_the_honest_line() -> None:
    line = honest_line(variant(NO_500S), GOOD)
    assert line is not None
    assert (line.passed, line.measured) == (True, "0 dishonest of 25")


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (rec(1012.1, 502, kind="plain"), "502 ×1"),
        (rec(1012.1, 504, kind="plain"), "504 ×1"),
        (rec(1012.1, None, outcome="error", kind="none", error="ConnectionResetError"),
         "error (ConnectionResetError) ×1"),
        (rec(1012.1, None, outcome="timeout", kind="none"), "timeout ×1"),
        (rec(1012.1, 200, kind="lying_200"), "lying 200 ×1"),
        (rec(1012.1, 503, kind="problem"), "503 without Retry-After ×1"),
        (rec(1025.1, 500, kind="problem"), "500 ×1"),  # the after window counts too
        (rec(1012.1, 404, kind="problem"), "404 ×1"),  # a 4xx no expectation names
    ],
)
def test_one_dishonest_answer_fails_a_no_500s_mitigation(bad: RequestRecord, kind: str) -> None:
    v = variant(NO_500S)
    own = evaluate(v.expect[0], [*GOOD, bad], [], W)
    if bad.status != 500:
        assert own.passed  # "no 500s" alone would have let it through
    line = honest_line(v, [*GOOD, bad])
    assert line is not None
    assert (line.passed, line.measured, line.value) == (False, f"1 dishonest of 26: {kind}", 1.0)


def test_measured_text_counts_each_kind() -> None:
    bad = [rec(1011.1, 502, kind="plain"), rec(1011.3, 502, kind="plain"),
           rec(1021.1, 500, kind="problem")]
    line = honest_line(variant(NO_500S), GOOD + bad)
    assert line is not None and line.measured == "3 dishonest of 28: 500 ×1, 502 ×2"


def test_an_unreadable_2xx_body_is_dishonest() -> None:
    outcome, kind, error = answer_outcome(201, "application/json", None)
    bad = rec(1012.1, 201, outcome=outcome, kind=kind, error=error)
    line = honest_line(variant(NO_500S), [*GOOD, bad])
    assert line is not None
    assert (line.passed, line.measured) == (False, "1 dishonest of 26: error (BodyUnreadable) ×1")


def test_a_4xx_the_variant_names_is_honest() -> None:
    records = [*GOOD, rec(1012.1, 409, kind="problem"), rec(1013.1, 422, kind="problem")]
    # A bare '4xx' makes no 4xx honest (a 404 is no answer to an overload); as an
    # allowance it still leaves them to its own bound.
    line = honest_line(variant(NO_500S, {"window": "fault", "status": "4xx", "count": ">= 1"}),
                       records)
    assert line is not None and (line.passed, line.measured) == (
        False, "2 dishonest of 27: 409 ×1, 422 ×1")
    line = honest_line(variant(NO_500S, {"window": "fault", "status": "4xx", "rate": "<= 50%"}),
                       records)
    assert line is not None and (line.passed, line.measured) == (
        True, "0 dishonest of 27; 4xx left to its allowance: 2")
    line = honest_line(variant(NO_500S, {"window": "fault", "status": 409, "count": ">= 1"}),
                       records)
    assert line is not None and (line.passed, line.measured) == (False, "1 dishonest of 27: 422 ×1")


READINESS = variant(
    {"window": "fault", "status": 503, "count": ">= 1", "retry_after": True},
    {"window": "fault", "status": 500, "rate": "<= 40%"},
)


def test_a_500_within_the_allowance_passes_while_a_502_still_fails() -> None:
    allowed = [rec(1011.1 + i * 0.1, 500, kind="problem") for i in range(3)]
    line = honest_line(READINESS, GOOD + allowed)
    assert line is not None
    assert (line.passed, line.measured) == (
        True, "0 dishonest of 28; 500 left to its allowance: 3")
    line = honest_line(READINESS, [*GOOD, *allowed, rec(1012.7, 502, kind="plain")])
    assert line is not None
    assert (line.passed, line.measured) == (
        False, "1 dishonest of 29: 502 ×1; 500 left to its allowance: 3")


def test_an_allowance_covers_only_its_own_window() -> None:
    line = honest_line(READINESS, [*GOOD, rec(1021.0, 500, kind="problem")])
    assert line is not None and (line.passed, line.measured) == (False, "1 dishonest of 26: 500 ×1")


@pytest.mark.parametrize("bound", ["== 0", ">= 1", "<= 0", "== 0%"])
def test_only_an_upper_bound_above_zero_is_an_allowance(bound: str) -> None:
    key = "rate" if "%" in bound else "count"
    v = variant({"window": "fault", "status": 500, key: bound})
    line = honest_line(v, [*GOOD, rec(1011.1, 500, kind="problem")])
    assert line is not None and not line.passed


def test_a_lying_200_is_never_left_to_an_allowance() -> None:
    v = variant({"window": "fault", "status": 200, "count": "<= 5"})
    line = honest_line(v, [*GOOD, rec(1011.1, 200, kind="lying_200")])
    assert line is not None and (line.passed, line.measured) == (
        False, "1 dishonest of 26: lying 200 ×1")


def test_controls_and_the_baseline_get_no_honest_line() -> None:
    records = [*GOOD, rec(1011.1, 500, kind="problem")]
    control = variant({"window": "fault", "status": 500, "count": ">= 1"}, shows_problem=True)
    assert honest_line(control, records) is None
    assert honest_line(variant({"window": "fault", "status": 500, "count": ">= 1"}), records,
                       name="baseline") is None
    results = judge("swallow-errors", control, records, [], W)
    assert [r.passed for r in results] == [True]


def test_an_empty_fault_and_after_span_fails_the_honest_line() -> None:
    line = honest_line(variant(NO_500S), GOOD[:10])
    assert line is not None and (line.passed, line.measured) == (False, "no requests in the window")


# ------------------------------------------------------------- empty windows


def test_an_empty_window_fails_a_zero_count() -> None:
    r = evaluate(Expectation.model_validate(NO_500S), GOOD[:10], [], W)
    assert (r.passed, r.measured) == (False, "no requests in the window")


def test_an_empty_window_fails_retry_after_alone() -> None:
    e = Expectation.model_validate({"window": "fault", "status": 503, "retry_after": True})
    assert not evaluate(e, [], [], W).passed


@pytest.mark.parametrize("amount", [{"count": "== 0"}, {"count": ">= 1"}, {"rate": "<= 10%"}])
def test_an_empty_window_fails_health_counts(amount: dict[str, str]) -> None:
    samples = [Sample(1001.0 + i, "checkout-1", "200") for i in range(5)]  # none in the fault
    e = Expectation.model_validate({"window": "fault", "health": 503, **amount})
    r = evaluate(e, [], samples, W)
    assert (r.passed, r.measured) == (False, "no /health samples in the window")


def test_ledger_and_metric_bounds_still_judge_zero() -> None:
    ledger = Expectation.model_validate({"ledger": "double_charges", "count": "== 0"})
    assert evaluate(ledger, [], [], W, {"double_charges": 0}).passed
    metric = Expectation.model_validate({"window": "fault", "metric": "m", "max": "== 0"})
    samples = [Sample(1011.0, "checkout-1", "200", {"m": 0.0})]
    assert evaluate(metric, [], samples, W).passed


# ------------------------------------------------------------- classes and selectors


@pytest.mark.parametrize(
    ("status", "selected"),
    [(500, True), (502, True), (504, True), (599, True), (501, True), (503, False),
     (200, False), (404, False), (None, False)],
)
def test_server_errors_is_any_5xx_but_503(status: int | None, selected: bool) -> None:
    outcome = "response" if status is not None else "error"
    cls = response_class(status, outcome, "plain")
    assert matches("server_errors", status, cls) is selected


def test_server_errors_and_other_5xx_are_valid_selectors() -> None:
    e = Expectation.model_validate({"window": "fault", "status": "server_errors",
                                    "count": "== 0"})
    records = [*GOOD, rec(1011.1, 502, kind="plain")]
    assert (evaluate(e, records, [], W).measured) == "1 of 16"
    e = Expectation.model_validate({"window": "fault", "status": "other_5xx", "count": "== 0"})
    assert evaluate(e, [*records, rec(1011.2, 501, kind="plain")], [], W).measured == "1 of 17"


def test_502_and_504_have_their_own_classes() -> None:
    assert response_class(502, "response", "plain") == "502"
    assert response_class(504, "response", "plain") == "504"
    assert response_class(501, "response", "plain") == "other_5xx"


def test_the_table_has_502_and_504_columns() -> None:
    fault = [rec(1011, 201), rec(1011.5, 500), rec(1012, 502), rec(1012.5, 502),
             rec(1013, 503, retry_after=True), rec(1013.5, 504), rec(1014, 501)]
    v = VariantResult(
        scenario="demo", name="timeouts", description="", backend="local", run_id="cl-x",
        config={}, fault={}, windows={"fault": WindowSummary.of(fault, 10, 20)}, timeline=[],
        expectations=[], evidence={}, signatures=[], timing={})
    lines = render_table(RunResults([v])).splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[2])]
    row = {lines[1][a:b].strip(): lines[3][a:b].strip() for a, b in spans}
    assert (row["500"], row["502"], row["503 (Retry-After)"], row["504"], row["other"]) == (
        "1", "2", "1 (1)", "1", "1")


# ------------------------------------------------------------- unreadable bodies


def test_an_unreadable_2xx_body_is_an_error() -> None:
    outcome, kind, error = answer_outcome(200, "application/json", None)
    assert (outcome, kind, error) == ("error", "none", "BodyUnreadable")
    assert response_class(200, outcome, kind) == "error"


def test_readable_bodies_and_unreadable_error_bodies_are_responses() -> None:
    assert answer_outcome(201, "application/json", b'{"status": "CONFIRMED"}') == (
        "response", "ok", None)
    assert answer_outcome(503, "application/problem+json", None) == ("response", "plain", None)
