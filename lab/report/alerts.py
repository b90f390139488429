"""The seed's alert rules, evaluated on a variant's per-second timeline.

An alert is only useful if it fires soon after the fault begins and stops once the
mitigation (or the revert) takes hold; the report shows both for every variant. Rules
work on the results JSON, so saved results can be re-evaluated by `lab report`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Second = dict[str, Any]

_5XX_CLASSES = ("500", "502", "503", "504", "other_5xx")


def _error_rate(sec: Second) -> float | None:
    total = int(sec.get("total", 0))
    if total == 0:
        return None
    by_class = sec.get("by_class", {})
    return sum(int(by_class.get(c, 0)) for c in _5XX_CLASSES) / total


def _metric_ratio(numerator: str, denominator: str) -> Callable[[Second], float | None]:
    def series(sec: Second) -> float | None:
        values = []
        for metrics in sec.get("metrics", {}).values():
            if numerator in metrics and metrics.get(denominator):
                values.append(float(metrics[numerator]) / float(metrics[denominator]))
        return max(values) if values else None

    return series


def _metric(name: str) -> Callable[[Second], float | None]:
    def series(sec: Second) -> float | None:
        values = [float(m[name]) for m in sec.get("metrics", {}).values() if name in m]
        return max(values) if values else None

    return series


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str  # warn | page
    description: str
    series: Callable[[Second], float | None]
    threshold: float
    for_s: int  # the condition must hold this many consecutive seconds

    def evaluate(self, timeline: list[Second], fault_start_s: float) -> AlertResult:
        run = 0
        firing_seconds: list[int] = []
        applicable = False
        for sec in timeline:
            value = self.series(sec)
            if value is None:
                run = 0
                continue
            applicable = True
            run = run + 1 if value > self.threshold else 0
            if run >= self.for_s:
                firing_seconds.append(int(sec["t"]))
        if not applicable:
            return AlertResult(self, applicable=False)
        if not firing_seconds:
            return AlertResult(self, applicable=True)
        first, last = firing_seconds[0], firing_seconds[-1]
        end = int(timeline[-1]["t"])
        return AlertResult(
            self,
            applicable=True,
            fired=True,
            first_fired_s=first,
            after_fault_start_s=round(first - fault_start_s, 1),
            resolved_s=last + 1 if last < end else None,
            firing_seconds=len(firing_seconds),
        )


@dataclass(frozen=True)
class AlertResult:
    rule: AlertRule
    applicable: bool
    fired: bool = False
    first_fired_s: int | None = None
    after_fault_start_s: float | None = None
    resolved_s: int | None = None  # first second it no longer fired; None: still firing
    firing_seconds: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.rule.name,
            "severity": self.rule.severity,
            "description": self.rule.description,
            "applicable": self.applicable,
            "fired": self.fired,
            "first_fired_s": self.first_fired_s,
            "after_fault_start_s": self.after_fault_start_s,
            "resolved_s": self.resolved_s,
            "firing_seconds": self.firing_seconds,
        }


# The seed's thresholds: 5xx rate above 1 % pages; pool use above 80 % warns, above 95 %
# pages; disk above 85 % warns, above 95 % pages. Conditions must hold for a few seconds,
# as a `for:` clause would in Prometheus, so one stray error does not page anyone.
RULES: tuple[AlertRule, ...] = (
    AlertRule("HighErrorRate", "page", "5xx above 1 % of requests for 3 s",
              _error_rate, 0.01, 3),
    AlertRule("PoolSaturationWarning", "warn", "DB pool use above 80 % for 3 s",
              _metric_ratio("checkout_db_pool_in_use", "checkout_db_pool_max"), 0.80, 3),
    AlertRule("PoolSaturation", "page", "DB pool use above 95 % for 3 s",
              _metric_ratio("checkout_db_pool_in_use", "checkout_db_pool_max"), 0.95, 3),
    AlertRule("DiskFillingWarning", "warn", "data disk above 85 % used for 3 s",
              _metric("checkout_data_disk_used_ratio"), 0.85, 3),
    AlertRule("DiskFull", "page", "data disk above 95 % used for 3 s",
              _metric("checkout_data_disk_used_ratio"), 0.95, 3),
)


def evaluate_alerts(variant: dict[str, Any]) -> list[AlertResult]:
    """Every rule on one variant of the results JSON."""
    fault_start = float(variant["fault"]["fault_start_s"])
    return [rule.evaluate(variant["timeline"], fault_start) for rule in RULES]
