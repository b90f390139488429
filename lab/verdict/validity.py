"""Did the experiment happen as designed? The conditions a verdict needs, checked on what
the run measured; a variant that misses one is INCONCLUSIVE, neither PASS nor FAIL.

A mitigation that passes because the load generator sent a fraction of its arrivals, or a
baseline that fails because the load alone saturated the stack before the fault, proves
nothing either way: its verdict would be about the lab, not about the system. So before a
verdict counts, the run must show that
- the load generator kept its schedule (open model): every window carried at least
  MIN_SCHEDULE_SHARE of the arrivals its schedule put there;
- the healthy stack kept up before the fault: no arrival dropped at the in-flight cap, at
  least HEALTHY_2XX_SHARE of the answers 2xx and a median under SATURATED_P50_MS;
- every window an expectation judges by its requests held at least MIN_ANSWERS answers.
Each miss says what did not happen, with its figures, and the knob that changes it.

Pure: records, windows and the scenario in; reasons out.
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.load.arrivals import scheduled_between
from lab.load.request_log import RequestRecord, answers
from lab.scenario.expectations import LatencyExpectation, StatusExpectation, percentile
from lab.scenario.models import LoadSpec, Variant
from lab.verdict.results import Inconclusive, Windows, in_window

#: A window the generator sent less than this share of its scheduled arrivals in was
#: judged on another load than the one the scenario asks for.
MIN_SCHEDULE_SHARE = 0.95
#: Before the fault the healthy stack answers (almost) everything with a 2xx ...
HEALTHY_2XX_SHARE = 0.95
#: ... at once: a median above this means the load alone saturated it.
SATURATED_P50_MS = 250.0
#: Fewer answers than this in a window an expectation judges cannot carry a share (5 of 5
#: is not "100 %") nor an absence ("no 500 in 3 requests").
MIN_ANSWERS = 20


def _judged_windows(variant: Variant, mitigation: bool) -> list[str]:
    """The windows judged by their requests: each status or latency expectation's, and
    for a mitigation the honest line's (fault to the end of the load)."""
    names = [e.window for e in variant.expect
             if isinstance(e, StatusExpectation | LatencyExpectation)]
    if mitigation:
        names += ["fault", "after"]
    return list(dict.fromkeys(names))


def check_experiment(
    variant: Variant, *, mitigation: bool, records: Sequence[RequestRecord],
    windows: Windows, load: LoadSpec, seed: int, schedule_start_s: float | None = None,
    physics: bool = False,
) -> list[Inconclusive]:
    """Every way this run missed the experiment's design (empty: it happened as designed).
    `schedule_start_s`: when the open model's schedule began, in seconds into the load
    window (lab.verdict.results.ArrivalAccount.started_s); `physics`: the load was sized from the
    scenario's physics (the knobs differ)."""
    out: list[Inconclusive] = []
    if load.open_model:
        out += _generator(records, windows, load, seed, schedule_start_s)
    out += _before(records, windows, load, physics)
    for name in _judged_windows(variant, mitigation):
        got = len(answers(in_window(records, windows.range(name))))
        if got < MIN_ANSWERS:
            out.append(Inconclusive(
                "too_few", f"[{name}] had {got} answer{'s' if got != 1 else ''}, fewer than "
                f"the {MIN_ANSWERS} a verdict needs",
                "lengthen the window (fault.at, fault.until, load.duration, or a smaller "
                "offset such as after+3s) or raise the load"))
    return out


def _generator(records: Sequence[RequestRecord], windows: Windows, load: LoadSpec,
               seed: int, start_s: float | None) -> list[Inconclusive]:
    out = []
    start = 0.0 if start_s is None else start_s
    for name in ("before", "fault", "after"):
        a, b = windows.range(name)
        scheduled = scheduled_between(load.rate_per_s, load.arrivals, seed, start,
                                      a - windows.load_start, b - windows.load_start)
        sent = len(in_window(records, (a, b)))  # sent or dropped: the generator's part
        if scheduled and sent < MIN_SCHEDULE_SHARE * scheduled:
            out.append(Inconclusive(
                "generator", f"the load generator fell behind its schedule in [{name}]: "
                f"{sent} of {scheduled} scheduled arrivals ({sent / scheduled:.0%}, at least "
                f"{MIN_SCHEDULE_SHARE:.0%} needed)",
                "lower the arrival rate (load.rate, or physics.fault_demand) or give the "
                "load more workers (load.workers)"))
    return out


def _before(records: Sequence[RequestRecord], windows: Windows, load: LoadSpec,
            physics: bool) -> list[Inconclusive]:
    before = in_window(records, windows.range("before"))
    sent = answers(before)
    out = []
    lighter = ("grow the data set (stack.seed) so the slow path needs fewer arrivals, or "
               "lower physics.fault_demand" if physics else
               "lower the load (load.rate or load.users)")
    dropped = len(before) - len(sent)
    if dropped:
        out.append(Inconclusive(
            "dropped_before", f"{dropped} arrival{'s' if dropped != 1 else ''} dropped at the "
            f"in-flight cap ({load.max_in_flight}) before the fault: the healthy stack did "
            "not keep up", lighter))
    if len(sent) < MIN_ANSWERS:
        return out
    ok = sum(1 for r in sent if r.cls in ("2xx", "fallback")) / len(sent)
    p50 = percentile([r.latency_ms for r in sent], 50) or 0.0
    if ok < HEALTHY_2XX_SHARE or p50 > SATURATED_P50_MS:
        span = max(windows.fault_start - windows.load_start, 1e-9)
        out.append(Inconclusive(
            "saturated_before", f"the stack was saturated before the fault: {ok:.1%} 2xx "
            f"(at least {HEALTHY_2XX_SHARE:.0%} needed), median {p50:.0f} ms (at most "
            f"{SATURATED_P50_MS:.0f} ms) at {len(before) / span:.0f} arrivals/s",
            lighter))
    return out
