"""A bad migration drops an index: the checkout's cart lookup becomes a sequential scan.

Reverting recreates the index from its recorded definition (what the on-call does).
With `recreate: true` the migration is the fixed one — it drops and recreates the index
in one transaction — so the fault runs but cannot bite (the root-fix variant).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams
from lab.services.checkout.schema import CART_ITEMS_INDEX

if TYPE_CHECKING:  # imported where used: loading a scenario must not pull in asyncpg
    import asyncpg


class DropIndexParams(FaultParams):
    index: str = CART_ITEMS_INDEX
    recreate: bool = False


class DropIndex(Fault):
    kind = "drop-index"
    Params = DropIndexParams
    description = "a migration drops an index; queries that used it become sequential scans"

    params: DropIndexParams
    _definition: str = ""

    async def _index(self, conn: asyncpg.Connection) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT i.indexdef, c.oid::int AS oid FROM pg_indexes i "
            "JOIN pg_class c ON c.relname = i.indexname WHERE i.indexname = $1",
            self.params.index,
        )

    async def check(self) -> None:
        conn = await self.connect_database()
        try:
            if await self._index(conn) is None:
                known = [r["indexname"] for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                    "ORDER BY indexname")]
                raise FaultError(f"drop-index: index {self.params.index!r} does not exist in "
                                 f"the database (its indexes: {', '.join(known) or 'none'})")
        finally:
            await conn.close()

    async def inject(self) -> None:
        conn = await self.connect_database()
        try:
            before = await self._index(conn)
            if before is None:
                raise FaultError(f"drop-index: index {self.params.index!r} does not exist")
            self._definition = before["indexdef"]
            self.evidence.facts.update(
                index=self.params.index, definition=self._definition, oid_before=before["oid"],
                migration="drop and recreate (fixed)" if self.params.recreate else "drop",
            )
            async with conn.transaction():
                await conn.execute(f'DROP INDEX "{self.params.index}"')
                if self.params.recreate:
                    await conn.execute(self._definition)
            await self._record(conn, "injected")
        finally:
            await conn.close()

    async def observe(self) -> None:
        conn = await self.connect_database()
        try:
            await self._record(conn, "during")
        finally:
            await conn.close()

    async def revert(self) -> None:
        if not self._definition:
            return  # inject never got as far as dropping anything
        conn = await self.connect_database()
        try:
            if await self._index(conn) is None:
                await conn.execute(self._definition)
            await self._record(conn, "reverted")
        finally:
            await conn.close()
        obs = self.evidence.observations
        during = [o for o in obs if o["phase"] in ("injected", "during")]
        after = [o for o in obs if o["phase"] == "reverted"]
        self.evidence.facts["present_after_revert"] = bool(after and after[-1]["present"])
        if self.params.recreate:
            # The fixed migration ran: the index was rebuilt (new oid) and never missing.
            new_oids = {o["oid"] for o in during if o["present"]}
            self.evidence.took_effect = bool(during) and all(o["present"] for o in during) and (
                self.evidence.facts["oid_before"] not in new_oids
            )
        else:
            self.evidence.took_effect = bool(during) and not any(o["present"] for o in during)
        self.evidence.facts["absent_during_fault"] = bool(during) and not any(
            o["present"] for o in during
        )

    async def _record(self, conn: asyncpg.Connection, phase: str) -> None:
        row = await self._index(conn)
        self.evidence.observations.append(
            {"t": round(time.time(), 3), "phase": phase, "present": row is not None,
             "oid": row["oid"] if row else None}
        )
