"""The open model's Locust user: runs inside Locust only (never imported by the lab or the
tests: importing Locust gevent-patches the process).

lab/load/locustfile.py defines it beside its closed-loop `Shopper`; the lab runs it for a
scenario's `rate:`. One user per load-generator process fires that process's share of the
arrivals on the schedule of lab.load.arrivals: at each arrival time it spawns a greenlet
that sends one request, and never waits for an earlier answer. Each arrival is a new
visitor (its own cart session and user id), as real shoppers are. With several workers
(a Locust master and its workers, lab.load.locust_process) the schedule is the same one
— same seed, same arrival times and requests, whatever the number of workers — and worker
i of N fires the arrivals whose index is i modulo N, from one start time the master sends
them all, each under its share of the cap on requests in flight. Every decision — when an
arrival is due, whether the cap admits it, a drop's log line — is made in
lab.load.arrivals (pure, unit-tested); this module only wires them to gevent and Locust.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import gevent
from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from lab.load.arrivals import (
    InFlightCap,
    OpenLoad,
    RequestPicker,
    arrival_offsets,
    drive_each,
    drop_record,
    share,
)

ANCHOR_MESSAGE = "chaoslab_anchor"
#: The master starts its workers' schedules this far ahead, so that each worker has its
#: user running before the first arrival is due.
ANCHOR_AHEAD_S = 1.0
#: A worker that never hears its start time starts on its own after this long.
ANCHOR_WAIT_S = 10.0
_anchor: list[float] = []


#: Told when the load begins (the locustfile writes it where the lab waits for it).
_began: list[Callable[[float], None]] = []


@events.init.add_listener  # type: ignore[untyped-decorator]
def _share_the_start(environment: Environment, **_: Any) -> None:
    """The load's start, chosen once where the request log is written: by one process as
    its test starts, by a master ANCHOR_AHEAD_S ahead and sent to every worker."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(ANCHOR_MESSAGE, lambda environment, msg, **_kw: _anchor.append(
            float(msg.data["at"])))
        return

    def begin(**_kw: Any) -> None:
        at = time.time() + (ANCHOR_AHEAD_S if isinstance(runner, MasterRunner) else 0.0)
        _anchor.append(at)
        if isinstance(runner, MasterRunner):
            runner.send_message(ANCHOR_MESSAGE, {"at": at})
        for tell in _began:
            tell(at)
    environment.events.test_start.add_listener(begin)  # type: ignore[no-untyped-call]


def _role(environment: Environment, spec: Mapping[str, Any]) -> tuple[int, int]:
    """(this process's index, how many processes fire the schedule)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return runner.worker_index, max(1, int(spec.get("workers", 1)))
    return 0, 1


def open_arrivals(
    spec_of: Callable[[Environment], Mapping[str, Any]],
    requests: Mapping[str, Callable[[Any], None]],
    weights_of: Callable[[Mapping[str, Any]], list[tuple[str, int]]],
    write: Callable[[dict[str, Any]], None],
    due_at: Callable[[float], None] = lambda _t: None,
    began: Callable[[float], None] = lambda _t: None,
) -> type:
    """The open model's user class. `spec_of(environment)` gives the load spec (read when
    the user is made: a worker gets it from its master); `requests` maps a request kind
    to a function of a visitor (`client`, `session_id`, `user_id`, `rng`) that sends it;
    `write` logs a record (a dropped arrival); `due_at(t)` tells the request hook when
    the request the calling greenlet sends next was due (its record carries it);
    `began(t)` is told when the load begins (closed loop too: the listener is the
    module's)."""
    _began.append(began)

    class OpenArrivals(FastHttpUser):
        """Arrivals at `rate` per second, whatever the service does, up to the cap."""

        wait_time = constant(0)

        def __init__(self, environment: Environment) -> None:
            spec = spec_of(environment)
            self.load = OpenLoad.from_json(spec["open"])
            self.index, self.count = _role(environment, spec)
            timeout = float(spec.get("client_timeout", 5.0))
            self.network_timeout = self.connection_timeout = timeout
            # The client's connection pool is as large as this process's cap, so a
            # request the cap admitted never queues for a connection inside the client
            # (that would throttle the arrivals again, out of sight).
            self.cap_size = max(1, self.load.max_in_flight // self.count)
            self.concurrency = self.cap_size
            super().__init__(environment)
            self.seed = int(spec.get("seed", 1))
            self.picker = RequestPicker(weights_of(spec), self.seed)
            self.visitors = random.Random(f"chaoslab-visitors:{self.seed}")

        def on_start(self) -> None:
            # Kept on the user, so a task Locust re-runs after an error resumes the same
            # schedule instead of starting a new one.
            self.cap = InFlightCap(self.cap_size)
            self.schedule = self._mine()
            self.schedule_start = self._start_time()

        def _start_time(self) -> float:
            # One process chose it as its test started; a worker waits for its master's.
            deadline = time.time() + ANCHOR_WAIT_S
            while not _anchor and time.time() < deadline:
                gevent.sleep(0.01)
            return _anchor[-1] if _anchor else time.time()

        def _mine(self) -> Iterator[tuple[float, str, int]]:
            """This process's arrivals: (offset, request kind, visitor's user id), each
            drawn for every arrival of the whole schedule, so they are the same whatever
            the number of workers."""
            every = ((offset, self.picker.pick(), self.visitors.randint(1, 1_000_000))
                     for offset in arrival_offsets(self.load.rate, self.load.arrivals,
                                                   self.seed))
            return share(every, self.index, self.count)

        @task
        def arrive(self) -> None:
            start = self.schedule_start
            drive_each(((offset, (start + offset, kind, user))
                        for offset, kind, user in self.schedule),
                       start=start, clock=time.time, sleep=gevent.sleep,
                       arrive=lambda what: self._arrival(*what))

        def _arrival(self, due: float, request: str, user_id: int) -> None:
            if self.cap.admit():
                gevent.spawn(self._send, due, request, user_id)
            else:
                write({**drop_record(time.time(), request), "due": round(due, 6)})

        def _send(self, due: float, request: str, user_id: int) -> None:
            visitor = SimpleNamespace(client=self.client, session_id=uuid.uuid4().hex,
                                      user_id=user_id, rng=self.visitors)
            due_at(due)
            try:
                requests[request](visitor)
            finally:
                self.cap.release()

    return OpenArrivals
