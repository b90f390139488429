"""Verdicts: each expectation of a variant checked against what was measured.

Every verdict carries the measured figure in words ("23.4% (412 of 1760)") so a failed
expectation explains itself without opening the JSON. Each kind of expectation judges
itself (lab.expectations); this module gives it what the run observed, and adds the
built-in honest line a mitigation is also judged by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lab.expectations import Expectation, LatencyExpectation, StatusExpectation
from lab.load.classify import matches
from lab.load.request_log import RequestRecord, answers
from lab.results import ExpectationResult, Windows, in_window
from lab.sampler import Sample
from lab.scenario import Variant


@dataclass(frozen=True)
class _Observed:
    """A variant's records, samples and ledger, read by window (lab.expectations.Observed)."""

    records: Sequence[RequestRecord]
    samples: Sequence[Sample]
    windows: Windows
    ledger: Mapping[str, int] | None

    def window_range(self, window: str) -> tuple[float, float]:
        return self.windows.range(window)

    def answers(self, window: str) -> list[RequestRecord]:
        return answers(in_window(self.records, self.windows.range(window)))

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
    if name != "baseline" and not variant.shows_problem:
        results.append(honest_verdict(variant, records, windows))
    return results


HONEST_TEXT = "[fault, after] every answer is honest (2xx, 503 with Retry-After, expected 4xx)"


def honest_verdict(
    variant: Variant, records: Sequence[RequestRecord], windows: Windows
) -> ExpectationResult:
    """Every request sent from the fault's start to the end of the load got an honest
    answer: a 2xx (fallbacks included), a 503 with Retry-After, or a 4xx the variant's
    expectations name. A request an allowance selects (a status expectation with an upper
    bound above zero, in its window) is left to that expectation; a lying 200 never is.
    Anything else — 500, 502, 504, a 503 without Retry-After, a timeout, a connection
    error, an unreadable body, a lying 200 — is counted by kind.

    Arrivals the open model's load generator dropped at its cap were never sent: they are
    not answers, honest or not. They do not fail the line (they are the generator's, not
    the service's) but the measured text says how many there were.
    """
    everything = in_window(records, (windows.fault_start, windows.load_end))
    span = answers(everything)
    drops = _drops_text(len(everything) - len(span))
    if not span:
        return ExpectationResult(HONEST_TEXT, False, "no requests in the window" + drops, None)
    named_4xx = [e.status for e in variant.expect
                 if isinstance(e, StatusExpectation | LatencyExpectation) and e.status is not None
                 and (e.status == "4xx" or e.status.startswith("4"))]
    allowances = [(e, windows.range(e.window)) for e in variant.expect
                  if isinstance(e, StatusExpectation) and e.is_allowance]
    dishonest: Counter[str] = Counter()
    allowed: Counter[str] = Counter()
    for r in span:
        if _honest(r, named_4xx):
            continue
        allowance = None if r.cls == "lying_200" else next(
            (e for e, (start, end) in allowances
             if start <= r.start < end and e.selects(r)), None)
        if allowance is not None:
            allowed[allowance.selector] += 1
        else:
            dishonest[_dishonest_kind(r)] += 1
    count = sum(dishonest.values())
    measured = f"{count} dishonest of {len(span)}"
    if count:
        measured += ": " + ", ".join(f"{k} ×{n}" for k, n in sorted(dishonest.items()))
    for selector, n in sorted(allowed.items()):
        measured += f"; {selector} left to its allowance: {n}"
    return ExpectationResult(HONEST_TEXT, count == 0, measured + drops, float(count))


def _drops_text(dropped: int) -> str:
    if not dropped:
        return ""
    return (f"; {dropped} arrival{'s' if dropped != 1 else ''} dropped by the load generator "
            "at its max_in_flight cap (never sent: not answers, and not counted here)")


def _honest(r: RequestRecord, named_4xx: Sequence[str]) -> bool:
    if r.cls in ("2xx", "fallback"):
        return True
    if r.cls == "503":
        return r.retry_after
    return r.cls == "4xx" and any(matches(s, r.status, r.cls) for s in named_4xx)


def _dishonest_kind(r: RequestRecord) -> str:
    if r.cls == "lying_200":
        return "lying 200"
    if r.cls == "503":
        return "503 without Retry-After"
    if r.cls == "timeout":
        return "timeout"
    if r.cls == "error":
        return f"error ({r.error})" if r.error else "error"
    return str(r.status)
