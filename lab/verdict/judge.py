"""Verdicts: each expectation of a variant checked against what was measured.

Every verdict carries the measured figure in words ("23.4% (412 of 1760)") so a failed
expectation explains itself without opening the JSON. Each kind of expectation judges
itself (lab.scenario.expectations); this module gives it what the run observed, and adds the
built-in honest line a mitigation is also judged by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lab.load.request_log import RequestRecord, answers
from lab.records.samples import Sample
from lab.scenario.expectations import Expectation, LatencyExpectation, StatusExpectation
from lab.scenario.honest import dishonest_kind, is_honest
from lab.scenario.models import Variant
from lab.verdict.results import ExpectationResult, Windows, in_window


@dataclass(frozen=True)
class _Observed:
    """A variant's records, samples and ledger, read by window
    (lab.scenario.expectations.Observed)."""

    records: Sequence[RequestRecord]
    samples: Sequence[Sample]
    windows: Windows
    ledger: Mapping[str, int] | None

    def window_range(self, window: str) -> tuple[float, float]:
        return self.windows.range(window)

    def answers(self, window: str) -> list[RequestRecord]:
        return answers(self.arrivals(window))

    def arrivals(self, window: str) -> list[RequestRecord]:
        return in_window(self.records, self.windows.range(window))

    def samples_in(self, window: str, service: str) -> list[Sample]:
        start, end = self.windows.range(window)
        return [s for s in self.samples if start <= s.t < end and s.service == service]

    def samples_of(self, service: str) -> list[Sample]:
        return [s for s in self.samples if s.service == service]


def evaluate(
    exp: Expectation,
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    windows: Windows,
    ledger: Mapping[str, int] | None = None,
) -> ExpectationResult:
    passed, measured, value = exp.check(_Observed(records, samples, windows, ledger))
    return ExpectationResult(exp.text, passed, measured, value, exp.note)


def judge(
    name: str,
    variant: Variant,
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    windows: Windows,
    ledger: Mapping[str, int] | None = None,
) -> list[ExpectationResult]:
    """A variant's own expectations, then — for a mitigation — the built-in honest line,
    so no mitigation can pass on expectations that forgot to look at some failure."""
    results = [evaluate(e, records, samples, windows, ledger) for e in variant.expect]
    if is_mitigation(name, variant):
        results.append(honest_verdict(variant, records, windows))
    return results


def is_mitigation(name: str, variant: Variant) -> bool:
    """Judged by the honest line: neither the baseline nor a control that shows the
    problem."""
    return name != "baseline" and not variant.shows_problem


HONEST_TEXT = ("[fault, after] every arrival got an honest answer (2xx, 503 with "
               "Retry-After, a 4xx the variant names)")


def honest_verdict(
    variant: Variant, records: Sequence[RequestRecord], windows: Windows
) -> ExpectationResult:
    """Every arrival from the fault's start to the end of the load got an honest answer
    (lab.scenario.honest: a 2xx, fallbacks included; a 503 with Retry-After; a 4xx code the
    variant's expectations name for the window it was sent in). An arrival an allowance
    selects (a status expectation with an upper bound above zero, in its window) is left to
    that expectation; a lying 200 never is. Anything else — 500, 502, 504, a 503 without
    Retry-After, a timeout, an error, a body cut short or off its contract, a request
    unfinished when the load stopped, an arrival the load generator dropped at its cap —
    is counted by kind: the lab cannot vouch for an answer it never saw.
    """
    span = in_window(records, (windows.fault_start, windows.load_end))
    if not answers(span):
        return ExpectationResult(HONEST_TEXT, False, "no requests in the window", None)
    named = [(e.status, windows.range(e.window)) for e in variant.expect
             if isinstance(e, StatusExpectation | LatencyExpectation)
             and e.status is not None and _is_4xx_code(e.status)]
    allowances = [(e, windows.range(e.window)) for e in variant.expect
                  if isinstance(e, StatusExpectation) and e.is_allowance]
    dishonest: Counter[str] = Counter()
    allowed: Counter[str] = Counter()
    for r in span:
        codes = [code for code, (start, end) in named if start <= r.start < end]
        if is_honest(r, codes):
            continue
        allowance = None if r.cls == "lying_200" else next(
            (e for e, (start, end) in allowances
             if start <= r.start < end and e.selects(r)), None)
        if allowance is not None:
            allowed[allowance.selector] += 1
        else:
            dishonest[dishonest_kind(r)] += 1
    count = sum(dishonest.values())
    measured = f"{count} dishonest of {len(span)}"
    if count:
        measured += ": " + ", ".join(f"{k} ×{n}" for k, n in sorted(dishonest.items()))
    for selector, n in sorted(allowed.items()):
        measured += f"; {selector} left to its allowance: {n}"
    return ExpectationResult(HONEST_TEXT, count == 0, measured, float(count))


def _is_4xx_code(selector: str) -> bool:
    """An exact 4xx code ('429'): the only kind of 4xx a variant can make honest (a bare
    '4xx' would make a 404 for a broken route an honest answer to an overload)."""
    return len(selector) == 3 and selector.startswith("4") and selector.isdigit()
