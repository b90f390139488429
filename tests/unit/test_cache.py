"""The catalog cache's strategies: who recomputes when a hot key expires under concurrency.

A fake clock and computations gated by events make every interleaving explicit; no test
sleeps for real.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable

import pytest

from lab.services.checkout.cache import RecomputingCache, xfetch_should_refresh
from tests.unit.fake_clock import Clock


class Gate:
    """A computation that runs only when released, counting how many were started."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()
        self.fail_with: BaseException | None = None

    def compute(self, value: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            self.started += 1
            await self.release.wait()
            if self.fail_with is not None:
                raise self.fail_with
            return value

        return run


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def warmed(strategy: str, clock: Clock, **kw: float) -> RecomputingCache[str]:
    cache = RecomputingCache[str](strategy, 60.0, clock=clock, **kw)  # type: ignore[arg-type]

    async def first() -> str:
        clock.now += 0.25  # the warm-up took 250 ms: XFetch's delta
        return "v1"

    await cache.warm("k", first)
    return cache


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# -- XFetch's formula ---------------------------------------------------------------------


def test_xfetch_formula() -> None:
    # now - delta * beta * ln(u) >= expiry, i.e. refresh when the exponential draw
    # -ln(u) reaches (expiry - now) / (delta * beta).
    assert xfetch_should_refresh(now=10.0, expires_at=10.0, delta_s=1.0, beta=1.0, u=1.0)
    assert not xfetch_should_refresh(now=9.0, expires_at=10.0, delta_s=1.0, beta=1.0, u=0.5)
    # ln(0.3) = -1.204: 9 + 1.204 >= 10 refreshes; with beta 0.5 it is 9 + 0.602: no.
    assert xfetch_should_refresh(now=9.0, expires_at=10.0, delta_s=1.0, beta=1.0, u=0.3)
    assert not xfetch_should_refresh(now=9.0, expires_at=10.0, delta_s=1.0, beta=0.5, u=0.3)
    with pytest.raises(ValueError, match="u must be in"):
        xfetch_should_refresh(now=9.0, expires_at=10.0, delta_s=1.0, beta=1.0, u=0.0)


def test_xfetch_refresh_probability_follows_the_exponential() -> None:
    """P(refresh) = exp(-(expiry - now) / (delta * beta)): with a seeded RNG the observed
    share at 1, 2 and 4 delta-betas before expiry matches it."""
    rng = random.Random(42)
    draws = 20_000
    for gap in (1.0, 2.0, 4.0):
        hits = sum(
            xfetch_should_refresh(100.0 - gap * 0.5, 100.0, 0.25, 2.0, 1.0 - rng.random())
            for _ in range(draws)
        )
        assert hits / draws == pytest.approx(math.exp(-gap), abs=0.01)
    # Far from expiry it (practically) never fires; past expiry it always does.
    assert not any(
        xfetch_should_refresh(50.0, 100.0, 0.25, 2.0, 1.0 - rng.random()) for _ in range(draws)
    )
    assert all(
        xfetch_should_refresh(100.0, 100.0, 0.25, 2.0, 1.0 - rng.random()) for _ in range(draws)
    )


# -- the incident: every miss recomputes --------------------------------------------------


def test_none_recomputes_once_per_concurrent_request() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("none", clock)
        assert await cache.get("k", Gate().compute("unused")) == "v1"  # fresh: a hit
        cache.expire("k")
        gate = Gate()
        tasks = [asyncio.create_task(cache.get("k", gate.compute("v2"))) for _ in range(25)]
        await settle()
        assert (gate.started, cache.figures.in_progress, cache.figures.peak_in_progress) == (
            25, 25, 25)
        gate.release.set()
        assert [await t for t in tasks] == ["v2"] * 25
        assert cache.figures.recomputes == 1 + 25  # the warm-up, then the stampede
        assert cache.figures.served == {"hit": 1, "miss": 25}
        assert cache.figures.in_progress == 0

    run(main())


# -- single-flight --------------------------------------------------------------------------


def test_single_flight_runs_one_recompute_and_everyone_gets_it() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("single-flight", clock)
        cache.expire("k")
        gate = Gate()
        tasks = [asyncio.create_task(cache.get("k", gate.compute("v2"))) for _ in range(25)]
        await settle()
        assert (gate.started, cache.figures.in_progress) == (1, 1)
        gate.release.set()
        assert [await t for t in tasks] == ["v2"] * 25
        assert cache.figures.recomputes == 2
        assert cache.figures.peak_in_progress == 1
        assert cache.figures.served == {"miss": 1, "waited": 24}
        assert await cache.get("k", gate.compute("v3")) == "v2"  # fresh again

    run(main())


def test_single_flight_shares_a_failure_and_the_next_request_retries() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("single-flight", clock)
        cache.expire("k")
        gate = Gate()
        gate.fail_with = TimeoutError("no pool connection")
        tasks = [asyncio.create_task(cache.get("k", gate.compute("v2"))) for _ in range(5)]
        await settle()
        gate.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results)
        assert (gate.started, cache.figures.recompute_failures) == (1, 1)
        retry = Gate()
        retry.release.set()
        assert await cache.get("k", retry.compute("v3")) == "v3"
        assert retry.started == 1

    run(main())


def test_single_flight_survives_a_cancelled_waiter() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("single-flight", clock)
        cache.expire("k")
        gate = Gate()
        first = asyncio.create_task(cache.get("k", gate.compute("v2")))
        second = asyncio.create_task(cache.get("k", gate.compute("v2")))
        await settle()
        first.cancel()  # the request that started the recompute goes away
        await settle()
        gate.release.set()
        assert await second == "v2"
        assert gate.started == 1

    run(main())


# -- stale-while-revalidate ----------------------------------------------------------------


def test_stale_while_revalidate_serves_stale_during_one_background_refresh() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("stale-while-revalidate", clock, max_stale_s=30.0)
        cache.expire("k")
        gate = Gate()
        served = [await cache.get("k", gate.compute("v2")) for _ in range(25)]
        assert served == ["v1"] * 25  # nobody waited
        await settle()
        assert gate.started == 1
        gate.release.set()
        await settle()
        assert await cache.get("k", gate.compute("v3")) == "v2"
        assert cache.figures.recomputes == 2
        assert cache.figures.served == {"stale": 25, "hit": 1}

    run(main())


def test_stale_while_revalidate_waits_when_cold_or_too_stale() -> None:
    async def main() -> None:
        clock = Clock()
        cache = RecomputingCache[str]("stale-while-revalidate", 60.0, max_stale_s=30.0,
                                      clock=clock)
        gate = Gate()
        cold = [asyncio.create_task(cache.get("k", gate.compute("v1"))) for _ in range(3)]
        await settle()
        gate.release.set()
        assert [await t for t in cold] == ["v1"] * 3
        assert gate.started == 1  # a cold key is single-flighted
        clock.now += 60 + 31  # expired for longer than max_stale
        late = Gate()
        late.release.set()
        assert await cache.get("k", late.compute("v2")) == "v2"

    run(main())


def test_stale_while_revalidate_keeps_serving_when_the_refresh_fails() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("stale-while-revalidate", clock)
        cache.expire("k")
        gate = Gate()
        gate.fail_with = TimeoutError("no pool connection")
        gate.release.set()
        assert await cache.get("k", gate.compute("v2")) == "v1"
        await settle()
        assert cache.figures.recompute_failures == 1
        assert await cache.get("k", gate.compute("v2")) == "v1"  # still stale, retried
        await settle()
        assert gate.started == 2

    run(main())


# -- early refresh (XFetch) ------------------------------------------------------------------


def test_early_refresh_refreshes_before_the_deadline_with_a_seeded_rng() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("early-refresh", clock, beta=2.0)  # delta = 0.25 s
        # A fixed seed: the first draw below 1 - exp(-gap / (delta * beta)) decides.
        cache._rng = random.Random(3)  # type: ignore[attr-defined]
        cache.expire("k", in_s=5.0)
        warm_done = clock.now
        gate = Gate()
        gate.release.set()
        refreshed_at = None
        for _ in range(50):  # one request every 100 ms until the deadline
            await cache.get("k", gate.compute("v2"))
            if gate.started:
                refreshed_at = clock.now
                break
            clock.now += 0.1
        assert refreshed_at is not None, "never refreshed before the deadline"
        assert warm_done < refreshed_at < warm_done + 5.0  # early: before the expiry
        assert cache.figures.served["early"] == 1
        assert cache.entry("k").expires_at == refreshed_at + 60.0  # type: ignore[union-attr]
    run(main())


def test_early_refresh_runs_one_refresh_while_the_value_is_fresh() -> None:
    """Every request wins the draw (a huge beta: each draw refreshes with a chance of
    exp(-10 / (0.25 * 1e6))), as a cold start's slow delta made them do under load;
    one refreshes, the others serve the still-fresh value at once."""

    async def main() -> None:
        clock = Clock()
        cache = await warmed("early-refresh", clock, beta=1e6)
        cache._rng = random.Random(7)  # type: ignore[attr-defined]
        cache.expire("k", in_s=10.0)
        gate = Gate()
        winner = asyncio.create_task(cache.get("k", gate.compute("v2")))
        await settle()
        others = [asyncio.create_task(cache.get("k", gate.compute("v3"))) for _ in range(20)]
        await settle()
        assert all(t.done() for t in others), "a request waited for the refresh"
        assert [t.result() for t in others] == ["v1"] * 20
        assert gate.started == 1 and cache.figures.peak_in_progress == 1
        gate.release.set()
        assert await winner == "v2"
        assert cache.figures.served == {"early": 1, "hit": 20}
        assert cache.entry("k").expires_at == clock.now + 60.0  # type: ignore[union-attr]

    run(main())


def test_early_refresh_that_fails_lets_the_next_winner_try() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("early-refresh", clock, beta=1e6)
        cache.expire("k", in_s=10.0)
        gate = Gate()
        gate.fail_with = TimeoutError("no pool connection")
        gate.release.set()
        with pytest.raises(TimeoutError):
            await cache.get("k", gate.compute("v2"))
        assert cache.figures.recompute_failures == 1
        ok = Gate()
        ok.release.set()
        assert await cache.get("k", ok.compute("v3")) == "v3"
        assert ok.started == 1

    run(main())


def test_early_refresh_past_the_deadline_stampedes_like_none() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("early-refresh", clock)
        cache.expire("k")  # no lead: XFetch has nothing to act on
        gate = Gate()
        tasks = [asyncio.create_task(cache.get("k", gate.compute("v2"))) for _ in range(10)]
        await settle()
        assert gate.started == 10
        gate.release.set()
        await asyncio.gather(*tasks)

    run(main())


def test_expire_keeps_the_value_and_unknown_keys_are_none() -> None:
    async def main() -> None:
        clock = Clock()
        cache = await warmed("none", clock)
        entry = cache.expire("k", in_s=2.0)
        assert entry is not None and entry.value == "v1"
        assert entry.expires_at == clock.now + 2.0
        assert cache.expire("missing") is None
        with pytest.raises(ValueError, match="unknown cache strategy"):
            RecomputingCache[str]("lru", 1.0)

    run(main())
