"""Where the load generator's per-request records go: runs inside Locust only.

One Locust process (or a master) writes the request log itself, and next to it
`<log>.inflight`: when the oldest request still in flight was sent, a few times a second,
so the lab stops the load only once every request of its judged windows has ended
(lab.load.request_log.ended_before). A worker — another process, or another machine — has
no file the lab reads: it ships its records to its master in batches over Locust's own
message channel, each batch with the worker's oldest request in flight, and the master
writes them into its log and the oldest of all its workers into `<log>.inflight`. So the
lab reads one log whatever the number of workers, and every record is the one the worker
wrote (Locust's own stats reach the master rounded; the verdicts never use them).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import IO, Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

RECORDS_MESSAGE = "chaoslab_records"
#: How often the in-flight report is written, and a worker ships its batch.
EVERY_S = 0.2

InFlight = Callable[[], float | None]


class Sink:
    """Takes the records this process writes; `stop()` once the load stopped."""

    stopped = False

    def write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopped = True


class FileSink(Sink):
    """The request log and its in-flight report (one process, or a master)."""

    def __init__(self, path: str, in_flight: InFlight) -> None:
        self.path = path
        self.in_flight = in_flight
        self.log: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        #: A master's workers: their last report, (reported at, oldest in flight).
        self.workers: dict[str, tuple[float, float | None]] = {}
        self.master = False
        self._reporter: Any = None

    def write(self, record: dict[str, Any]) -> None:
        self.log.write(json.dumps(record) + "\n")

    def from_worker(self, environment: Environment, msg: Any, **_: Any) -> None:
        """A worker's batch: its records, written as they came, and its oldest in flight."""
        data = msg.data or {}
        for line in data.get("lines", []):
            self.log.write(line + "\n")
        self.workers[str(msg.node_id)] = (float(data.get("t") or 0.0), data.get("oldest"))

    def start_reporting(self) -> None:
        if self._reporter is None and os.devnull != self.path:
            self._reporter = gevent.spawn(self._report)

    def mark_start(self, at: float) -> None:
        """Say when the load begins (lab.load.request_log.wait_for_load_start reads it)."""
        if os.devnull == self.path:
            return
        target, tmp = self.path + ".start", self.path + ".start.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"at": at}, fh)
        os.replace(tmp, target)

    def _report(self) -> None:
        target, tmp = self.path + ".inflight", self.path + ".inflight.tmp"
        while True:
            if self.master:
                if not self.workers:
                    gevent.sleep(EVERY_S)
                    continue
                reports = list(self.workers.values())
                now = min(t for t, _ in reports)
                oldest = min((o for _, o in reports if o is not None), default=None)
            else:
                now, oldest = time.time(), self.in_flight()
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"t": now, "oldest": oldest}, fh)
            os.replace(tmp, target)
            gevent.sleep(EVERY_S)

    def stop(self) -> None:
        super().stop()
        self.log.flush()


class ShippingSink(Sink):
    """A worker's records, shipped to its master every EVERY_S with its oldest in flight."""

    def __init__(self, runner: WorkerRunner, in_flight: InFlight) -> None:
        self.runner = runner
        self.in_flight = in_flight
        self.lines: list[str] = []
        self._shipper: Any = None

    def write(self, record: dict[str, Any]) -> None:
        self.lines.append(json.dumps(record))

    def start_reporting(self) -> None:
        if self._shipper is None:
            self._shipper = gevent.spawn(self._ship_forever)

    def _ship_forever(self) -> None:
        while not self.stopped:
            self.ship()
            gevent.sleep(EVERY_S)

    def ship(self) -> None:
        lines, self.lines = self.lines, []
        self.runner.send_message(RECORDS_MESSAGE, {"lines": lines, "t": time.time(),
                                                   "oldest": self.in_flight()})

    def stop(self) -> None:
        if not self.stopped:
            self.ship()  # the last batch: what was answered or left unfinished
        super().stop()


def sink_for(environment: Environment, path: str, in_flight: InFlight) -> Sink:
    """The sink of this Locust process, by its role; reporting starts with the load."""
    runner = environment.runner
    sink: FileSink | ShippingSink
    if isinstance(runner, WorkerRunner):
        sink = ShippingSink(runner, in_flight)
    else:
        sink = FileSink(path, in_flight)
        if isinstance(runner, MasterRunner):
            sink.master = True
            runner.register_message(RECORDS_MESSAGE, sink.from_worker)
    environment.events.test_start.add_listener(  # type: ignore[no-untyped-call]
        lambda **_: sink.start_reporting())
    return sink
