"""A migration holds a lock on a table for the fault window: an `ALTER TABLE` with no
`lock_timeout`, a long `LOCK TABLE` in a maintenance script. Every statement that needs a
conflicting lock on the table waits behind it, holding its pooled connection while it
waits, so the pool drains as fast as requests arrive.

The lab opens its own connection, takes the lock in a transaction, and holds it until the
revert rolls the transaction back. Evidence, read from pg_locks on another connection:
the lock held by the lab's backend throughout the window, how many statements waited
behind it, and that nothing of the lab's holds it after the revert.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams

if TYPE_CHECKING:  # imported where used: loading a scenario must not pull in asyncpg
    import asyncpg

LockMode = Literal["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
                   "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


class LockTableParams(FaultParams):
    table: str = Field(pattern=_NAME, description="the table, optionally schema.table")
    mode: LockMode = Field("ACCESS EXCLUSIVE", description="what an ALTER TABLE takes")


def quoted(name: str) -> str:
    """`schema.table` as a quoted identifier."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


class LockTable(Fault):
    kind = "lock-table"
    Params = LockTableParams
    description = "a migration holds a lock on a table; statements that need it wait"

    params: LockTableParams
    _holder: asyncpg.Connection | None = None
    _transaction: Any = None
    _holder_pid: int | None = None

    async def check(self) -> None:
        conn = await self.connect_database()
        try:
            if await conn.fetchval("SELECT to_regclass($1)", quoted(self.params.table)) is None:
                known = [r["name"] for r in await conn.fetch(
                    "SELECT schemaname || '.' || tablename AS name FROM pg_tables "
                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                    "ORDER BY 1")]
                raise FaultError(f"lock-table: table {self.params.table!r} does not exist in "
                                 f"the database (its tables: {', '.join(known) or 'none'})")
        finally:
            await conn.close()

    async def inject(self) -> None:
        conn = await self.connect_database()
        try:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute(f"LOCK TABLE {quoted(self.params.table)} "
                               f"IN {self.params.mode} MODE")
        except BaseException:
            await conn.close()
            raise
        self._holder, self._transaction = conn, transaction
        self._holder_pid = await conn.fetchval("SELECT pg_backend_pid()")
        self.evidence.facts.update(table=self.params.table, mode=self.params.mode,
                                   holder_pid=self._holder_pid)
        await self.observe()

    async def observe(self) -> None:
        conn = await self.connect_database()
        try:
            await self._record(conn, "during" if self._holder is not None else "reverted")
        finally:
            await conn.close()

    async def _record(self, conn: asyncpg.Connection, phase: str) -> None:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE l.granted AND l.pid = $2) AS held, "
            "count(*) FILTER (WHERE NOT l.granted) AS waiting "
            "FROM pg_locks l WHERE l.relation = to_regclass($1)",
            quoted(self.params.table), self._holder_pid or -1)
        self.evidence.observations.append({
            "t": round(time.time(), 3), "phase": phase, "held": int(row["held"]) > 0,
            "waiting": int(row["waiting"])})

    async def revert(self) -> None:
        if self._holder is None:
            return  # inject never got the lock
        holder, self._holder = self._holder, None
        with contextlib.suppress(Exception):
            await self._transaction.rollback()
        with contextlib.suppress(Exception):
            await holder.close()
        await self.observe()
        obs = self.evidence.observations
        during = [o for o in obs if o["phase"] == "during"]
        after = [o for o in obs if o["phase"] == "reverted"]
        facts = self.evidence.facts
        facts["held_during_fault"] = bool(during) and all(o["held"] for o in during)
        facts["max_waiting"] = max((o["waiting"] for o in during), default=0)
        facts["released_after_revert"] = bool(after) and not after[-1]["held"]
        # It bit only if something waited behind it: a lock nobody needed proves nothing.
        self.evidence.took_effect = (facts["held_during_fault"] and facts["max_waiting"] >= 1
                                     and facts["released_after_revert"])
