"""Samples each service instance's /health and /metrics once a second during a run.

The client-side log says what users saw; these samples say what the service reported
about itself at the same moment (pool in use and waiting, readiness), which is how a
reader connects a symptom to its cause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import aiohttp

from lab.records.samples import Sample, parse_metrics
from lab.stack.base import ServiceInstance


class Sampler:
    """`instances` may be a callable: the stack's parts are re-read every round, so an
    instance a fault starts (or retires) is sampled from (or until) that moment."""

    def __init__(
        self,
        instances: Sequence[ServiceInstance] | Callable[[], Sequence[ServiceInstance]],
        interval: float = 1.0,
    ) -> None:
        self._instances = instances
        self.interval = interval
        self.samples: list[Sample] = []
        self._round = 0

    @property
    def instances(self) -> Sequence[ServiceInstance]:
        return self._instances() if callable(self._instances) else self._instances

    async def run(self) -> None:
        """Sample until cancelled."""
        timeout = aiohttp.ClientTimeout(total=max(0.2, self.interval * 0.9))
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                started = time.monotonic()
                self._round += 1
                await asyncio.gather(*(self._sample(http, i) for i in self.instances))
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _sample(self, http: aiohttp.ClientSession, inst: ServiceInstance) -> None:
        now = time.time()
        health, metrics = await asyncio.gather(
            _get(http, f"{inst.base_url}{inst.health_path}"),
            _get(http, f"{inst.base_url}/metrics"),
        )
        parsed: dict[str, float] = {}
        if metrics[0] == "200":
            try:
                parsed = parse_metrics(metrics[1])
            except ValueError:
                parsed = {}
        self.samples.append(Sample(now, inst.name, health[0], parsed, inst.service, self._round))


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    try:
        async with http.get(url) as resp:
            return str(resp.status), await resp.text()
    except TimeoutError:
        return "timeout", ""
    except aiohttp.ClientError:
        return "error", ""
