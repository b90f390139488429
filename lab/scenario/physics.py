"""Incidents stated by their physics, and sized on the machine that runs them.

Pool exhaustion and the cache stampede happen because arrivals outrun what a slow path
can serve: arrival rate × service time against the pool, waits against the session TTL
or the pool's acquire timeout. A scenario tuned by numbers that fit one machine stops
reproducing on a faster one, so a scenario may state what its incident needs instead
(`physics:`): which slow path, how far demand during the fault must exceed what it can
serve, how long the longest wait should grow. Before the load, lab.load.calibrate times the
slow path on the machine it runs on; `size_load` here turns that measurement into an
arrival rate and a cap on requests in flight. After the run, `mechanism` reads the same
quantities back from what happened, and `why_not` says in those terms why a baseline did
not reproduce and which knob would change it.

Pure: no I/O, no asyncpg — the scenario loader imports the model.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lab.scenario.units import Duration

if TYPE_CHECKING:  # the loader imports this module: keep aiohttp out of `lab check`
    from lab.load.request_log import RequestRecord
    from lab.records.samples import Sample

SlowPathName = Literal["cart-lookup", "catalog-aggregate"]


@dataclass(frozen=True)
class SlowPath:
    """A path whose cost sets the incident's physics, and how to talk about it."""

    name: str
    endpoint: str  # the request kind that runs it
    what: str  # how the report names the measured cost
    healthy: str | None  # the same request's cost before the fault (None: no DB work)
    #: A steady queue is served by min(pool, cores) at once (cores bound a scan's CPU); a
    #: burst is counted against the pool: the stampede fills it when the requests that
    #: arrive while one aggregate runs outnumber its connections.
    burst: bool = False


SLOW_PATHS: dict[str, SlowPath] = {
    "cart-lookup": SlowPath(
        "cart-lookup", "checkout", "cart lookup without the index", "with the index"),
    "catalog-aggregate": SlowPath(
        "catalog-aggregate", "catalog", "catalog price aggregate", None, burst=True),
}


class OwnSlowPath(BaseModel):
    """The user's own slow path (a scenario against their service): the query their
    service runs for `endpoint`, timed here as the sample's cart lookup is — with index
    scans off (the index gone) and as it is — and the pool it runs on, which the lab
    cannot read off a service it did not write, so the scenario states it."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="the request (load.endpoints' name) that runs it")
    query: str = Field(min_length=1, description="the SQL the service runs, $1… for args")
    args: list[Any] = Field(default_factory=list,
                            description="its arguments; {int:A:B} draws one per run")
    pool: int = Field(ge=1, le=10_000, description="the service's pool size (declared)")
    what: str = Field("your query without its index", min_length=1)

    def path(self) -> SlowPath:
        return SlowPath("own", self.endpoint, self.what, "with its index")


def slow_path_of(slow_path: str | OwnSlowPath) -> SlowPath:
    """The slow path a scenario's `physics.slow_path` names (the sample's) or states."""
    return slow_path.path() if isinstance(slow_path, OwnSlowPath) else SLOW_PATHS[slow_path]


class PhysicsSpec(BaseModel):
    """What the incident needs, in its own terms (a scenario's `physics:`).

    `fault_demand`: during the fault, arrivals of the slow request are this many times
    what the slow path can serve — min(pool, cores) connections each busy for the
    measured cost. Above 1 the queue grows; 3 leaves room for a machine whose other work
    (the load generator, the services) takes more of the CPU than the model counts. For
    a burst (the stampede) it is the requests arriving while one aggregate runs against
    the pool's connections: above 1 the recomputes alone fill the pool.
    `longest_wait`: the cap on requests in flight is the slow path's capacity × this, so
    the queue — and so the longest wait — stops growing there: past the session TTL, short
    of the client timeout (a request waiting longer is a timeout, not the incident's 500).
    """

    model_config = ConfigDict(extra="forbid")

    slow_path: SlowPathName | OwnSlowPath
    fault_demand: float = Field(ge=1.2, le=50, description="arrivals ÷ slow-path capacity")
    longest_wait: Duration | None = Field(
        None, description="cap on requests in flight = capacity × this")
    max_healthy_use: float = Field(
        0.5, gt=0, le=1, description="share of the pool the healthy path may use before "
        "the fault (modelled from its measured cost)")
    max_rate: float = Field(
        3000, gt=0, le=100_000, description="the most arrivals per second the lab asks of "
        "the load generator; beyond it the data set must grow instead")


@dataclass(frozen=True)
class Measurement:
    """What lab.load.calibrate measured on this machine before the load."""

    probe: str  # how, in words (EXPLAIN ANALYZE …)
    slow_ms: list[float]
    healthy_ms: list[float] | None
    cores: int  # CPUs this process may run on (taskset narrows it)
    pool: int  # the incident's pool size (the scenario's stack config)
    took_s: float


@dataclass(frozen=True)
class Calibration:
    """The load sized from a measurement: recorded in the results, shown in the report."""

    slow_path: str
    probe: str
    slow_cost_ms: float
    healthy_cost_ms: float | None
    samples_ms: list[float]
    cores: int
    pool: int
    parallel: int  # slow requests that run at once: min(pool, cores); the pool for a burst
    capacity_per_s: float  # slow requests the machine serves per second
    slow_share: float  # the slow request's share of all arrivals
    fault_demand: float
    rate_per_s: float
    max_in_flight: int
    healthy_use: float | None  # modelled pool use before the fault
    max_healthy_use: float
    limited_by: str | None  # "max_rate" when the generator cap bounded the rate
    took_s: float
    #: How the report names the measured cost, and the healthy one (the path's words).
    what: str = ""
    healthy_what: str | None = None
    burst: bool = False

    @property
    def headroom_ok(self) -> bool:
        return self.healthy_use is None or self.healthy_use <= self.max_healthy_use

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "headroom_ok": self.headroom_ok}


def calibration_text(c: Mapping[str, Any]) -> str:
    """One line: what was measured and the load sized from it (a Calibration's JSON)."""
    known = SLOW_PATHS.get(c["slow_path"])
    what = c.get("what") or (known.what if known else c["slow_path"])
    healthy = c.get("healthy_what") or (known.healthy if known else "")
    burst = c.get("burst", known.burst if known else False)
    share = c["slow_share"]
    at_once = (f"a burst against the pool's {c['pool']}" if burst else
               f"{c['parallel']} at once (min of pool {c['pool']}, {c['cores']} cores)")
    line = (f"{what} {c['slow_cost_ms']:.1f} ms ({c['probe']}); {at_once} → capacity "
            f"{c['capacity_per_s']:.0f}/s; load {c['rate_per_s']:.0f}/s "
            f"({c['fault_demand']:g}× the capacity"
            + (f", {share:.0%} of arrivals on it" if share < 1 else "")
            + f"), at most {c['max_in_flight']} in flight")
    if c.get("healthy_use") is not None:
        line += (f"; before the fault {c['healthy_cost_ms']:.2f} ms {healthy} → pool "
                 f"use {c['healthy_use']:.1%} (at most {c['max_healthy_use']:.0%})")
    if c.get("limited_by"):
        line += f"; rate held at {c['limited_by']}"
    return line


def slow_share(endpoints: Sequence[tuple[str, int]], slow_path: str | OwnSlowPath) -> float:
    """The share of arrivals that take the slow path, from the load's endpoint weights."""
    total = sum(w for _, w in endpoints)
    slow = sum(w for kind, w in endpoints if kind == slow_path_of(slow_path).endpoint)
    return slow / total if total else 0.0


def size_load(spec: PhysicsSpec, m: Measurement, share: float,
              default_max_in_flight: int) -> Calibration:
    """Arrival rate and in-flight cap that give the incident its stated physics here."""
    if not m.slow_ms:
        raise ValueError("no measurement of the slow path")
    # The least of the samples: the query's own cost. Anything else running at that moment
    # (the checkout warms its price list with the same aggregate as it starts) only adds.
    cost_ms = min(m.slow_ms)
    healthy_ms = min(m.healthy_ms) if m.healthy_ms else None
    path = slow_path_of(spec.slow_path)
    parallel = m.pool if path.burst else max(1, min(m.pool, m.cores))
    capacity = parallel / (cost_ms / 1000.0)
    slow_rate = spec.fault_demand * capacity
    rate = slow_rate / share
    limited_by = None
    if rate > spec.max_rate:
        rate, limited_by = spec.max_rate, f"physics.max_rate ({spec.max_rate:g}/s)"
    if spec.longest_wait is not None:
        cap = max(1, math.ceil(capacity * spec.longest_wait / share))
    else:
        cap = default_max_in_flight
    healthy_use = (None if healthy_ms is None
                   else rate * share * (healthy_ms / 1000.0) / m.pool)
    return Calibration(
        slow_path=path.name, probe=m.probe, slow_cost_ms=round(cost_ms, 3),
        healthy_cost_ms=None if healthy_ms is None else round(healthy_ms, 3),
        samples_ms=[round(x, 3) for x in m.slow_ms], cores=m.cores, pool=m.pool,
        parallel=parallel, capacity_per_s=round(capacity, 2), slow_share=round(share, 4),
        fault_demand=spec.fault_demand, rate_per_s=round(rate, 2), max_in_flight=cap,
        healthy_use=None if healthy_use is None else round(healthy_use, 4),
        max_healthy_use=spec.max_healthy_use, limited_by=limited_by, took_s=round(m.took_s, 3),
        what=path.what, healthy_what=path.healthy, burst=path.burst,
    )


# ---------------------------------------------------------------- after the run


def _metric_max(samples: Sequence[Sample], name: str) -> float | None:
    values = [s.metrics[name] for s in samples if name in s.metrics]
    return max(values) if values else None


def _metric_rise(samples: Sequence[Sample], name: str) -> float | None:
    """How much a counter rose across the samples, per instance, summed."""
    by_instance: dict[str, list[float]] = {}
    for s in samples:
        if name in s.metrics:
            by_instance.setdefault(s.instance, []).append(s.metrics[name])
    if not by_instance:
        return None
    return sum(max(v) - min(v) for v in by_instance.values())


def mechanism(
    slow_path: str | None,
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    fault: tuple[float, float],
    settings: Mapping[str, Any],
    before_samples: Sequence[Sample] = (),
    before: tuple[float, float] | None = None,
    users: int | None = None,
) -> dict[str, Any]:
    """The incident's physics as measured during the fault window `fault` (epoch s).

    `slow_path`: the scenario's `physics.slow_path`, or None for a scenario without one
    (every request counts, and the pool and session figures the checkout reports are
    read as they are). `settings` are the variant's checkout switches
    (lab.services.checkout.switches); `before_samples` are the samples of the last round
    before the fault, so that a counter's rise at the fault's first moment counts;
    `before` is the window before the fault, where the healthy path must have kept up
    with the same load; `users`: a closed-loop load's users (None: the open model)."""
    start, end = fault
    length = max(end - start, 1e-9)
    endpoint = None if slow_path is None else SLOW_PATHS[slow_path].endpoint
    mine = [r for r in records if endpoint is None or r.request == endpoint]
    arrived = [r for r in mine if start <= r.start < end]
    answered = [r for r in mine if not r.dropped
                and r.outcome == "response" and start <= r.start + r.latency_ms / 1000 < end]
    waits = [r.latency_ms / 1000 for r in arrived if not r.dropped and r.outcome == "response"]
    fault_samples = [s for s in samples if start <= s.t < end and s.service == "checkout"]
    figures: dict[str, Any] = {
        "slow_path": slow_path,
        "arrived_per_s": round(len(arrived) / length, 1),
        "dropped": sum(1 for r in arrived if r.dropped),
        "served_per_s": round(len(answered) / length, 1),
        "longest_wait_s": round(max(waits), 3) if waits else None,
        "median_wait_s": round(statistics.median(waits), 3) if waits else None,
        "pool": settings.get("DB_POOL_MAX"),
        "closed_loop_users": users,
    }
    served = figures["served_per_s"]
    figures["demand"] = round(figures["arrived_per_s"] / served, 2) if served else None
    if before is not None:  # the healthy path under the same load, before the fault
        b_start, b_end = before
        sent = [r for r in records if b_start <= r.start < b_end and not r.dropped]
        ok = [r for r in sent if r.cls == "2xx"]
        b_waits = [r.latency_ms / 1000 for r in sent if r.outcome == "response"]
        figures["before_arrived_per_s"] = round(
            sum(1 for r in records if b_start <= r.start < b_end) / max(b_end - b_start, 1e-9), 1)
        figures["before_2xx_share"] = round(len(ok) / len(sent), 4) if sent else None
        figures["before_median_wait_s"] = (round(statistics.median(b_waits), 3)
                                           if b_waits else None)
    if slow_path in ("cart-lookup", None):
        ttl_ms = settings.get("SESSION_TTL_MS")
        figures["session_ttl_s"] = None if ttl_ms is None else ttl_ms / 1000
        figures["pool_waiting_max"] = _metric_max(fault_samples, "checkout_db_pool_waiting")
    else:
        acquire_ms = settings.get("DB_ACQUIRE_TIMEOUT_MS") or 0
        figures["acquire_timeout_s"] = acquire_ms / 1000 if acquire_ms else None
        figures["recomputes"] = _metric_rise(
            [*before_samples, *fault_samples], "checkout_catalog_cache_recomputes_total")
        figures["recomputes_at_once_max"] = _metric_max(
            fault_samples, "checkout_catalog_cache_recomputes_in_progress_peak")
    return figures


def mechanism_text(m: Mapping[str, Any]) -> str:
    """One line: the figures the incident turns on."""
    if m.get("closed_loop_users"):
        parts = [f"closed loop of {m['closed_loop_users']} users: {m['arrived_per_s']:g}/s "
                 f"arrived during the fault"
                 + (f" against {m['before_arrived_per_s']:g}/s before it"
                    if m.get("before_arrived_per_s") is not None else "")]
    elif m["slow_path"] in ("cart-lookup", None):
        parts = [f"{m['arrived_per_s']:g}/s arrived, {m['served_per_s']:g}/s served"
                 + (f" ({m['demand']:g}×)" if m.get("demand") else "")]
    else:  # a burst at the expiry: a window-long served rate says nothing about it
        parts = [f"{m['arrived_per_s']:g}/s arrived"]
    if m.get("dropped"):
        parts.append(f"{m['dropped']} dropped at the in-flight cap")
    if m.get("before_median_wait_s") is not None:
        parts.append(f"before the fault {m['before_arrived_per_s']:g}/s, median "
                     f"{m['before_median_wait_s'] * 1000:.0f} ms"
                     + (" (SATURATED: the load alone)" if saturated_before(m) else ""))
    if m["slow_path"] in ("cart-lookup", None):
        if m.get("pool_waiting_max") is not None:
            parts.append(f"{m['pool_waiting_max']:g} waiting on {m['pool']} connections")
        if m.get("longest_wait_s") is not None and m.get("session_ttl_s") is not None:
            parts.append(f"longest wait {m['longest_wait_s']:g} s against the "
                         f"{m['session_ttl_s']:g} s session")
    else:
        if m.get("recomputes_at_once_max") is not None:
            parts.append(f"{m['recomputes_at_once_max']:g} recomputes at once against "
                         f"{m['pool']} connections ({m.get('recomputes') or 0:g} in all)")
        if m.get("longest_wait_s") is not None and m.get("acquire_timeout_s"):
            parts.append(f"longest wait {m['longest_wait_s']:g} s against the "
                         f"{m['acquire_timeout_s']:g} s acquire timeout")
    return "; ".join(parts)


#: Before the fault the healthy path answers at once; a median wait above this (or fewer
#: than 95 % 2xx) means the load itself saturated the service, whatever the fault did.
SATURATED_WAIT_S = 0.25


def saturated_before(m: Mapping[str, Any]) -> bool:
    share, wait = m.get("before_2xx_share"), m.get("before_median_wait_s")
    return (share is not None and share < 0.95) or (wait is not None and wait > SATURATED_WAIT_S)


def why_not(m: Mapping[str, Any], calibration: Calibration | None) -> str:
    """Why a baseline did not reproduce, in its physics, and the knob that changes it."""
    if saturated_before(m):
        return (f"the healthy path did not keep up before the fault ("
                f"{m.get('before_2xx_share') or 0:.1%} 2xx, median {m.get('before_median_wait_s')} "
                f"s at {m.get('before_arrived_per_s')}/s): the calibrated rate is more than "
                "the service serves on this machine; grow the data set (stack.seed) so the "
                "slow path needs fewer arrivals, or lower physics.fault_demand")
    users = m.get("closed_loop_users")
    if users:
        slowed = (m.get("before_arrived_per_s") or 0) and m["arrived_per_s"] / max(
            m["before_arrived_per_s"], 1e-9)
        ttl, longest = m.get("session_ttl_s"), m.get("longest_wait_s")
        waits = (f"; no wait outlived the {ttl:g} s session (longest {longest:g} s)"
                 if ttl is not None and longest is not None and longest <= ttl else "")
        return (f"the load is a closed loop: at most {users} requests were ever in flight, "
                f"and arrivals slowed with the service ({m.get('before_arrived_per_s')}/s "
                f"before the fault, {m['arrived_per_s']:g}/s during it"
                + (f", {slowed:.0%}" if slowed else "") + f"){waits}: the queue cannot grow "
                "past the users. Use the open model (load.rate, or physics with rate: "
                "calibrated) so arrivals keep coming whatever the service does, or raise "
                "load.users")
    if calibration is not None and calibration.limited_by:
        return (f"the arrival rate was held at {calibration.limited_by}: this machine serves "
                "the slow path faster than the load generator may arrive; grow the data set "
                "(stack.seed) so each slow request costs more")
    if m["slow_path"] in ("cart-lookup", None):
        demand = m.get("demand")
        if demand is None or demand < 1.1:
            return (f"arrivals did not outrun the slow path (demand {demand or 0:g}×): raise "
                    "physics.fault_demand, or grow the data set so the slow path costs more")
        ttl, longest = m.get("session_ttl_s"), m.get("longest_wait_s")
        if ttl is not None and longest is not None and longest <= ttl:
            return (f"no wait outlived the {ttl:g} s session (longest {longest:g} s): raise "
                    "physics.longest_wait (the cap on requests in flight) or fault_demand")
    else:
        acquire, longest = m.get("acquire_timeout_s"), m.get("longest_wait_s")
        pool, peak = m.get("pool"), m.get("recomputes_at_once_max")
        if peak is not None and pool is not None and peak < pool:
            return (f"only {peak:g} recomputes ran at once against {pool} connections: raise "
                    "physics.fault_demand so more requests find the key expired")
        if acquire and longest is not None and longest < acquire:
            return (f"no request waited out the {acquire:g} s acquire timeout (longest "
                    f"{longest:g} s): raise physics.fault_demand or grow the data set")
    return "the mechanism held (demand above capacity, waits past the limit): see the expectations"
