"""How fast one load-generator worker can send on this machine, and how many workers a
rate needs: known before the load, not discovered by a run that falls behind.

`make bench` measures one worker's ceiling — the highest open-model rate it holds at
MIN_HELD_SHARE of its schedule against a trivial endpoint — and writes it to
`<cache>/generator.json`; until it has, a default measured on a 2-core machine stands in
(DEFAULT_CEILING_PER_S). A load asks for `load.workers` (a number, or `auto`: as many as
its rate needs, one for every shipped scenario here); a rate the workers cannot send, or
that needs more workers than the machine has cores for, is refused before the load with
the knob that changes it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.system.run_dirs import cache_root

#: The share of its schedule a worker must send to be said to hold a rate.
MIN_HELD_SHARE = 0.98
#: A worker is asked for at most this share of its ceiling (the stack shares the cores).
HEADROOM = 0.8
#: One worker against the bare aiohttp app, both on the same 2 cores (`make bench`, one
#: run each, three machines of this project's kind): 5500/s held on 2026-12-02, 5000/s on
#: 2026-12-03, 1250/s on 2026-12-04 (2000/s: 96.0 %; that machine's Python ran a 10M-add
#: loop in 1.7 s). The default is the lowest: on a machine nobody benched, a rate it
#: cannot send is better refused or split than judged INCONCLUSIVE after the load.
DEFAULT_CEILING_PER_S = 1250.0
DEFAULT_SOURCE = "default: the lowest one worker held on a 2-core machine (1250/s, 2026-12-04)"


@dataclass(frozen=True)
class Ceiling:
    per_worker_per_s: float
    source: str  # how it is known: `make bench` on a date, or the default

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ceiling_path() -> Path:
    return cache_root() / "generator.json"


def read_ceiling() -> Ceiling:
    """What `make bench` measured here, else the default."""
    try:
        doc = json.loads(ceiling_path().read_text())
        return Ceiling(float(doc["per_worker_per_s"]), str(doc["source"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Ceiling(DEFAULT_CEILING_PER_S, DEFAULT_SOURCE)


def write_ceiling(per_worker_per_s: float) -> Ceiling:
    """Record a measured ceiling for the runs that follow on this machine."""
    ceiling = Ceiling(per_worker_per_s, f"make bench, {time.strftime('%Y-%m-%d')}")
    path = ceiling_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ceiling.to_json()))
    tmp.replace(path)
    return ceiling


def usable_cores() -> int:
    """CPUs this process may run on (`taskset -c 0 lab run` makes it 1)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_for(rate: float | None, asked: int | str, ceiling: Ceiling,
                cores: int | None = None, remote: int = 0) -> int:
    """How many local workers to run a load with; raises ValueError, with the knob, for
    a rate they cannot send. `rate` None: closed loop (one worker unless asked). `remote`
    workers on other machines count as able to send as much as one here."""
    cores = cores or usable_cores()
    per = ceiling.per_worker_per_s * HEADROOM
    if rate is None:
        return asked if isinstance(asked, int) else 1
    needed = max(1, math.ceil(rate / per))
    if asked == "auto":
        local = max(0, needed - remote)
        if local > cores:
            raise ValueError(
                f"load.rate: {rate:g} arrivals/s needs {needed} load-generator workers "
                f"({per:.0f}/s each: {HEADROOM:.0%} of a worker's ceiling, "
                f"{ceiling.source}) and this machine has {cores} core(s) for them; lower "
                "the rate, or add workers on other machines (lab worker --master)")
        return local
    assert isinstance(asked, int)
    if asked + remote < needed:
        raise ValueError(
            f"load.workers: {asked + remote} worker(s) cannot send {rate:g} arrivals/s (at "
            f"most {(asked + remote) * per:.0f}/s: {per:.0f}/s each, {HEADROOM:.0%} of a "
            f"worker's ceiling, {ceiling.source}); set load.workers to {needed} or 'auto', "
            "or lower the rate")
    return asked
