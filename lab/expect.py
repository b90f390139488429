"""Verdicts: each expectation of a variant checked against what was measured.

Every verdict carries the measured figure in words ("23.4% (412 of 1760)") so a failed
expectation explains itself without opening the JSON.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence

from lab.load.classify import matches
from lab.load.request_log import RequestRecord, answers
from lab.results import ExpectationResult, Windows, in_window, percentile
from lab.sampler import Sample
from lab.scenario import Expectation, Variant


def evaluate(
    exp: Expectation,
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    windows: Windows,
    ledger: Mapping[str, int] | None = None,
) -> ExpectationResult:
    if exp.ledger is not None:
        return _ledger(exp, ledger or {})
    assert exp.window is not None  # validated at load time
    bounds = windows.range(exp.window)
    in_bounds = [s for s in samples if bounds[0] <= s.t < bounds[1]]
    service = exp.service or "checkout"
    if exp.metric is not None:
        if exp.increase is not None:
            return _increase(exp, [s for s in samples if s.service == service], samples,
                             bounds)
        return _metric(exp, [s for s in in_bounds if s.service == service])
    if exp.health is not None:
        return _health(exp, [s for s in in_bounds if s.service == service])
    window = answers(in_window(records, bounds))  # a dropped arrival is no answer
    if exp.reason is not None:
        window = [r for r in window if r.reason == exp.reason]
    if exp.p50 is not None or exp.p99 is not None:
        return _latency(exp, window)
    return _status(exp, window)


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
                 if e.status is not None and (e.status == "4xx" or e.status.startswith("4"))]
    allowances = [(e, windows.range(e.window)) for e in variant.expect
                  if e.window is not None and _is_allowance(e)]
    dishonest: Counter[str] = Counter()
    allowed: Counter[str] = Counter()
    for r in span:
        if _honest(r, named_4xx):
            continue
        allowance = None if r.cls == "lying_200" else next(
            (e for e, (start, end) in allowances
             if start <= r.start < end and _selects(e, r)), None)
        if allowance is not None:
            allowed[_selector_text(allowance)] += 1
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


def _is_allowance(exp: Expectation) -> bool:
    """A status count/share with an upper bound above zero: 'this many may still fail'."""
    bound = exp.count if exp.count is not None else exp.rate
    return (exp.status is not None and bound is not None
            and bound.op in ("<=", "<") and bound.value > 0)


def _selects(exp: Expectation, r: RequestRecord) -> bool:
    assert exp.status is not None
    return matches(exp.status, r.status, r.cls) and exp.reason in (None, r.reason)


def _selector_text(exp: Expectation) -> str:
    return f"{exp.status} ({exp.reason})" if exp.reason else str(exp.status)


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


def _result(
    exp: Expectation, passed: bool, measured: str, value: float | None
) -> ExpectationResult:
    return ExpectationResult(exp.text, passed, measured, value, exp.note)


def _amount(exp: Expectation, hits: int, total: int) -> tuple[bool, str, float]:
    """A count or share of hits. An empty window fails every bound, `count: "== 0"`
    included: it measured nothing, so it cannot vouch for anything."""
    if total == 0:
        return False, "no requests in the window", 0.0
    if exp.count is not None:
        return exp.count.holds(hits), f"{hits} of {total}", float(hits)
    assert exp.rate is not None
    share = hits / total
    return exp.rate.holds(share), f"{share * 100:.1f}% ({hits} of {total})", share


def _status(exp: Expectation, window: Sequence[RequestRecord]) -> ExpectationResult:
    assert exp.status is not None
    if not window:
        return _result(exp, False, "no requests in the window", None)
    hits = [r for r in window if matches(exp.status, r.status, r.cls)]
    parts: list[str] = []
    passed = True
    value: float | None = None
    if exp.count is not None or exp.rate is not None:
        ok, measured, value = _amount(exp, len(hits), len(window))
        passed &= ok
        parts.append(measured)
    if exp.retry_after:
        with_header = sum(1 for r in hits if r.retry_after)
        passed &= with_header == len(hits)
        parts.append(f"Retry-After on {with_header} of {len(hits)}")
    return _result(exp, passed, "; ".join(parts), value)


def _latency(exp: Expectation, window: Sequence[RequestRecord]) -> ExpectationResult:
    if exp.status is not None:
        window = [r for r in window if matches(exp.status, r.status, r.cls)]
    q, bound = (50, exp.p50) if exp.p50 is not None else (99, exp.p99)
    assert bound is not None
    value = percentile([r.latency_ms for r in window], q)
    if value is None:
        return _result(exp, False, "no requests in the window", None)
    return _result(exp, bound.holds(value), f"p{q} {value:.0f} ms over {len(window)}", value)


def _health(exp: Expectation, samples: Sequence[Sample]) -> ExpectationResult:
    if not samples:
        return _result(exp, False, "no /health samples in the window", None)
    hits = sum(1 for s in samples if s.health == exp.health)
    passed, measured, value = _amount(exp, hits, len(samples))
    return _result(exp, passed, f"{measured} samples", value)


def _metric(exp: Expectation, samples: Sequence[Sample]) -> ExpectationResult:
    assert exp.metric is not None
    values = [s.metrics[exp.metric] for s in samples if exp.metric in s.metrics]
    if not values:
        return _result(exp, False, f"{exp.metric} was never sampled in the window", None)
    stat, bound = exp.metric_stat()
    value = max(values) if stat == "max" else min(values)
    return _result(exp, bound.holds(value), f"{stat} {value:g} over {len(values)} samples", value)


def _increase(
    exp: Expectation,
    target: Sequence[Sample],
    all_samples: Sequence[Sample],
    bounds: tuple[float, float],
) -> ExpectationResult:
    """How much a counter rose, summed over the service's instances per sampling round.

    Without `while`: from the last round *before* the window (so a rise right at the
    window's start, such as a recompute at injection, counts) to the last round in it.
    With `while`: only between consecutive rounds in the window in which the condition
    held on a checkout instance — and, with `episodes`, in which that episode counter did
    not rise (the condition did not end and start again between the two samples).
    """
    assert exp.metric is not None and exp.increase is not None
    per_round = _per_round(target, exp.metric)
    when = {s.round: s.t for s in target if exp.metric in s.metrics}
    inside = [r for r in sorted(per_round) if bounds[0] <= when[r] < bounds[1]]
    before = [r for r in sorted(per_round) if when[r] < bounds[0]]
    cond = exp.while_
    if cond is None:
        if not inside:
            return _result(exp, False, f"{exp.metric} was never sampled in the window", None)
        start = per_round[before[-1]] if before else per_round[inside[0]]
        end = per_round[inside[-1]]
        value = end - start
        return _result(exp, exp.increase.holds(value),
                       f"increase {value:g} ({start:g} → {end:g}; {len(inside)} "
                       f"sample{'s' if len(inside) != 1 else ''})", value)
    if len(inside) < 2:
        return _result(exp, False, f"{exp.metric} was sampled fewer than twice in the window",
                       None)
    checkout = [s for s in all_samples if s.service == "checkout"]
    held = {s.round for s in checkout
            if cond.metric in s.metrics and cond.bound.holds(s.metrics[cond.metric])}
    episode = _per_round(checkout, exp.episodes) if exp.episodes else {}
    value, seconds, broken = 0.0, 0.0, 0
    for a, b in itertools.pairwise(inside):
        if a not in held or b not in held:
            continue
        if exp.episodes and (a not in episode or b not in episode
                             or episode[b] != episode[a]):
            broken += 1
            continue
        value += max(0.0, per_round[b] - per_round[a])
        seconds += when[b] - when[a]
    left_out = (f" ({broken} interval{'s' if broken != 1 else ''} left out: "
                f"{exp.episodes} rose or was not sampled)") if broken else ""
    if seconds == 0:
        return _result(exp, False, f"{cond} never held for two samples in a row{left_out}",
                       None)
    return _result(exp, exp.increase.holds(value),
                   f"rose by {value:g} during {seconds:.0f} s while {cond}{left_out}", value)


def _per_round(samples: Sequence[Sample], metric: str) -> dict[int, float]:
    """A metric summed over the instances sampled in each round."""
    out: dict[int, float] = {}
    for s in samples:
        if metric in s.metrics:
            out[s.round] = out.get(s.round, 0.0) + s.metrics[metric]
    return out


def _ledger(exp: Expectation, ledger: Mapping[str, int]) -> ExpectationResult:
    assert exp.ledger is not None and exp.count is not None
    if exp.ledger not in ledger:
        return _result(exp, False, "no payment ledger was recorded for this run", None)
    value = ledger[exp.ledger]
    return _result(exp, exp.count.holds(value), f"{value}", float(value))
