"""The open model's decisions, pure: when arrivals happen, whether one may be sent, and
how the lab accounts for them afterwards.

Closed-loop users wait for their answer before the next request, so when the service
slows down the arrivals slow down with it and the queue stops growing (coordinated
omission). An open model keeps arriving whatever the service does: a schedule of arrival
times at a target rate (Poisson or even), one request per arrival, sent without waiting
for any earlier answer, up to a cap on requests in flight. An arrival that finds the cap
full is not sent and is logged as a client-side drop — never silently throttled.

Standard library only: the Locust subprocess imports this module
(lab/load/open_model.py drives it with gevent), and the lab reads the same schedule back
to know what each second should have carried (lab/verdict/results.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ARRIVAL_KINDS = ("poisson", "even")
DEFAULT_MAX_IN_FLIGHT = 1000
#: A second is behind its target when it carried fewer than this share of the arrivals
#: the schedule put in it ...
BEHIND_SHARE = 0.9
#: ... and at least this many fewer (so a single arrival sent a millisecond late, across
#: a second's boundary, cannot make a slow schedule look behind).
BEHIND_MIN_SHORT = 2
#: Why a dropped arrival has no answer (its record's `error`).
DROP_REASON = "max_in_flight"


def arrival_offsets(rate: float, kind: str, seed: int) -> Iterator[float]:
    """Arrival times in seconds from the schedule's start, forever, in increasing order.

    `even`: exactly 1/rate apart, the first at 0. `poisson`: exponential gaps of mean
    1/rate drawn from a generator seeded by `seed` alone, so a seed gives the same
    schedule every time (in the load generator and in the lab that reads it back).
    Offsets are computed from the arrival's index (even) or summed gaps (poisson), never
    from when the previous arrival was actually sent: a late generator does not shift the
    schedule.
    """
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"expected a positive arrival rate, got {rate!r}")
    if kind == "even":
        k = 0
        while True:
            yield k / rate
            k += 1
    elif kind == "poisson":
        rng = random.Random(f"chaoslab-arrivals:{seed}")
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            yield t
    else:
        raise ValueError(f"expected arrivals {' or '.join(ARRIVAL_KINDS)}, got {kind!r}")


def offsets_until(rate: float, kind: str, seed: int, horizon: float) -> list[float]:
    """The schedule's offsets before `horizon` seconds."""
    out: list[float] = []
    for offset in arrival_offsets(rate, kind, seed):
        if offset >= horizon:
            return out
        out.append(offset)
    return out  # pragma: no cover — the schedule is infinite


def drive(
    offsets: Iterable[float],
    *,
    start: float,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
    arrive: Callable[[float], object],
    until: float | None = None,
) -> int:
    """Fire `arrive(due)` at each scheduled time (`start + offset`); return how many fired.

    Sleeps until each arrival is due, and only then: `arrive` must not wait for anything
    (the load generator spawns a greenlet per request). An arrival already overdue (the
    generator was starved of CPU) fires at once, after a zero sleep that lets the requests
    already spawned run; the schedule keeps its absolute times, so a late generator
    catches up instead of quietly lowering the rate. Stops before the first arrival due at
    or after `until` (None: never — Locust stops the run).
    """
    return drive_each(((o, start + o) for o in offsets), start=start, clock=clock,
                      sleep=sleep, arrive=arrive, until=until)


def drive_each(
    arrivals: Iterable[tuple[float, T]],
    *,
    start: float,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
    arrive: Callable[[T], object],
    until: float | None = None,
) -> int:
    """`drive` for arrivals that carry what they are: `(offset, what)`, and `arrive(what)`
    at `start + offset`."""
    fired = 0
    for offset, what in arrivals:
        due = start + offset
        if until is not None and due >= until:
            break
        sleep(max(0.0, due - clock()))
        arrive(what)
        fired += 1
    return fired


def share(arrivals: Iterable[T], index: int, count: int) -> Iterator[T]:
    """Worker `index` of `count`: every arrival whose position is `index` modulo `count`.
    The workers together fire the whole schedule, each arrival exactly once."""
    if not 0 <= index < count:
        raise ValueError(f"expected a worker index from 0 to {count - 1}, got {index}")
    for position, arrival in enumerate(arrivals):
        if position % count == index:
            yield arrival


class InFlightCap:
    """The cap on requests in flight, and the count of what it let through or dropped.

    `admit()` at each arrival: True (one more in flight; `release()` when its answer, or
    its failure, is in) or False (the cap was full: the arrival is dropped, and counted).
    Used from one gevent thread, so no lock: nothing yields between the check and the
    count.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"expected a cap of at least 1 request in flight, got {limit}")
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.sent = 0
        self.dropped = 0

    def admit(self) -> bool:
        if self.in_flight >= self.limit:
            self.dropped += 1
            return False
        self.in_flight += 1
        self.sent += 1
        self.peak = max(self.peak, self.in_flight)
        return True

    def release(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("released a request that was never admitted")
        self.in_flight -= 1


def drop_record(t: float, request: str) -> dict[str, Any]:
    """The request-log line of an arrival dropped at the cap: no status, no latency, an
    outcome of its own (lab.load.request_log reads it as `dropped`, never as an answer)."""
    return {
        "t": round(t, 6),
        "ms": 0.0,
        "status": None,
        "outcome": "dropped",
        "retry_after": False,
        "kind": "none",
        "request": request,
        "instance": None,
        "error": DROP_REASON,
    }


class RequestPicker:
    """Which request kind each arrival sends, by the scenario's endpoint weights, from a
    generator seeded apart from the schedule's (the mix cannot shift the arrival times)."""

    def __init__(self, weights: Sequence[tuple[str, int]], seed: int) -> None:
        if not weights or any(w < 1 for _, w in weights):
            raise ValueError("expected at least one request kind with a weight of 1 or more")
        self.kinds = [k for k, _ in weights]
        self.weights = [w for _, w in weights]
        self.rng = random.Random(f"chaoslab-requests:{seed}")

    def pick(self) -> str:
        if len(self.kinds) == 1:
            return self.kinds[0]
        return self.rng.choices(self.kinds, weights=self.weights)[0]


# ---------------------------------------------------------------- reading it back


def schedule_start(first_arrival_s: float, rate: float, kind: str, seed: int) -> float:
    """When the schedule began, in seconds since the load window opened, from when its
    first arrival was seen (the generator starts a little after the lab opens the window,
    when Locust has started its user). The first arrival is never dropped (the cap is
    empty then), so it is the earliest record of the log."""
    return first_arrival_s - next(arrival_offsets(rate, kind, seed))


def scheduled_per_second(
    rate: float, kind: str, seed: int, start_s: float, seconds: int
) -> list[int]:
    """How many arrivals the schedule put in each second of the load window, the schedule
    having begun `start_s` seconds into it. For `even` this is the rate (±1 where an
    arrival falls on a boundary); for `poisson`, the draw of that second — so a quiet
    second of a Poisson schedule is not mistaken for a generator that fell behind."""
    counts = [0] * seconds
    for offset in offsets_until(rate, kind, seed, max(0.0, seconds - start_s)):
        i = math.floor(start_s + offset)
        if 0 <= i < seconds:
            counts[i] += 1
    return counts


def scheduled_between(rate: float, kind: str, seed: int, start_s: float,
                      since_s: float, until_s: float) -> int:
    """How many arrivals the schedule, begun `start_s` seconds into the load window, put
    between `since_s` and `until_s` (seconds into the window)."""
    return sum(1 for offset in offsets_until(rate, kind, seed, max(0.0, until_s - start_s))
               if start_s + offset >= since_s)


def behind_seconds(
    achieved: Sequence[int], scheduled: Sequence[int], judged: int
) -> list[int]:
    """The seconds (of the first `judged`) in which the generator sent or dropped fewer
    than BEHIND_SHARE of the arrivals its schedule put there, and at least
    BEHIND_MIN_SHORT fewer."""
    return [
        i for i in range(min(judged, len(achieved), len(scheduled)))
        if achieved[i] < BEHIND_SHARE * scheduled[i]
        and scheduled[i] - achieved[i] >= BEHIND_MIN_SHORT
    ]


@dataclass(frozen=True)
class OpenLoad:
    """What the load generator needs to run the open model (CHAOSLAB_LOAD_SPEC["open"])."""

    rate: float
    arrivals: str
    max_in_flight: int

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "arrivals": self.arrivals,
                "max_in_flight": self.max_in_flight}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OpenLoad:
        return cls(float(doc["rate"]), str(doc.get("arrivals", "poisson")),
                   int(doc.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)))
