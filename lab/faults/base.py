"""What every fault is: injected on enter, reverted on exit (on every path out), and able
to show evidence that it really took effect. A fault without evidence fails its variant:
a mitigation that "passed" against a fault that never happened proves nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from lab.errors import FaultError
from lab.stack.base import Stack, StackHandle

if TYPE_CHECKING:  # imported where used: loading a scenario must not pull in asyncpg
    import asyncpg


class FaultParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Evidence:
    """Proof the fault happened: `took_effect` plus the facts behind it."""

    took_effect: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    observations: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "took_effect": self.took_effect,
            "facts": self.facts,
            "observations": self.observations,
        }


class Fault:
    """Base of every fault kind; subclasses set `kind`, `Params` and the three hooks."""

    kind: ClassVar[str]
    Params: ClassVar[type[FaultParams]]
    description: ClassVar[str]
    #: The fault acts on the instances' data volumes (`stack.data_volume` required).
    needs_data_volume: ClassVar[bool] = False

    def __init__(
        self, params: FaultParams, stack: Stack, seed: int, handle: StackHandle | None = None
    ) -> None:
        self.params = params
        self.stack = stack
        self.seed = seed
        #: The live stack, for faults that act on it (start an instance, drive the router or
        #: the fault proxy) through the backend-neutral operations of `StackHandle`.
        self._handle = handle
        self.evidence = Evidence()
        self.injected_at: float | None = None
        self.reverted_at: float | None = None

    @property
    def handle(self) -> StackHandle:
        if self._handle is None:
            raise FaultError(f"{self.kind}: this fault needs the live stack (pass handle=)")
        return self._handle

    async def connect_database(self) -> asyncpg.Connection:
        """A connection of the fault's own to the stack's database (faults that act on it:
        an index, a lock); one that cannot be made is a FaultError naming the fault."""
        import asyncpg

        try:
            return await asyncpg.connect(self.stack.db_dsn, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise FaultError(f"{self.kind}: cannot reach the database: {exc}") from exc

    async def check(self) -> None:
        """Before the load: raise FaultError if the fault cannot act on this stack (an
        index that does not exist, say), so it is said before anything is judged."""

    async def inject(self) -> None:
        raise NotImplementedError

    async def revert(self) -> None:
        raise NotImplementedError

    async def observe(self) -> None:
        """Called about once a second while the fault is active, to collect evidence."""

    @contextlib.asynccontextmanager
    async def active(self) -> AsyncIterator[Fault]:
        """Inject; on exit revert, even when cancelled (Ctrl-C/SIGTERM) or failing."""
        self.injected_at = time.time()
        try:
            await self.inject()
            yield self
        finally:
            # Shield the revert from a cancellation arriving while it runs, and wait
            # for it even if this task is being cancelled: a fault must never stay.
            revert = asyncio.ensure_future(self.revert())
            try:
                await asyncio.shield(revert)
            except asyncio.CancelledError:
                await revert
                raise
            finally:
                self.reverted_at = time.time()
