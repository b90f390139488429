"""What the healthy stack can serve on this machine, measured before the load, so a rate
it cannot serve is refused instead of judged.

The physics model counts the pool (rate × a query's cost against its connections); it
cannot see the rest of what a request costs — the service's own CPU, the router's hop, the
load generator sharing the cores. A rate above what the whole healthy stack answers would
saturate it before the fault, and every verdict after that would be about the load, not
the fault. So before the open model's load starts, a short closed-loop burst of the
scenario's own requests, through the router, by the same load generator, measures how many
answers per second the healthy stack gives here; a rate above MAX_UTILISATION of that is
refused (exit 2) with the knob that lowers it.

Kept per process like the slow path's measurement, so a scenario's variants share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from lab.errors import LabError, ScenarioError
from lab.load.request_log import in_flight_path, read_request_log, start_path
from lab.scenario.models import LoadSpec
from lab.stack.base import StackHandle
from lab.system.threads import off_loop

#: Closed-loop users of the burst: enough to keep every instance busy (a healthy answer
#: takes milliseconds), few enough not to queue for long.
PROBE_USERS = 16
#: The burst's length; answers are counted after its first PROBE_SKIP_S (Locust starting).
PROBE_S = 3.0
PROBE_SKIP_S = 0.5
#: The open model's rate may use at most this share of what the healthy stack serves:
#: Poisson arrivals at a higher utilisation queue for long stretches with no fault at all.
MAX_UTILISATION = 0.8

_measured: dict[tuple[Any, ...], Capacity] = {}


@dataclass(frozen=True)
class Capacity:
    """Answers per second the healthy stack gave under a closed-loop burst."""

    answers_per_s: float
    users: int
    answers: int
    errors: int
    took_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RateRefused(ScenarioError):
    """The scenario asks for more arrivals than the healthy stack serves here (exit 2)."""

    def __init__(self, where: str, why: str) -> None:
        LabError.__init__(self, f"{where}: {why}")
        self.path, self.problems = where, [why]


async def measure_capacity(handle: StackHandle, load: LoadSpec, *, carts: int, seed: int,
                           key: tuple[Any, ...] = ()) -> Capacity:
    """The burst against the stack `handle` runs, with `load`'s requests (cached per
    process under `key`)."""
    if key and key in _measured:
        return _measured[key]
    # Shorter than a scenario may be (no validation): the burst is the lab's, not the user's.
    probe = load.model_copy(update={"users": PROBE_USERS, "spawn_rate": float(PROBE_USERS * 10),
                                    "rate": None, "duration": PROBE_S, "wait": 0.0})
    began = time.monotonic()
    generator = handle.load_generator(probe, carts=carts, seed=seed)
    start = await off_loop(generator.start)
    try:
        while not generator.finished() and time.time() < start + PROBE_S + 1.5:
            records = read_request_log(generator.request_log)
            if records and records[-1].start >= min(r.start for r in records) + PROBE_S:
                break
            await asyncio.sleep(0.25)
    finally:
        await off_loop(generator.stop)
    log = generator.request_log
    records = read_request_log(log)
    # The run's own load writes the same log: the burst's records go aside.
    with contextlib.suppress(OSError):
        os.replace(log, log.with_name("capacity-probe.jsonl"))
    with contextlib.suppress(OSError):
        in_flight_path(log).unlink()
    with contextlib.suppress(OSError):
        start_path(log).unlink()
    capacity = _rate(records, time.monotonic() - began)
    if key:
        _measured[key] = capacity
    return capacity


def _rate(records: list[Any], took_s: float) -> Capacity:
    if not records:
        return Capacity(0.0, PROBE_USERS, 0, 0, round(took_s, 3))
    first = min(r.start for r in records) + PROBE_SKIP_S
    steady = [r for r in records if r.start >= first and r.outcome != "unfinished"]
    last = max((r.start + r.latency_ms / 1000 for r in steady), default=first)
    ok = [r for r in steady if r.cls in ("2xx", "fallback")]
    span = max(last - first, 1e-9)
    return Capacity(round(len(ok) / span, 1), PROBE_USERS, len(ok), len(steady) - len(ok),
                    round(took_s, 3))


def refusal(rate: float, capacity: Capacity, *, physics: bool) -> str | None:
    """Why `rate` arrivals per second cannot be judged on this stack here, or None."""
    limit = MAX_UTILISATION * capacity.answers_per_s
    if rate <= limit:
        return None
    knob = ("grow the data set (stack.seed, or your seed in stack.database.sql) so the slow "
            "path needs fewer arrivals, or lower physics.fault_demand"
            if physics else "lower load.rate")
    return (f"load.rate: {rate:g} arrivals/s is more than this machine's healthy stack "
            f"serves: it answered {capacity.answers_per_s:g}/s under a closed-loop burst of "
            f"{capacity.users} users, and the open model may use at most "
            f"{MAX_UTILISATION:.0%} of that ({limit:.0f}/s) or it saturates before the "
            f"fault; {knob}")
