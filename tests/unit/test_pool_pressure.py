"""How long the pool has been under pressure: what readiness acts on instead of an instant.

A fake pool whose connections are handed out only when a test releases them, and a fake
clock, make the queue's every state explicit; nothing here talks to Postgres or sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lab.services.checkout.db import Database
from tests.unit.fake_clock import Clock


class GatedPool:
    """`acquire` waits until the test hands out a connection; `release` is instant."""

    def __init__(self, size: int) -> None:
        self.free = asyncio.Semaphore(0)
        self.size = size

    def give(self, n: int = 1) -> None:
        for _ in range(n):
            self.free.release()

    async def acquire(self, timeout: float | None = None) -> object:
        await self.free.acquire()
        return object()

    async def release(self, conn: object, timeout: float | None = None) -> None:
        return None

    def get_size(self) -> int:
        return self.size


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def make(pool: GatedPool, clock: Clock, pressure_use: float) -> Database:
    return Database(pool, dsn="postgresql://unused", max_size=pool.size,
                    acquire_timeout_s=None, pressure_use=pressure_use, clock=clock)


async def hold(db: Database, until: asyncio.Event) -> None:
    async with db.connection():
        await until.wait()


def test_a_queue_that_drains_ends_the_pressure_and_a_new_one_starts_from_zero() -> None:
    async def main() -> list[Any]:
        clock, pool = Clock(), GatedPool(size=2)
        db = make(pool, clock, pressure_use=0.8)
        done = asyncio.Event()
        seen: list[Any] = [db.snapshot().pressure_s]  # idle
        queued = [asyncio.create_task(hold(db, done)) for _ in range(3)]
        await settle()
        clock.now += 0.1
        seen.append(db.snapshot().pressure_s)  # 3 waiting for 100 ms
        pool.give(2)
        await settle()
        clock.now += 0.1
        seen.append(db.snapshot().pressure_s)  # 2 of 2 in use (> 80 %), 1 waiting: still on
        done.set()
        pool.give(1)
        await asyncio.gather(*queued)
        seen.append(db.snapshot().pressure_s)  # drained: over
        again = asyncio.create_task(hold(db, asyncio.Event()))
        await settle()
        clock.now += 0.05
        seen.append(db.snapshot().pressure_s)  # a new queue counts from its own start
        again.cancel()
        await asyncio.gather(again, return_exceptions=True)
        seen.append(db.snapshot().pressure_s)  # a cancelled waiter leaves the queue
        return seen

    idle, waiting, full, drained, new, cancelled = asyncio.run(main())
    assert idle is None
    assert abs(waiting - 0.1) < 1e-9
    assert abs(full - 0.2) < 1e-9
    assert drained is None
    assert abs(new - 0.05) < 1e-9
    assert cancelled is None


def test_use_at_or_below_the_share_is_no_pressure_without_a_queue() -> None:
    async def main() -> tuple[Any, Any]:
        clock, pool = Clock(), GatedPool(size=5)
        db = make(pool, clock, pressure_use=0.8)
        done = asyncio.Event()
        pool.give(5)
        four = [asyncio.create_task(hold(db, done)) for _ in range(4)]
        await settle()
        at_share = db.snapshot()  # 4 of 5 = 80 %: not above it
        fifth = asyncio.create_task(hold(db, done))
        await settle()
        clock.now += 1.0
        above = db.snapshot()  # 5 of 5, nobody waiting
        done.set()
        await asyncio.gather(*four, fifth)
        return at_share, above

    at_share, above = asyncio.run(main())
    assert (at_share.in_use, at_share.waiting, at_share.pressure_s) == (4, 0, None)
    assert (above.in_use, above.waiting, above.pressure_s) == (5, 0, 1.0)
