"""The payment gateway turns flaky: a schedule of toxics on the fault proxy.

Each phase of `schedule` replaces the previous phase's toxic at `after` seconds into the
fault window: e.g. slow, then hanging, then resetting, then answering 503 for a share of
requests. Reverting removes every toxic (and closes connections a `timeout` toxic held).
Evidence: the proxy's own log of which toxic was set when, and how often each acted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from pydantic import Field, model_validator

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams
from lab.scenario.units import Duration
from lab.services.proxy.toxics import Toxic
from lab.stack.base import ProxyControl


class GatewayPhase(Toxic):
    """One toxic (fields as the proxy takes them) and when, in the window, it starts."""

    after: Duration = 0.0


class GatewayParams(FaultParams):
    schedule: list[GatewayPhase] = Field(min_length=1)
    dependency: str | None = Field(
        None, description="your own service's dependency it acts on, by name (default: "
        "the first declared; the sample shop has one, the payment gateway)")

    @model_validator(mode="after")
    def _ordered(self) -> GatewayParams:
        starts = [p.after for p in self.schedule]
        if starts != sorted(starts) or starts[0] != 0:
            raise ValueError("phases must start at after: 0s and be in time order")
        return self


class GatewayFault(Fault):
    kind = "gateway"
    Params = GatewayParams
    description = "the payment gateway is slow, hangs, resets or answers 5xx (via the proxy)"

    params: GatewayParams
    _task: asyncio.Task[None] | None = None

    def _toxic(self, index: int) -> dict[str, Any]:
        phase = self.params.schedule[index]
        toxic = phase.model_dump(exclude={"after", "name"}, exclude_defaults=True)
        toxic["type"] = phase.type
        toxic["name"] = f"phase{index + 1}-{phase.type}"
        return toxic

    @property
    def proxy(self) -> ProxyControl:
        """The fault proxy in front of the dependency the fault acts on."""
        from lab.stack.controls import HttpProxyControl  # here: aiohttp, only for a live stack

        name = self.params.dependency
        if name is None:
            return self.handle.proxy
        found = next((s for s in self.stack.services
                      if s.service == "proxy" and s.name == f"proxy-{name}"), None)
        if found is None:
            raise FaultError(f"gateway: no dependency named {name!r} in this stack")
        return HttpProxyControl(found.base_url)

    async def inject(self) -> None:
        proxy = self.proxy
        if self.params.dependency is not None:
            self.evidence.facts["dependency"] = self.params.dependency
        await proxy.reset()
        before = await proxy.stats()
        self.evidence.facts.update(
            schedule=[self._toxic(i) | {"after_s": p.after}
                      for i, p in enumerate(self.params.schedule)],
            requests_before=before["requests"],
        )
        await proxy.set_toxic(self._toxic(0))
        self._task = asyncio.create_task(self._advance(time.monotonic()))

    async def _advance(self, started: float) -> None:
        proxy = self.proxy
        for i in range(1, len(self.params.schedule)):
            await asyncio.sleep(max(0.0, started + self.params.schedule[i].after
                                    - time.monotonic()))
            await proxy.remove_toxic(str(self._toxic(i - 1)["name"]))
            await proxy.set_toxic(self._toxic(i))

    async def observe(self) -> None:
        stats = await self.proxy.stats()
        self.evidence.observations.append({
            "t": round(time.time(), 3),
            "toxics": [t["key"] for t in stats["toxics"]],
            "requests": stats["requests"], "forwarded": stats["forwarded"],
            "toxic_hits": stats["toxic_hits"],
        })

    async def revert(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, FaultError):
                await self._task
        proxy = self.proxy
        await proxy.reset()
        stats = await proxy.stats()
        set_phases = {c["toxic"].get("name") for c in stats["changes"] if c["change"] == "set"}
        wanted = {str(self._toxic(i)["name"]) for i in range(len(self.params.schedule))}
        hits = stats["toxic_hits"]
        self.evidence.facts.update(
            phases_applied=sorted(set_phases & wanted),
            toxic_hits={k: hits.get(k, 0) for k in sorted(wanted)},
            http_errors=stats["http_errors"],
            resets=stats["resets"],
            requests_during=stats["requests"] - self.evidence.facts.get("requests_before", 0),
            toxics_after_revert=len(stats["toxics"]),
            changes=stats["changes"],
        )
        self.evidence.took_effect = (
            set_phases >= wanted and sum(hits.get(k, 0) for k in wanted) > 0
            and not stats["toxics"]
        )
