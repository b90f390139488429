"""lab.system.waiting, the one poll-until-deadline: asked first, then after each interval; False
once still not done at the deadline; an exception from `done` ends the wait. Driven by a
fake clock, so nothing really sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lab.system.waiting import wait_until, wait_until_async
from tests.unit.fake_clock import Clock


class Poll:
    """A `done` that comes true at its `true_at`-th ask, noting the clock at each ask."""

    def __init__(self, clock: Clock, true_at: int | None) -> None:
        self.clock, self.true_at = clock, true_at
        self.asked_at: list[float] = []

    def __call__(self) -> bool:
        self.asked_at.append(self.clock.now)
        return self.true_at is not None and len(self.asked_at) >= self.true_at


def fake_sleep(clock: Clock) -> tuple[list[float], Callable[[float], None]]:
    """A sleep that moves the fake clock, and the list of what it was asked to sleep."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    return slept, sleep


def test_done_at_once_asks_once_and_never_sleeps() -> None:
    clock = Clock()
    done = Poll(clock, true_at=1)
    slept, sleep = fake_sleep(clock)
    assert wait_until(done, 5.0, every=0.2, clock=clock, sleep=sleep)
    assert done.asked_at == [1000.0] and slept == []


def test_asks_every_interval_until_done() -> None:
    clock = Clock()
    done = Poll(clock, true_at=4)
    slept, sleep = fake_sleep(clock)
    assert wait_until(done, 5.0, every=0.5, clock=clock, sleep=sleep)
    assert done.asked_at == [1000.0, 1000.5, 1001.0, 1001.5]
    assert slept == [0.5, 0.5, 0.5]


def test_gives_up_at_the_deadline_after_a_last_ask() -> None:
    """Timeout 1 s, every 0.4 s: asked at 0, 0.4, 0.8 and once more at 1.2 (the sleep
    crossed the deadline), then False."""
    clock = Clock(0.0)
    done = Poll(clock, true_at=None)
    slept, sleep = fake_sleep(clock)
    assert not wait_until(done, 1.0, every=0.4, clock=clock, sleep=sleep)
    assert [round(t, 6) for t in done.asked_at] == [0.0, 0.4, 0.8, 1.2]
    assert slept == [0.4, 0.4, 0.4]


def test_no_time_at_all_still_asks_once() -> None:
    clock = Clock()
    assert wait_until(Poll(clock, true_at=1), 0.0, every=1.0, clock=clock)
    assert not wait_until(Poll(clock, true_at=None), 0.0, every=1.0, clock=clock,
                          sleep=lambda _: pytest.fail("no sleep past the deadline"))


def test_an_exception_from_done_ends_the_wait() -> None:
    def died() -> bool:
        raise RuntimeError("the holder died")

    with pytest.raises(RuntimeError, match="the holder died"):
        wait_until(died, 5.0, every=0.1, clock=Clock())


def test_async_takes_a_plain_or_an_async_done_and_keeps_the_same_schedule() -> None:
    clock = Clock(0.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    plain = Poll(clock, true_at=3)
    assert asyncio.run(wait_until_async(plain, 5.0, every=0.1, clock=clock, sleep=sleep))
    assert len(plain.asked_at) == 3 and slept == [0.1, 0.1]

    never = Poll(clock, true_at=None)

    async def not_yet() -> bool:
        return never()

    slept.clear()
    assert not asyncio.run(wait_until_async(not_yet, 1.0, every=0.4, clock=clock,
                                            sleep=sleep))
    assert len(never.asked_at) == 4 and slept == [0.4, 0.4, 0.4]


def test_async_waits_for_real_with_the_default_clock() -> None:
    answers = iter([False, False, True])
    assert asyncio.run(wait_until_async(lambda: next(answers), 1.0, every=0.001))
    assert not asyncio.run(wait_until_async(lambda: False, 0.01, every=0.002))
