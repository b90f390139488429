"""An in-process cache whose misses recompute an expensive value, with the strategies that
decide what concurrent requests do when a hot key expires.

The cache-stampede incident is a property of that decision, not of the cache store, so
each strategy is a few lines here and the handler does not know which one runs:

* `none` — the incident: every request that finds the key missing or expired recomputes
  it. Under load, one expiry means as many concurrent recomputes as there are requests
  arriving while the first recompute runs, and they all want a database connection.
* `single-flight` — one recompute per key at a time; everyone else awaits that one.
* `stale-while-revalidate` — an expired value is still served (up to `max_stale_s`) while
  one background task refreshes it; only a cold key makes callers wait (single-flight).
* `early-refresh` — XFetch (Vattani et al., "Optimal Probabilistic Cache Stampede
  Prevention"): each request recomputes early with a probability that rises as expiry
  nears, `now - delta * beta * ln(u) >= expiry` with `u` uniform in (0, 1] and `delta`
  the last recompute's duration, so a hot key is usually refreshed before it expires.
  One early refresh per key runs at a time: a request that wins the draw while another
  is refreshing serves the still-fresh value (as Symfony Cache pairs its probabilistic
  early expiration with a lock). Without that, a `delta` measured on a cold start
  (0.8 s against 0.4 s warm) made the draw win about ten times a second from the moment
  the key had 10 s left; each extra recompute slowed the others (2.9 s), which kept the
  draw winning: 14 recomputes at once and 42 500s, in 1 of 8 runs. A key that does
  expire is not coordinated: it stampedes as with `none`.

Figures for /metrics (recomputes started, recomputes running now and at most) are kept on
the cache so the metrics module reads them at scrape time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .config import CACHE_STRATEGIES

T = TypeVar("T")

#: How a request was served, for `checkout_catalog_cache_requests_total{result}`.
#: hit · miss (this request recomputed) · waited (awaited another request's recompute)
#: · stale (an expired value, refreshed in the background) · early (XFetch refreshed early)
RESULTS = ("hit", "miss", "waited", "stale", "early")


def xfetch_should_refresh(
    now: float, expires_at: float, delta_s: float, beta: float, u: float
) -> bool:
    """XFetch's test: recompute when `now - delta * beta * ln(u) >= expiry`.

    `u` is uniform in (0, 1]; `-ln(u)` is then exponentially distributed, so the chance of
    refreshing is `exp(-(expiry - now) / (delta * beta))` — negligible far from expiry,
    certain once it has passed, and earlier for slow recomputes (large delta).
    """
    if not 0.0 < u <= 1.0:
        raise ValueError(f"u must be in (0, 1], got {u}")
    return now - delta_s * beta * math.log(u) >= expires_at


@dataclass
class Entry(Generic[T]):
    value: T
    computed_at: float
    expires_at: float
    delta_s: float  # how long computing `value` took: XFetch's delta


@dataclass
class CacheFigures:
    """Counters read by /metrics and the admin endpoint."""

    recomputes: int = 0  # recomputes started (misses that ran the expensive query)
    recompute_failures: int = 0
    in_progress: int = 0  # recomputes running now (waiting for a connection included)
    peak_in_progress: int = 0  # the most that ever ran at once
    served: Counter[str] = field(default_factory=Counter)  # by RESULTS


class RecomputingCache(Generic[T]):
    """Values by key, each recomputed by a caller-supplied coroutine when it expires."""

    def __init__(
        self,
        strategy: str,
        ttl_s: float,
        *,
        max_stale_s: float = 60.0,
        beta: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if strategy not in CACHE_STRATEGIES:
            raise ValueError(f"unknown cache strategy {strategy!r}")
        self.strategy = strategy
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self.beta = beta
        self.figures = CacheFigures()
        self._clock = clock
        self._rng = rng or random.Random()
        self._entries: dict[str, Entry[T]] = {}
        self._flights: dict[str, asyncio.Task[T]] = {}

    # -- reading -----------------------------------------------------------------------------

    async def get(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        """The value for `key`, recomputed as the strategy decides."""
        value, result = await self._get(key, compute)
        self.figures.served[result] += 1
        return value

    async def _get(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, str]:
        now = self._clock()
        entry = self._entries.get(key)
        fresh = entry is not None and now < entry.expires_at
        if self.strategy == "early-refresh":
            if entry is not None and fresh and (
                key in self._flights
                or not xfetch_should_refresh(
                    now, entry.expires_at, entry.delta_s, self.beta, 1.0 - self._rng.random()
                )
            ):
                return entry.value, "hit"
            if fresh:  # won the draw, and no early refresh runs: this request does it
                return await asyncio.shield(self._start_flight(key, compute)), "early"
            return await self._recompute(key, compute), "miss"
        if entry is not None and fresh:
            return entry.value, "hit"
        if self.strategy == "none":
            return await self._recompute(key, compute), "miss"
        if (
            self.strategy == "stale-while-revalidate"
            and entry is not None
            and now < entry.expires_at + self.max_stale_s
        ):
            if key not in self._flights:
                self._start_flight(key, compute)  # nobody awaits a background refresh
            return entry.value, "stale"
        # single-flight, or a cold key under stale-while-revalidate: join the one recompute.
        running = self._flights.get(key)
        if running is not None:
            return await asyncio.shield(running), "waited"
        return await asyncio.shield(self._start_flight(key, compute)), "miss"

    def _start_flight(self, key: str, compute: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The one recompute of `key`, as a task so no caller's cancellation ends it."""
        task = asyncio.ensure_future(self._recompute(key, compute))
        self._flights[key] = task
        task.add_done_callback(lambda _t: self._flights.pop(key, None))
        # Its callers may all have gone (a background refresh, or cancelled requests).
        task.add_done_callback(_consume_exception)
        return task

    async def _recompute(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        figures = self.figures
        figures.recomputes += 1
        figures.in_progress += 1
        figures.peak_in_progress = max(figures.peak_in_progress, figures.in_progress)
        started = self._clock()
        try:
            value = await compute()
        except BaseException:
            figures.recompute_failures += 1
            raise
        finally:
            figures.in_progress -= 1
        done = self._clock()
        self._entries[key] = Entry(value, done, done + self.ttl_s, done - started)
        return value

    # -- administration ----------------------------------------------------------------------

    async def warm(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        """Compute `key` now (at start-up), whatever the strategy."""
        return await self._recompute(key, compute)

    def expire(self, key: str, in_s: float = 0.0) -> Entry[T] | None:
        """Make `key` expire `in_s` from now; the value stays (a stale value to serve).

        This is the synchronised expiry of a hot key, as when a deploy wrote every key with
        the same TTL. Returns the entry, or None when the key is not cached.
        """
        entry = self._entries.get(key)
        if entry is not None:
            entry.expires_at = self._clock() + max(0.0, in_s)
        return entry

    def entry(self, key: str) -> Entry[T] | None:
        return self._entries.get(key)

    def now(self) -> float:
        return self._clock()

    async def close(self) -> None:
        """Cancel background refreshes (on shutdown)."""
        flights = list(self._flights.values())
        for task in flights:
            task.cancel()
        for task in flights:
            with contextlib.suppress(BaseException):
                await task


def _consume_exception(task: asyncio.Task[object]) -> None:
    """A failed recompute is counted in the figures; mark it retrieved."""
    if not task.cancelled():
        task.exception()
