"""Samples each service instance's /health and /metrics once a second during a run.

The client-side log says what users saw; these samples say what the service reported
about itself at the same moment (pool in use and waiting, readiness), which is how a
reader connects a symptom to its cause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from lab.backends.base import ServiceInstance


@dataclass
class Sample:
    t: float  # epoch seconds
    instance: str
    health: str  # HTTP status as a string, or "timeout"/"error"
    metrics: dict[str, float] = field(default_factory=dict)
    service: str = "checkout"  # checkout | router | proxy | payments
    round: int = 0  # samples of one round were taken together, about once a second

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "instance": self.instance, "service": self.service,
                "health": self.health, "metrics": self.metrics}


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {sample name: value summed over label sets}.

    Histogram buckets are dropped (the request log has exact latencies); what is kept
    are gauges and counter totals, which is what a reader plots next to the status mix.
    """
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    return out


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
            _get(http, f"{inst.base_url}/health"), _get(http, f"{inst.base_url}/metrics")
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
