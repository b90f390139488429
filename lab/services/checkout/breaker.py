"""A per-dependency circuit breaker: closed → open → half-open → closed.

Written here rather than taken from a library: the maintained asyncio one (purgatory) lets
*every* call through while half-open — a stampede on a gateway that is just recovering —
and reads the wall clock, so its state machine cannot be tested without sleeping. This
one admits exactly one trial call while half-open and takes an injectable clock.

* CLOSED: calls go through; `failure_threshold` dependency failures in a row open it.
* OPEN: calls fail fast (`BreakerOpen`, with how long until a retry makes sense) until
  `reset_timeout_s` has passed; then the next call becomes the half-open trial.
* HALF_OPEN: one trial call; others still fail fast. The trial's success closes the
  breaker, its failure opens it again for another `reset_timeout_s`.

Results of calls admitted under an earlier state (a slow call that started while closed
and fails after the breaker opened) do not count: each admission carries a ticket.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(Exception):
    """The breaker refused the call; `retry_after_s` is a sensible Retry-After."""

    def __init__(self, name: str, state: State, retry_after_s: int) -> None:
        self.name = name
        self.state = state
        self.retry_after_s = retry_after_s
        super().__init__(f"circuit breaker for {name} is {state}; retry in {retry_after_s}s")


@dataclass(frozen=True)
class Ticket:
    """An admitted call: a trial (half-open) or a normal call of one closed period."""

    trial: bool
    generation: int


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold >= 1 and reset_timeout_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._generation = 0
        # Transition and refusal counts, for /metrics.
        self.opened = 0
        self.half_opened = 0
        self.closed = 0
        self.rejected = 0

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            self._state = State.HALF_OPEN
            self._trial_in_flight = False
            self.half_opened += 1
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after_s(self) -> int:
        """Whole seconds until the breaker would admit a trial (at least 1)."""
        if self.state is State.OPEN:
            remaining = self.reset_timeout_s - (self._clock() - self._opened_at)
            return max(1, math.ceil(remaining))
        return 1

    def check(self) -> None:
        """Refuse now if a call would be refused, without taking the half-open trial slot:
        lets a caller fail fast before it does any other work for the request."""
        state = self.state
        if state is State.OPEN or (state is State.HALF_OPEN and self._trial_in_flight):
            self.rejected += 1
            raise BreakerOpen(self.name, state, self.retry_after_s())

    def admit(self) -> Ticket:
        """Admit a call or raise `BreakerOpen`."""
        state = self.state
        if state is State.CLOSED:
            return Ticket(trial=False, generation=self._generation)
        if state is State.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return Ticket(trial=True, generation=self._generation)
        self.rejected += 1
        raise BreakerOpen(self.name, state, self.retry_after_s())

    def success(self, ticket: Ticket) -> None:
        if ticket.trial:
            if self._state is State.HALF_OPEN:
                self._close()
        elif self._state is State.CLOSED and ticket.generation == self._generation:
            self._failures = 0

    def failure(self, ticket: Ticket) -> None:
        if ticket.trial:
            if self._state is State.HALF_OPEN:
                self._open()
        elif self._state is State.CLOSED and ticket.generation == self._generation:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def abandon(self, ticket: Ticket) -> None:
        """The call ended without a verdict (cancelled, or failed for a reason that is not
        the dependency's): free the trial slot without changing state."""
        if ticket.trial and self._state is State.HALF_OPEN:
            self._trial_in_flight = False

    def _open(self) -> None:
        self._state = State.OPEN
        self._opened_at = self._clock()
        self._trial_in_flight = False
        self.opened += 1

    def _close(self) -> None:
        self._state = State.CLOSED
        self._failures = 0
        self._trial_in_flight = False
        self._generation += 1
        self.closed += 1
