"""From raw observations (request log, service samples, logs) to a variant's results.

Everything is keyed on wall-clock time: a request belongs to the window in which it was
*sent*. The JSON written by `lab run --json` is `RunResults.to_json()`; its schema is
documented in docs/results.md.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.load.arrivals import behind_seconds, schedule_start, scheduled_per_second
from lab.load.classify import RESPONSE_CLASSES
from lab.load.request_log import RequestRecord, answers
from lab.records.samples import Sample
from lab.scenario.expectations import percentile as percentile
from lab.scenario.expectations import window_offset
from lab.scenario.models import LoadSpec

#: 2: 502 and 504 left other_5xx for classes of their own. 3: a variant's `verdict` (PASS,
#: FAIL, INCONCLUSIVE) with its `inconclusive` reasons; drops count on the honest line.
SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Windows:
    """Wall-clock bounds of a variant's load: before, fault and after."""

    load_start: float
    fault_start: float
    fault_end: float
    load_end: float

    def range(self, window: str) -> tuple[float, float]:
        base, offset = window_offset(window)
        start, end = {
            "before": (self.load_start, self.fault_start),
            "fault": (self.fault_start, self.fault_end),
            "after": (self.fault_end, self.load_end),
        }[base]
        return min(start + offset, end), end

    def relative(self) -> dict[str, float]:
        return {
            "fault_start_s": round(self.fault_start - self.load_start, 3),
            "fault_end_s": round(self.fault_end - self.load_start, 3),
            "load_end_s": round(self.load_end - self.load_start, 3),
        }


def in_window(records: Iterable[RequestRecord], bounds: tuple[float, float]) -> list[RequestRecord]:
    start, end = bounds
    return [r for r in records if start <= r.start < end]


def completed_before(records: Iterable[RequestRecord], t: float) -> list[RequestRecord]:
    """The records whose client had its answer (or gave up) before wall-clock time `t`:
    send time + latency < t.

    Windows are by send time, so a request sent a few ms before the injection and served
    after it belongs to `before` and may fail legitimately. A claim about what happened
    before an instant ("no request that completed before the injection failed") is
    exact only over these."""
    return [r for r in records if r.start + r.latency_ms / 1000 < t]


def _by_class(records: Iterable[RequestRecord]) -> dict[str, int]:
    classes = Counter(r.cls for r in records)
    return {c: classes[c] for c in RESPONSE_CLASSES if classes[c]}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


@dataclass
class WindowSummary:
    total: int
    by_status: dict[str, int]
    by_class: dict[str, int]
    retry_after: dict[str, int]  # status → how many of those responses carried Retry-After
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    start_s: float
    end_s: float
    #: Which instance answered (the X-Instance header the router passes through; `router`
    #: for the router's own 503s); requests with no answer are not counted here.
    by_instance: dict[str, int] = field(default_factory=dict)
    #: `by_class` of the window's requests that were answered (or given up on) before the
    #: window ended; the others were in flight across its end. None: not computed.
    completed_by_class: dict[str, int] | None = None
    #: Arrivals the open model's load generator did not send (its cap on requests in
    #: flight was full). Not answers: in none of the figures above.
    dropped: int = 0

    @classmethod
    def of(
        cls, records: Sequence[RequestRecord], start_s: float, end_s: float,
        *, ends_at: float | None = None,
    ) -> WindowSummary:
        """`ends_at`: the window's end as wall-clock time, for `completed_by_class`.
        Dropped arrivals are counted in `dropped` and left out of everything else."""
        sent = answers(records)
        dropped = len(records) - len(sent)
        records = sent
        latencies = [r.latency_ms for r in records]
        return cls(
            total=len(records),
            by_status=dict(sorted(Counter(r.status_key for r in records).items())),
            by_class=_by_class(records),
            retry_after=dict(
                sorted(Counter(r.status_key for r in records if r.retry_after).items())
            ),
            p50_ms=_round(percentile(latencies, 50)),
            p99_ms=_round(percentile(latencies, 99)),
            max_ms=_round(max(latencies) if latencies else None),
            start_s=round(start_s, 3),
            end_s=round(end_s, 3),
            by_instance=dict(sorted(Counter(r.instance for r in records if r.instance).items())),
            completed_by_class=(
                None if ends_at is None else _by_class(completed_before(records, ends_at))
            ),
            dropped=dropped,
        )

    def share(self, cls: str) -> float:
        return self.by_class.get(cls, 0) / self.total if self.total else 0.0

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _seconds(windows: Windows) -> int:
    return max(1, math.ceil(windows.load_end - windows.load_start))


def _by_second(records: Iterable[RequestRecord], windows: Windows) -> list[list[RequestRecord]]:
    seconds = _seconds(windows)
    buckets: list[list[RequestRecord]] = [[] for _ in range(seconds)]
    for r in records:
        i = int(r.start - windows.load_start)
        if 0 <= i < seconds:
            buckets[i].append(r)
    return buckets


@dataclass
class ArrivalAccount:
    """The open model's arrivals, second by second: what its schedule asked for against
    what the load generator achieved (sent + dropped), and the seconds it fell behind.

    The schedule is read back from the seed (lab.load.arrivals), anchored at the first
    arrival seen, so a Poisson second that was quiet by draw is not taken for a generator
    that fell behind. The load runs on past its window until every request sent in it has
    ended, so every second is judged.
    """

    rate: float
    kind: str
    max_in_flight: int
    started_s: float | None  # when the schedule began, since the load began (None: no arrival)
    scheduled: list[int]
    achieved: list[int]
    dropped: list[int]
    judged_until_s: int
    behind: list[int]

    @classmethod
    def of(
        cls, records: Sequence[RequestRecord], windows: Windows, spec: LoadSpec, seed: int
    ) -> ArrivalAccount:
        assert spec.rate is not None, "closed-loop load has no arrival schedule"
        buckets = _by_second(records, windows)
        seconds = len(buckets)
        first = min((r.start for r in records), default=None)
        started = (None if first is None else
                   schedule_start(first - windows.load_start, spec.rate_per_s, spec.arrivals, seed))
        # No arrival at all: the schedule is taken to have begun with the window, so
        # every judged second shows as behind.
        scheduled = scheduled_per_second(spec.rate_per_s, spec.arrivals, seed,
                                         0.0 if started is None else started, seconds)
        achieved = [len(b) for b in buckets]
        # The load ran on until every request sent in the window had ended, and one still
        # in flight at its stop is logged as unfinished: every second can be judged.
        judged = seconds
        return cls(
            rate=spec.rate_per_s, kind=spec.arrivals, max_in_flight=spec.max_in_flight,
            started_s=None if started is None else round(started, 3),
            scheduled=scheduled, achieved=achieved,
            dropped=[sum(1 for r in b if r.dropped) for b in buckets],
            judged_until_s=judged, behind=behind_seconds(achieved, scheduled, judged),
        )

    @property
    def achieved_rate(self) -> float | None:
        """Arrivals per second over the judged seconds, from the schedule's start."""
        start = self.started_s or 0.0
        span = self.judged_until_s - start
        if span <= 0:
            return None
        return sum(self.achieved[:self.judged_until_s]) / span

    def second(self, i: int) -> dict[str, Any]:
        """The timeline's figures for second `i`."""
        return {
            "arrivals": self.achieved[i],
            "scheduled": self.scheduled[i],
            "behind": (i in self.behind) if i < self.judged_until_s else None,
        }

    def to_json(self) -> dict[str, Any]:
        rate = self.achieved_rate
        return {
            "model": "open",
            "rate_per_s": self.rate,
            "arrivals": self.kind,
            "max_in_flight": self.max_in_flight,
            "generator_started_s": self.started_s,
            "scheduled": sum(self.scheduled),
            "sent": sum(self.achieved) - sum(self.dropped),
            "dropped": sum(self.dropped),
            "achieved_rate_per_s": None if rate is None else round(rate, 1),
            "judged_until_s": self.judged_until_s,
            "behind_target": bool(self.behind),
            "behind_seconds": self.behind,
        }


def load_summary(spec: LoadSpec, account: ArrivalAccount | None,
                 capacity: Any = None) -> dict[str, Any]:
    """The variant's `load` in the results: how the load was generated and, for the open
    model, what it achieved and what the healthy stack served before it
    (lab.load.capacity.Capacity)."""
    # How many Locust workers sent it (`load.workers: auto` decides before the load).
    workers = {"workers": spec.worker_count, "remote_workers": spec.remote_workers}
    if account is not None:
        doc = {**account.to_json(), **workers}
        if capacity is not None:
            doc["healthy_capacity"] = capacity.to_json()
        return doc
    return {"model": "closed", "users": spec.users, "spawn_rate": spec.spawn_rate,
            "wait_s": spec.wait, **workers}


def timeline(
    records: Sequence[RequestRecord], samples: Sequence[Sample], windows: Windows,
    arrivals: ArrivalAccount | None = None,
) -> list[dict[str, Any]]:
    """One entry per second of load: the status mix, latency, and what the service said;
    dropped arrivals counted apart, and for the open model the arrivals achieved against
    the schedule's (`arrivals`)."""
    seconds = _seconds(windows)
    buckets = _by_second(records, windows)
    by_second: dict[int, list[Sample]] = {}
    for s in samples:
        i = int(s.t - windows.load_start)
        if 0 <= i < seconds:
            by_second.setdefault(i, []).append(s)
    out = []
    for i, everything in enumerate(buckets):
        bucket = answers(everything)
        latencies = [r.latency_ms for r in bucket]
        classes = Counter(r.cls for r in bucket)
        t = windows.load_start + i
        phase = (
            "before" if t < windows.fault_start else "fault" if t < windows.fault_end else "after"
        )
        out.append({
            "t": i,
            "phase": phase,
            "total": len(bucket),
            "by_class": {c: classes[c] for c in RESPONSE_CLASSES if classes[c]},
            "p50_ms": _round(percentile(latencies, 50)),
            "p99_ms": _round(percentile(latencies, 99)),
            "health": {s.instance: s.health for s in by_second.get(i, [])},
            "metrics": {s.instance: s.metrics for s in by_second.get(i, [])},
            "dropped": len(everything) - len(bucket),
            **(arrivals.second(i) if arrivals is not None else {}),
        })
    return out


@dataclass
class Signature:
    """Server-side 500s grouped the way an on-call reads them: exception and frame."""

    exception: str
    frame: str
    count: int
    example_error_id: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _error_lines(stderr_lines: Iterable[str], pattern: str | None) -> Iterator[dict[str, Any]]:
    """Each unhandled error's fields: the sample's JSON lines, or the lines a user's own
    service writes, matched by its declared `error_log.pattern`."""
    compiled = re.compile(pattern) if pattern is not None else None
    for line in stderr_lines:
        if compiled is not None:
            if (m := compiled.search(line)) is not None:
                yield {k: v for k, v in m.groupdict().items() if v is not None}
            continue
        if '"unhandled_exception"' not in line:
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def failure_signatures(stderr_lines: Iterable[str],
                       pattern: str | None = None) -> list[Signature]:
    """Unhandled errors grouped by (exception, frame), most frequent first."""
    groups: dict[tuple[str, str], Signature] = {}
    for doc in _error_lines(stderr_lines, pattern):
        key = (str(doc.get("exception", "?")), str(doc.get("frame", "?")))
        if key in groups:
            groups[key].count += 1
        else:
            groups[key] = Signature(key[0], key[1], 1, str(doc.get("errorId", "")),
                                    str(doc.get("message", ""))[:200])
    return sorted(groups.values(), key=lambda s: -s.count)


@dataclass(frozen=True)
class Inconclusive:
    """One way a run's experiment did not happen as designed (lab.verdict.validity), and the knob
    that changes it: the variant's verdict is then INCONCLUSIVE, neither PASS nor FAIL."""

    check: str  # generator | dropped_before | saturated_before | too_few | refused | error
    what: str
    knob: str

    @property
    def text(self) -> str:
        return f"{self.what}: {self.knob}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "what": self.what, "knob": self.knob}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Inconclusive:
        return cls(str(doc.get("check", "")), str(doc.get("what", "")), str(doc.get("knob", "")))


PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@dataclass
class ExpectationResult:
    text: str
    passed: bool
    measured: str
    value: float | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class VariantResult:
    scenario: str
    name: str
    description: str
    backend: str
    run_id: str
    config: dict[str, str]
    fault: dict[str, Any]
    windows: dict[str, WindowSummary]
    timeline: list[dict[str, Any]]
    expectations: list[ExpectationResult]
    evidence: dict[str, Any]
    signatures: list[Signature]
    timing: dict[str, float]
    health_samples: list[dict[str, Any]] = field(default_factory=list)
    #: The payment ledger (lab.records.ledger): gateway charges against the shop's orders.
    ledger: dict[str, int] = field(default_factory=dict)
    #: How the load was generated (closed loop or open model) and, for the open model,
    #: the arrivals achieved against the target (see `load_summary`).
    load: dict[str, Any] = field(default_factory=dict)
    #: A `physics` scenario's load as sized on this machine (lab.scenario.physics.Calibration).
    calibration: dict[str, Any] | None = None
    #: A `physics` scenario's mechanism as measured in the fault window (lab.scenario.physics).
    mechanism: dict[str, Any] | None = None
    #: How the experiment missed its design (lab.verdict.validity); any makes it INCONCLUSIVE.
    inconclusive: list[Inconclusive] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """INCONCLUSIVE when the experiment did not happen as designed (whatever its
        expectations say: they were measured on another experiment), else PASS or FAIL."""
        if self.inconclusive:
            return INCONCLUSIVE
        return PASS if all(e.passed for e in self.expectations) else FAIL

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "passed": self.passed,
            "verdict": self.verdict,
            "inconclusive": [i.to_json() for i in self.inconclusive],
            "description": self.description,
            "backend": self.backend,
            "run_id": self.run_id,
            "config": self.config,
            "fault": self.fault,
            "windows": {k: v.to_json() for k, v in self.windows.items()},
            "timeline": self.timeline,
            "expectations": [e.to_json() for e in self.expectations],
            "evidence": self.evidence,
            "signatures": [s.to_json() for s in self.signatures],
            "timing": self.timing,
            "ledger": self.ledger,
            "load": self.load,
            "calibration": self.calibration,
            "mechanism": self.mechanism,
        }


@dataclass
class Skipped:
    """A scenario this machine cannot run (say which and why; never count it as passed)."""

    scenario: str
    variants: list[str]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class RunError:
    """A run that broke off: its scenario refused the load (`refused`, bad input) or the
    stack, load or fault machinery failed (`error`). No verdict: it is named instead."""

    scenario: str
    variant: str
    run: int
    kind: str  # refused | error
    message: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class RunResults:
    variants: list[VariantResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[RunError] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every variant that ran passed (skipped ones are listed apart); an INCONCLUSIVE
        one did not, nor did a run that broke off: a gate fails on either."""
        return not self.errors and all(v.passed for v in self.variants)

    @property
    def failed(self) -> bool:
        """A variant's expectations did not hold (apart from inconclusive ones)."""
        return any(v.verdict == FAIL for v in self.variants)

    @property
    def inconclusive(self) -> bool:
        return any(v.verdict == INCONCLUSIVE for v in self.variants)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "passed": self.passed,
            "variants": [v.to_json() for v in self.variants],
            "skipped": [s.to_json() for s in self.skipped],
            "errors": [e.to_json() for e in self.errors],
        }
