"""Data access: the asyncpg pool wrapper, the readiness probe, and the checkout queries.

`Database` adds what asyncpg's pool does not expose but the incident needs to be *seen*:
how many requests are queued for a connection (`waiting`), how many hold one
(`in_use`), and for how long the pool has been under pressure without a break (see
`pressure_s`: readiness acts on that, not on an instant). It is also the one place where
driver exceptions that mean "Postgres is slow or gone" are translated into
`DependencyUnavailable`, so the HTTP layer can decide between an honest 503 and a 500
without knowing asyncpg.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from .problems import DependencyUnavailable

POSTGRES = "postgres"
PROBE_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 5.0
# Returning a connection runs a reset round trip. asyncpg bounds it by the acquire timeout
# unless told otherwise, so a 250 ms acquire timeout turned a slow reset on a busy machine
# into a TimeoutError (a 500 for a request whose order was already committed) and a
# terminated connection the pool then had to reopen. Queueing and resetting are different
# waits: the reset gets its own bound.
RELEASE_TIMEOUT_S = 5.0

# Driver exceptions that mean "the connection or the server is gone", not "our SQL is wrong".
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # incl. ConnectionDoesNotExistError, ConnectionFailureError
    asyncpg.exceptions.AdminShutdownError,  # pg_terminate_backend() / server shutdown
    asyncpg.exceptions.CannotConnectNowError,  # server starting up or in recovery
    OSError,  # refused / reset sockets
)


def _classify(exc: BaseException) -> str | None:
    """The `reason` label for a known dependency failure, or None for anything else."""
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return "statement_timeout"
    if isinstance(exc, asyncpg.exceptions.TooManyConnectionsError):
        return "too_many_connections"
    if isinstance(exc, TimeoutError):
        # TimeoutError is an OSError subclass; outside acquire() it is not ours to excuse.
        return None
    if isinstance(exc, _CONNECTION_ERRORS):
        return "connection_error"
    return None


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """Pool figures for /health and logs, taken at one instant."""

    size: int
    max: int
    in_use: int
    waiting: int
    #: How long the pool has been under pressure (requests waiting, or more connections in
    #: use than the pressure share) without a break; None when it is not now.
    pressure_s: float | None = None

    @property
    def use(self) -> float:
        return self.in_use / self.max if self.max else 0.0


class Database:
    """An asyncpg pool plus the counters that make pool exhaustion visible."""

    def __init__(
        self,
        pool: Any,
        *,
        dsn: str,
        max_size: int,
        acquire_timeout_s: float | None,
        pressure_use: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._max_size = max_size
        self._acquire_timeout_s = acquire_timeout_s
        self._pressure_use = pressure_use
        self._clock = clock
        self._in_use = 0
        self._waiting = 0
        self._pressure_since: float | None = None
        self._probe_conn: Any = None
        self._probe_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        acquire_timeout_s: float | None,
        server_settings: dict[str, str],
        pressure_use: float = 0.0,
    ) -> Database:
        """Create the pool (connecting `min_size` connections now) and wrap it.

        `pressure_use`: the share of the pool in use above which it counts as under
        pressure (0: only requests waiting for a connection do).
        """
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings=server_settings,
            timeout=CONNECT_TIMEOUT_S,
        )
        return cls(
            pool, dsn=dsn, max_size=max_size, acquire_timeout_s=acquire_timeout_s,
            pressure_use=pressure_use,
        )

    # -- figures ---------------------------------------------------------------------------

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def size(self) -> int:
        return int(self._pool.get_size())

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def pressure_seconds(self) -> float:
        """The current pressure stretch for /metrics (0: none now)."""
        return self._pressure_s() or 0.0

    def _pressure_s(self) -> float | None:
        since = self._pressure_since
        return None if since is None else self._clock() - since

    def snapshot(self) -> PoolSnapshot:
        return PoolSnapshot(
            size=self.size, max=self._max_size, in_use=self._in_use, waiting=self._waiting,
            pressure_s=self._pressure_s(),
        )

    def _note_pressure(self) -> None:
        """Start or end the pressure period after the counters changed.

        A burst of requests that arrive together queues for a few milliseconds and drains;
        an overloaded pool never empties its queue. Only the time since the pressure began
        tells them apart, so it is kept at every change rather than sampled.
        """
        pressed = self._waiting > 0 or (
            self._pressure_use > 0 and self._in_use > self._pressure_use * self._max_size
        )
        if not pressed:
            self._pressure_since = None
        elif self._pressure_since is None:
            self._pressure_since = self._clock()

    # -- connections -----------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """One pooled connection for the whole block, like typical request code uses.

        With no acquire timeout (the incident's setting) this waits for as long as it takes.
        """
        self._waiting += 1
        self._note_pressure()
        try:
            conn = await self._pool.acquire(timeout=self._acquire_timeout_s)
        except TimeoutError as exc:
            raise DependencyUnavailable(
                POSTGRES,
                "pool_acquire_timeout",
                f"no pool connection within {self._acquire_timeout_s}s",
            ) from exc
        except Exception as exc:
            reason = _classify(exc)
            if reason is None:
                raise
            raise DependencyUnavailable(POSTGRES, reason, type(exc).__name__) from exc
        finally:
            self._waiting -= 1
            self._note_pressure()
        self._in_use += 1
        self._note_pressure()
        try:
            yield conn
        except Exception as exc:
            reason = _classify(exc)
            if reason is None:
                raise
            raise DependencyUnavailable(POSTGRES, reason, type(exc).__name__) from exc
        finally:
            self._in_use -= 1
            self._note_pressure()
            await self._pool.release(conn, timeout=RELEASE_TIMEOUT_S)

    async def probe(self) -> float:
        """`SELECT 1` on a dedicated connection outside the pool; returns seconds taken.

        Outside the pool so a drained pool cannot hang the readiness probe; bounded by
        PROBE_TIMEOUT_S. Raises DependencyUnavailable when Postgres does not answer.
        """
        started = time.perf_counter()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                async with self._probe_lock:
                    if self._probe_conn is None or self._probe_conn.is_closed():
                        self._probe_conn = await asyncpg.connect(self._dsn, timeout=PROBE_TIMEOUT_S)
                    await self._probe_conn.fetchval("SELECT 1")
        except TimeoutError as exc:
            await self._drop_probe()
            raise DependencyUnavailable(POSTGRES, "probe_timeout") from exc
        except Exception as exc:
            await self._drop_probe()
            # Any failure (wrong password, missing database...) means "not ready".
            reason = _classify(exc) or "probe_failed"
            raise DependencyUnavailable(POSTGRES, reason, f"{type(exc).__name__}: {exc}") from exc
        return time.perf_counter() - started

    async def _drop_probe(self) -> None:
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            conn.terminate()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close the pool, terminating connections still held after `timeout_s`."""
        await self._drop_probe()
        try:
            await asyncio.wait_for(self._pool.close(), timeout_s)
        except TimeoutError:
            self._pool.terminate()


# -- the checkout's queries ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CartItem:
    sku: str
    qty: int
    unit_price_cents: int


#: The incident's query; lab.load.calibrate times it (EXPLAIN ANALYZE) with and without the index.
CART_ITEMS_QUERY = "SELECT sku, qty, unit_price_cents FROM cart_items WHERE cart_id = $1"


async def fetch_cart_items(conn: Any, cart_id: int) -> list[CartItem]:
    """The cart's lines. Without `idx_cart_items_cart_id` this is a sequential scan."""
    rows = await conn.fetch(CART_ITEMS_QUERY, cart_id)
    return [CartItem(r["sku"], r["qty"], r["unit_price_cents"]) for r in rows]


async def fetch_stock(conn: Any, skus: Sequence[str]) -> dict[str, int]:
    """Stock per SKU (primary-key lookups)."""
    rows = await conn.fetch(
        "SELECT sku, stock FROM inventory WHERE sku = ANY($1::text[])", list(skus)
    )
    return {r["sku"]: r["stock"] for r in rows}


async def insert_order(
    conn: Any, *, cart_id: int, user_id: int, total_cents: int, status: str = "CONFIRMED",
    order_ref: str | None = None,
) -> int:
    """Persist an order (confirmed unless told otherwise) and return its id; `order_ref` is
    the reference it was charged under, which the lab's ledger joins on."""
    order_id = await conn.fetchval(
        "INSERT INTO orders (cart_id, user_id, total_cents, status, order_ref)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        cart_id,
        user_id,
        total_cents,
        status,
        order_ref,
    )
    return int(order_id)


PAYMENT_PENDING = "PAYMENT_PENDING"


async def insert_pending_order(
    conn: Any, *, cart_id: int, user_id: int, total_cents: int, order_ref: str
) -> int:
    """The payment fallback: an order accepted as payment pending, and its entry in the
    capture queue (same transaction, so no pending order can lack one)."""
    async with conn.transaction():
        order_id = await insert_order(conn, cart_id=cart_id, user_id=user_id,
                                      total_cents=total_cents, status=PAYMENT_PENDING,
                                      order_ref=order_ref)
        await conn.execute(
            "INSERT INTO payment_captures (order_id, order_ref, amount_cents) VALUES ($1, $2, $3)",
            order_id, order_ref, total_cents,
        )
    return order_id
