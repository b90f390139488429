"""Blocking calls off the event loop: the Docker SDK, a process's stop (up to its
timeout), … A cancellation (Ctrl-C, SIGTERM) waits for the call in flight before it
propagates, so nothing the call creates or ends is still changing when the teardown that
follows looks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def off_loop(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)` in a thread, so the event loop keeps running meanwhile. A
    cancellation waits for the call to finish, then propagates: what the call created
    exists by the time the teardown looks for it, as if the call had blocked the loop."""
    task = asyncio.ensure_future(asyncio.to_thread(call, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what propagates
        raise
