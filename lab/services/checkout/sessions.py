"""Cart sessions with a TTL: an in-process stand-in for a Redis session store.

Production keeps cart sessions in Redis with a 30-minute TTL (`SETEX`, `GET`); the lab
compresses that to `SESSION_TTL_MS` and keeps the store in-process so no Redis is needed.
The semantics that matter for the incident are kept: a session is touched when a request
*arrives*, and a read after the TTL finds nothing — so a request that queued for a pool
connection longer than the TTL finds its session gone when the handler reads it late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

SESSION_HEADER = "X-Session-Id"
USER_HEADER = "X-User-Id"
SESSION_ID = web.RequestKey("session_id", str)


@dataclass(slots=True)
class Session:
    """What the checkout needs from the user's session."""

    session_id: str
    user_id: int
    created_at: float
    expires_at: float


class SessionStore:
    """Sessions keyed by id, expiring `ttl_s` after their last touch (monotonic clock).

    `get` evicts lazily, like Redis; `sweep` bounds memory for sessions nobody reads again.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def touch(self, session_id: str, user_id: int | None) -> Session | None:
        """Extend a live session, or create one when the user is known (`SETEX`)."""
        now = self._clock()
        session = self.get(session_id)
        if session is None:
            if user_id is None:
                return None
            session = Session(session_id, user_id, created_at=now, expires_at=now)
            self._sessions[session_id] = session
        elif user_id is not None:
            session.user_id = user_id
        session.expires_at = now + self.ttl_s
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session, or None once it has expired (`GET` on an expired key)."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def sweep(self) -> int:
        """Drop every expired session; returns how many were dropped."""
        now = self._clock()
        expired = [sid for sid, s in self._sessions.items() if s.expires_at <= now]
        for sid in expired:
            del self._sessions[sid]
        return len(expired)

    async def run_sweeper(self) -> None:
        """Sweep forever at half the TTL (bounded to 50 ms..5 s); cancel to stop."""
        interval = min(max(self.ttl_s / 2, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            self.sweep()


def _user_id_from(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


async def _user_id_from_body(request: web.Request) -> int | None:
    if not request.can_read_body:
        return None
    # aiohttp caches the body, so the handler can still read it after us.
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        body = json.loads(await request.read())
        if isinstance(body, dict):
            return _user_id_from(body.get("user_id"))
    return None


def make_session_middleware(store: SessionStore, prefix: str = "/api/") -> Middleware:
    """Touch the caller's session on arrival, for API routes only.

    The id comes from `X-Session-Id` (one per simulated user) or, when absent, is derived
    from the user id (`X-User-Id` header, else the JSON body's `user_id`).
    """

    @web.middleware
    async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefix):
            user_id = _user_id_from(request.headers.get(USER_HEADER))
            if user_id is None:
                user_id = await _user_id_from_body(request)
            session_id = request.headers.get(SESSION_HEADER) or (
                f"user-{user_id}" if user_id is not None else None
            )
            if session_id is not None:
                store.touch(session_id, user_id)
                request[SESSION_ID] = session_id
        return await handler(request)

    return session_middleware
