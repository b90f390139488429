"""Verdicts: each expectation of a variant checked against what was measured.

Every verdict carries the measured figure in words ("23.4% (412 of 1760)") so a failed
expectation explains itself without opening the JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.load.classify import matches
from lab.load.request_log import RequestRecord
from lab.results import ExpectationResult, Windows, in_window, percentile
from lab.sampler import Sample
from lab.scenario import Expectation


def evaluate(
    exp: Expectation,
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    windows: Windows,
) -> ExpectationResult:
    bounds = windows.range(exp.window)
    if exp.metric is not None:
        if exp.increase is not None:
            return _increase(exp, samples, bounds)
        return _metric(exp, [s for s in samples if bounds[0] <= s.t < bounds[1]])
    if exp.health is not None:
        return _health(exp, [s for s in samples if bounds[0] <= s.t < bounds[1]])
    window = in_window(records, bounds)
    if exp.p50 is not None or exp.p99 is not None:
        return _latency(exp, window)
    return _status(exp, window)


def _result(
    exp: Expectation, passed: bool, measured: str, value: float | None
) -> ExpectationResult:
    return ExpectationResult(exp.text, passed, measured, value, exp.note)


def _amount(exp: Expectation, hits: int, total: int) -> tuple[bool, str, float]:
    if exp.count is not None:
        return exp.count.holds(hits), f"{hits} of {total}", float(hits)
    assert exp.rate is not None
    if total == 0:
        return False, "no requests in the window", 0.0
    share = hits / total
    return exp.rate.holds(share), f"{share * 100:.1f}% ({hits} of {total})", share


def _status(exp: Expectation, window: Sequence[RequestRecord]) -> ExpectationResult:
    assert exp.status is not None
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
    hits = sum(1 for s in samples if s.health == exp.health)
    if exp.count is None and not samples:
        return _result(exp, False, "no /health samples in the window", None)
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
    exp: Expectation, samples: Sequence[Sample], bounds: tuple[float, float]
) -> ExpectationResult:
    """How much a counter grew over the window, summed over instances: per instance, its
    last sample in the window minus the last sample before the window began (or, with
    none, the window's first sample).

    Starting from the sample *before* the window counts what happened between that sample
    and the first one inside, such as a recompute right at injection.
    """
    assert exp.metric is not None and exp.increase is not None
    total, sampled, parts = 0.0, 0, []
    for instance in sorted({s.instance for s in samples}):
        series = [
            (s.t, s.metrics[exp.metric])
            for s in samples
            if s.instance == instance and exp.metric in s.metrics
        ]
        before = [v for t, v in series if t < bounds[0]]
        inside = [v for t, v in series if bounds[0] <= t < bounds[1]]
        if not inside:
            continue
        start = before[-1] if before else inside[0]
        total += inside[-1] - start
        sampled += len(inside)
        parts.append(f"{start:g} → {inside[-1]:g}")
    if not sampled:
        return _result(exp, False, f"{exp.metric} was never sampled in the window", None)
    measured = f"increase {total:g} ({', '.join(parts)}; {sampled} samples)"
    return _result(exp, exp.increase.holds(total), measured, total)
