"""The open model's Locust user: runs inside Locust only (never imported by the lab or the
tests: importing Locust gevent-patches the process).

lab/load/locustfile.py builds it, instead of running its closed-loop `Shopper`, when the
load spec carries "open" (a scenario's `rate:`). One Locust user fires every arrival on
the schedule of lab.load.arrivals: at each arrival time it spawns a greenlet that sends
one request, and never waits for an earlier answer. Each arrival is a new visitor (its
own cart session and user id), as real shoppers are; the request itself is built by the
same functions the closed-loop shopper uses, and logged by the same `events.request`
hook. Every decision — when an arrival is due, whether the cap admits it, a drop's log
line — is made in lab.load.arrivals (pure, unit-tested); this module only wires them to
gevent and Locust.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, TextIO

import gevent
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from lab.load.arrivals import (
    InFlightCap,
    OpenLoad,
    RequestPicker,
    arrival_offsets,
    drive,
    drop_record,
)


def open_model_user(
    spec: Mapping[str, Any], requests: Mapping[str, Callable[[Any], None]], log: TextIO
) -> type:
    """The open model's user class, configured from the load spec. `requests` maps a
    request kind to a function of a visitor (`client`, `session_id`, `user_id`) that sends
    it; `log` is the request log, where dropped arrivals are written."""
    load = OpenLoad.from_json(spec["open"])
    seed = int(spec.get("seed", 1))
    timeout = float(spec.get("client_timeout", 5.0))
    weights = [(str(e["request"]), int(e.get("weight", 1))) for e in spec.get("endpoints", [])]
    picker = RequestPicker(weights or [("checkout", 1)], seed)
    visitors = random.Random(f"chaoslab-visitors:{seed}")

    class OpenArrivals(FastHttpUser):
        """Arrivals at `rate` per second, whatever the service does, up to the cap."""

        # The client's connection pool is as large as the cap, so a request the cap
        # admitted never queues for a connection inside the client (that would throttle
        # the arrivals again, out of sight).
        concurrency = load.max_in_flight
        network_timeout = timeout
        connection_timeout = timeout
        wait_time = constant(0)

        def on_start(self) -> None:
            # Kept on the user, so a task Locust re-runs after an error resumes the same
            # schedule instead of starting a new one.
            self.cap = InFlightCap(load.max_in_flight)
            self.schedule = arrival_offsets(load.rate, load.arrivals, seed)
            self.schedule_start = time.time()

        @task
        def arrive(self) -> None:
            drive(self.schedule, start=self.schedule_start, clock=time.time,
                  sleep=gevent.sleep, arrive=self._arrival)

        def _arrival(self, _due: float) -> None:
            request = picker.pick()
            if self.cap.admit():
                gevent.spawn(self._send, request)
            else:
                log.write(json.dumps(drop_record(time.time(), request)) + "\n")

        def _send(self, request: str) -> None:
            visitor = SimpleNamespace(client=self.client, session_id=uuid.uuid4().hex,
                                      user_id=visitors.randint(1, 1_000_000))
            try:
                requests[request](visitor)
            finally:
                self.cap.release()

    return OpenArrivals
