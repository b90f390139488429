"""The hot cache key expires at one moment under full load, as when a deploy wrote every
key with the same TTL and they all come due together.

The fault asks each checkout instance's admin endpoint to make the key expire
`expires_in` after injection (`POST /admin/cache/expire`). The value is kept, as a real
expiry keeps nothing fresher: stale-while-revalidate may still serve it, early refresh
may beat the deadline, and the incident's cache recomputes it once per request.
An expiry is a moment, not a state: there is nothing to put back, so reverting only
records the evidence — the recompute counter and the most recomputes that ran at once,
before and after, from `GET /admin/cache`.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams
from lab.scenario.units import Duration

PRICES_KEY = "catalog:prices"


class HotKeyExpiryParams(FaultParams):
    key: str = Field(PRICES_KEY, min_length=1)
    #: The key expires this long after injection (0: at once). A lead gives early refresh
    #: (XFetch) the time it needs to act before the deadline.
    expires_in: Duration = 0.0


class HotKeyExpiry(Fault):
    kind = "hot-key-expiry"
    Params = HotKeyExpiryParams
    description = "the hot cache key expires at one moment under full load"

    params: HotKeyExpiryParams

    async def _call(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        import aiohttp  # here, not at the top: loading a scenario must not pull it in

        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.request(
                method, url, json=body
            ) as resp:
                doc = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(doc, dict):
                    raise FaultError(
                        f"hot-key-expiry: {method} {url} answered {resp.status}: {doc}"
                    )
                return doc
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise FaultError(f"hot-key-expiry: {method} {url} failed: {exc}") from exc

    async def _state(self, phase: str) -> list[dict[str, Any]]:
        states = []
        for inst in self.stack.instances:
            doc = await self._call("GET", f"{inst.base_url}/admin/cache")
            states.append(doc)
            self.evidence.observations.append({
                "t": round(time.time(), 3), "phase": phase, "instance": inst.name,
                "recomputes": doc["recomputes"],
                "recomputes_in_progress": doc["recomputes_in_progress"],
                "peak_recomputes_in_progress": doc["peak_recomputes_in_progress"],
                "expires_in_s": (doc.get("entry") or {}).get("expires_in_s"),
                "age_s": (doc.get("entry") or {}).get("age_s"),
                "last_recompute_s": (doc.get("entry") or {}).get("last_recompute_s"),
            })
        return states

    async def inject(self) -> None:
        began = time.time()
        before = await self._state("before")
        self._recomputes_before = sum(s["recomputes"] for s in before)
        self._served_before = _served(before)
        self._peak_before = max(s["peak_recomputes_in_progress"] for s in before)
        in_ms = round(self.params.expires_in * 1000)
        for inst in self.stack.instances:
            doc = await self._call(
                "POST", f"{inst.base_url}/admin/cache/expire",
                {"key": self.params.key, "in_ms": in_ms},
            )
            self.evidence.observations.append({
                "t": round(time.time(), 3), "phase": "injected", "instance": inst.name,
                "strategy": doc["strategy"], "expires_in_s": doc["entry"]["expires_in_s"],
            })
        self._expired_at = time.time() + self.params.expires_in
        self.evidence.facts.update(
            key=self.params.key, expires_in_s=self.params.expires_in,
            # How long the before-state read and the expiry calls took: a slow answer
            # moves the deadline later, towards (or past) the revert.
            inject_took_s=round(time.time() - began, 3),
            strategy=doc["strategy"], recomputes_before=self._recomputes_before,
        )

    async def observe(self) -> None:
        await self._state("during")

    async def revert(self) -> None:
        if not hasattr(self, "_expired_at"):
            return  # the expiry was never scheduled
        after = await self._state("after")
        recomputes = sum(s["recomputes"] for s in after) - self._recomputes_before
        served = _served(after)
        peak = max(s["peak_recomputes_in_progress"] for s in after)
        # When the value now cached was computed, against the deadline: negative means
        # it was refreshed early, so the synchronised expiry found a fresh value.
        ages = [(st.get("entry") or {}).get("age_s") for st in after]
        now = time.time()
        refreshed = [now - age - self._expired_at for age in ages if age is not None]
        self.evidence.facts.update(
            refreshed_vs_deadline_s=round(max(refreshed), 3) if refreshed else None,
            refreshed_before_deadline=recomputes >= 1 and bool(refreshed)
            and max(refreshed) < 0,
            recomputes_after=sum(s["recomputes"] for s in after),
            recomputes_during=recomputes,
            peak_concurrent_recomputes=peak,
            # How catalog requests were served from injection to revert: `waited` and
            # `miss` are requests that paid for a recompute, `stale` and `hit` did not.
            served_during={r: n - self._served_before.get(r, 0) for r, n in served.items()},
            peak_raised_by_fault=peak > self._peak_before,
            deadline_passed=time.time() >= self._expired_at,
            # Seconds from the deadline to the revert: negative means the window closed
            # before the key expired, so the run did not test the expiry at all.
            deadline_before_revert_s=round(now - self._expired_at, 3),
        )
        # The expiry happened (its deadline passed under load) and the cache answered it
        # with at least one recompute — early (XFetch), once (single-flight) or a stampede.
        self.evidence.took_effect = time.time() >= self._expired_at and recomputes >= 1


def _served(states: list[dict[str, Any]]) -> dict[str, int]:
    """Catalog requests by how the cache served them, summed over the instances."""
    total: dict[str, int] = {}
    for state in states:
        for result, n in state.get("served", {}).items():
            total[result] = total.get(result, 0) + int(n)
    return total
