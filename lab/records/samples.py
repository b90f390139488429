"""What a service reported about itself at one moment: one /health and /metrics sample.

A value type with no network client, so that the results, the verdicts and `lab report`
read samples without importing what takes them (lab.records.sampler, which needs aiohttp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


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
