"""What users saw, second by second, while a live stack runs (`lab up`, `lab drill`).

A batch run re-reads its whole request log at the end; a live stack runs for hours, so
its records are folded into per-second counts as they arrive and only the counts are
kept (a few hundred bytes a second). Latencies are kept only until their second closes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.load.request_log import RequestRecord
from lab.scenario.expectations import percentile
from lab.scenario.honest import BAD_CLASSES as BAD_CLASSES
from lab.scenario.honest import BARE_503 as BARE_503
from lab.scenario.honest import DROPPED, shown_class

#: Records whose second is this old (relative to the newest record) are closed: a request
#: is logged when it ends, so a slow answer (up to the client timeout) lands late.
CLOSE_AFTER_S = 6


def live_class(record: RequestRecord) -> str:
    """The class a record is counted in (lab.scenario.honest.shown_class): the response class, a
    503 that lacks Retry-After told apart, `dropped` for an arrival never sent. Whether it
    is honest is lab.scenario.honest's one rule: BAD_CLASSES are the ones that are not."""
    return shown_class(record)


@dataclass
class _Open:
    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


@dataclass
class LiveSeries:
    """Per-second status mix and p50/p99 by the second each request was *sent*."""

    #: Closed seconds, oldest first: {"t", "counts", "n", "p50_ms", "p99_ms"}.
    seconds: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    dropped: int = 0
    _open: dict[int, _Open] = field(default_factory=dict)
    _closed_until: int | None = None  # every second < this is closed

    def add(self, records: Iterable[RequestRecord], now: float) -> None:
        """Fold fresh records in; close the seconds no answer can still arrive for."""
        for record in records:
            if record.dropped:
                self.dropped += 1
            second = int(record.start)
            if self._closed_until is not None and second < self._closed_until:
                # Later than CLOSE_AFTER_S (a client timeout longer than that): count it in
                # its closed second rather than lose it.
                self._late(second, live_class(record))
                continue
            bucket = self._open.setdefault(second, _Open())
            bucket.counts[live_class(record)] += 1
            if record.status is not None and live_class(record) != DROPPED:
                bucket.latencies.append(record.latency_ms)
            self.total += 1
        self._close(int(now) - CLOSE_AFTER_S)

    def _late(self, second: int, cls: str) -> None:
        self.total += 1
        for entry in reversed(self.seconds):
            if entry["t"] == second:
                entry["counts"][cls] = entry["counts"].get(cls, 0) + 1
                entry["n"] += 1
                return
            if entry["t"] < second:
                break

    def _close(self, until: int) -> None:
        start = self._closed_until
        if start is None:
            if not self._open:
                return
            start = min(self._open)
        for second in range(start, until):
            bucket = self._open.pop(second, _Open())
            self.seconds.append(_entry(second, bucket))
        self._closed_until = max(start, until)

    def flush(self, now: float) -> None:
        """Close every second up to `now` (the end of a drill): what came is what counts."""
        self._close(int(now) + 1)

    def last(self, n: int) -> list[dict[str, Any]]:
        return self.seconds[-n:] if n > 0 else []

    def between(self, start: float, stop: float) -> list[dict[str, Any]]:
        """Closed seconds whose start lies in [start, stop)."""
        return [s for s in self.seconds if start <= s["t"] < stop]

    def current(self) -> list[dict[str, Any]]:
        """The seconds still open (answers may still arrive), oldest first: what the last
        few seconds look like so far."""
        return [_entry(t, self._open[t]) for t in sorted(self._open)]


def _entry(second: int, bucket: _Open) -> dict[str, Any]:
    return {
        "t": second,
        "counts": dict(sorted(bucket.counts.items())),
        "n": sum(bucket.counts.values()),
        "p50_ms": _round(percentile(bucket.latencies, 50)),
        "p99_ms": _round(percentile(bucket.latencies, 99)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def bad_count(seconds: Sequence[dict[str, Any]]) -> int:
    return sum(n for s in seconds for cls, n in s["counts"].items() if cls in BAD_CLASSES)
