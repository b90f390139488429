"""Polling until something holds or a deadline passes, written once: a fault holder's
exit, a router backend's drain, the load's first answers and its end all wait this way.

`done` is asked first, then again after each `every` seconds of sleep, until it is true
(True) or it is still false at or after the deadline (False; the caller says what did not
happen, in its own words). So it is asked at least once, and once more after a sleep that
crossed the deadline. A `done` may raise to end the wait at once (a process that died).
`clock` and `sleep` are parameters so a test can drive the wait with a fake clock.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def wait_until(done: Callable[[], bool], timeout: float, *, every: float,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll `done` every `every` s for up to `timeout` s (blocking): whether it came true."""
    deadline = clock() + timeout
    while not done():
        if clock() >= deadline:
            return False
        sleep(every)
    return True


async def wait_until_async(done: Callable[[], bool] | Callable[[], Awaitable[bool]],
                           timeout: float, *, every: float,
                           clock: Callable[[], float] = time.monotonic,
                           sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> bool:
    """`wait_until` on the event loop: `done` may be a plain or an async function."""
    deadline = clock() + timeout
    while not await _ask(done):
        if clock() >= deadline:
            return False
        await sleep(every)
    return True


async def _ask(done: Callable[[], bool] | Callable[[], Awaitable[bool]]) -> bool:
    answer = done()
    if inspect.isawaitable(answer):
        return bool(await answer)
    return bool(answer)
