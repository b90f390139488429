"""The per-request log the Locust subprocess writes, one JSON object per line.

Locust has no per-status counts over time, so every request is logged by our own
`events.request` hook; the lab builds windows and the per-second timeline from this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LoadError
from lab.load.classify import response_class


@dataclass(frozen=True)
class RequestRecord:
    start: float  # epoch seconds when the request was sent
    latency_ms: float
    status: int | None  # None when there was no response
    outcome: str  # response | timeout | error | dropped (the open model's cap was full)
    retry_after: bool
    body_kind: str  # ok | lying_200 | fallback | problem | plain | none
    request: str  # endpoint kind, e.g. "checkout"
    instance: str | None  # which service instance answered (X-Instance header)
    reason: str | None = None  # a problem+json body's `reason` (e.g. breaker_open, router)
    error: str | None = None  # why no usable answer: ConnectionResetError, BodyUnreadable…
    #: The open model: when its schedule said this arrival was due (epoch s); the
    #: generator's lag is `start - due`. None for closed loop.
    due: float | None = None

    @property
    def dropped(self) -> bool:
        """An arrival the open model's load generator did not send (its cap on requests in
        flight was full): the generator's, not an answer of the service."""
        return self.outcome == "dropped"

    @property
    def cls(self) -> str:
        return response_class(self.status, self.outcome, self.body_kind)

    @property
    def status_key(self) -> str:
        """Status code as a string, or 'timeout'/'error' when there was no response
        ('dropped' for an arrival that was never sent)."""
        if self.outcome in ("timeout", "dropped"):
            return self.outcome
        if self.status is None or self.outcome != "response":
            return "error"
        return str(self.status)

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> RequestRecord:
        status = doc.get("status")
        instance = doc.get("instance")
        return cls(
            start=float(doc["t"]),  # type: ignore[arg-type]
            latency_ms=float(doc["ms"]),  # type: ignore[arg-type]
            status=int(status) if isinstance(status, int) and status > 0 else None,
            outcome=str(doc.get("outcome", "response")),
            retry_after=bool(doc.get("retry_after", False)),
            body_kind=str(doc.get("kind", "none")),
            request=str(doc.get("request", "")),
            instance=str(instance) if instance else None,
            reason=str(doc["reason"]) if doc.get("reason") else None,
            error=str(doc["error"]) if doc.get("error") else None,
            due=float(doc["due"]) if isinstance(doc.get("due"), int | float) else None,  # type: ignore[arg-type]
        )


class RequestLogReader:
    """Reads a growing log incrementally (for live progress) or all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[RequestRecord]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next read
        records = []
        for line in lines:
            if line.strip():
                try:
                    records.append(RequestRecord.from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line from a killed writer carries no usable figure
        return records


def read_request_log(path: Path) -> list[RequestRecord]:
    return RequestLogReader(path).read_new()


def answers(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """The requests that were sent (every record but the open model's drops): what status
    totals, shares, latencies and verdicts are computed over."""
    return [r for r in records if not r.dropped]


def in_flight_path(request_log: Path) -> Path:
    """Where the locustfile says how old its oldest request in flight is."""
    return request_log.with_name(request_log.name + ".inflight")


def start_path(request_log: Path) -> Path:
    """Where the locustfile (one process, or the master) writes when the load begins: the
    epoch second its first user runs, or the start its master gave every worker."""
    return request_log.with_name(request_log.name + ".start")


def load_began_at(request_log: Path) -> float | None:
    """When the load began, once the generator has said so (None before)."""
    try:
        doc = json.loads(start_path(request_log).read_text())
    except (OSError, ValueError):
        return None
    at = doc.get("at") if isinstance(doc, dict) else None
    return float(at) if isinstance(at, int | float) else None


def wait_for_load_start(request_log: Path, check_alive: Callable[[], None],
                        within_s: float, stop: Callable[[], None]) -> float:
    """Block until the generator says its load began (Locust imports, a master waits for
    its workers: 0.9 s for one process, 3.2 s for a master and two workers on 2 cores),
    then until that moment itself; return it. The load's windows are measured from it,
    so a slow start never shortens the window before the fault. `check_alive` raises if
    the generator died; a LoadError after `within_s`; either way (or on Ctrl-C) the
    generator is stopped first with `stop`."""
    deadline = time.time() + within_s
    try:
        while (at := load_began_at(request_log)) is None:
            check_alive()
            if time.time() > deadline:
                raise LoadError(
                    f"the load generator did not begin its load within {within_s:g}s")
            time.sleep(0.05)
    except BaseException:
        stop()
        raise
    time.sleep(max(0.0, at - time.time()))
    return at


def ended_before(request_log: Path, t: float) -> bool:
    """Has every request sent before wall-clock time `t` ended (answered, given up on, or
    dropped)? True once the generator reported, at or after `t`, that nothing it still
    has in flight was sent before `t`. False while it has not reported since `t`."""
    try:
        doc = json.loads(in_flight_path(request_log).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or float(doc.get("t") or 0) < t:
        return False
    oldest = doc.get("oldest")
    return oldest is None or float(oldest) >= t
