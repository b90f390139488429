"""The payment breaker's state machine, on a fake clock: no sleeping."""

from __future__ import annotations

import pytest

from lab.services.checkout.breaker import BreakerOpen, CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, failures: int = 3, reset_s: float = 2.0) -> CircuitBreaker:
    return CircuitBreaker("payments", failure_threshold=failures, reset_timeout_s=reset_s,
                          clock=clock)


def fail(b: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        b.failure(b.admit())


def test_opens_after_consecutive_failures_only() -> None:
    b = breaker(Clock())
    fail(b, 2)
    b.success(b.admit())  # a success resets the streak
    fail(b, 2)
    assert b.state is State.CLOSED and b.consecutive_failures == 2
    fail(b, 1)
    assert b.state is State.OPEN and b.opened == 1


def test_open_fails_fast_with_time_left_as_retry_after() -> None:
    clock = Clock()
    b = breaker(clock, reset_s=2.5)
    fail(b, 3)
    clock.now += 0.4
    with pytest.raises(BreakerOpen) as err:
        b.admit()
    assert err.value.retry_after_s == 3  # 2.1 s left, rounded up
    assert b.rejected == 1


def test_half_open_admits_exactly_one_trial() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 2.0
    assert b.state is State.HALF_OPEN and b.half_opened == 1
    trial = b.admit()
    assert trial.trial
    for _ in range(5):
        with pytest.raises(BreakerOpen):
            b.admit()
    assert b.rejected == 5
    b.success(trial)
    assert b.state is State.CLOSED and b.closed == 1
    assert not b.admit().trial


def test_failed_trial_reopens_for_another_reset_period() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 2.0
    b.failure(b.admit())
    assert b.state is State.OPEN and b.opened == 2
    clock.now += 1.9
    assert b.state is State.OPEN
    clock.now += 0.1
    assert b.state is State.HALF_OPEN


def test_late_results_of_an_earlier_period_do_not_count() -> None:
    clock = Clock()
    b = breaker(clock)
    slow = b.admit()  # admitted while closed; finishes after the breaker opened
    fail(b, 3)
    b.failure(slow)
    assert b.opened == 1  # did not restart the open period
    clock.now += 2.0
    trial = b.admit()
    b.success(slow)  # a stale success must not close it
    assert b.state is State.HALF_OPEN
    b.success(trial)
    b.failure(slow)  # nor a stale failure count against the new closed period
    assert b.consecutive_failures == 0


def test_abandoned_trial_frees_the_slot() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 2.0
    b.abandon(b.admit())
    assert b.state is State.HALF_OPEN
    assert b.admit().trial


def test_check_refuses_like_admit_without_taking_the_trial() -> None:
    clock = Clock()
    b = breaker(clock)
    b.check()  # closed: nothing to refuse
    fail(b, 3)
    with pytest.raises(BreakerOpen):
        b.check()
    clock.now += 2.0
    b.check()  # half-open and the trial slot is free: a real call may take it
    trial = b.admit()
    with pytest.raises(BreakerOpen):
        b.check()
    assert b.rejected == 2
    b.success(trial)
    b.check()


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0, reset_timeout_s=1)
