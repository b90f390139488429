"""The simulated users, run by Locust in its own process (never imported by the lab).

Locust monkey-patches the process with gevent at import, so the lab starts it as a
subprocess and talks to it through its command line and two environment variables:

  CHAOSLAB_LOAD_SPEC    JSON: endpoints with weights and success contracts, client
                        timeout, think time, carts, the open model's schedule, workers
                        (a worker started elsewhere gets it from its master instead:
                        the master's `--chaoslab-spec`, which Locust forwards)
  CHAOSLAB_REQUEST_LOG  path of the per-request log (JSON lines, see lab.load.request_log)

The lab names the user class to run: `Shopper` (closed loop) or `OpenArrivals` (the open
model, lab/load/open_model.py). Both are always defined, so a Locust master and its
workers — several processes, or several machines — know the same classes.

Every request is logged by an `events.request` hook with its start time, status (or
timeout/error), latency, whether Retry-After was present and the body's classification
against its endpoint's contract (lab.load.contracts). A request still in flight when the
load stops is logged too, as `unfinished`, and a few times a second the time the oldest
request in flight was sent is written next to the log (`<log>.inflight`), so the lab
stops the load only once every request of its judged windows has ended. Where the
records go is lab.load.sinks': a file (one process, or a master), or the master (a
worker, which ships them in batches).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gevent
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from lab.load.arrivals import RequestPicker
from lab.load.classify import (
    UNFINISHED,
    answer_outcome,
    error_name,
    is_timeout,
    problem_reason,
)
from lab.load.contracts import SAMPLE_CONTRACTS, SuccessContract
from lab.load.own_requests import fill
from lab.load.sinks import FileSink, Sink, sink_for

_SPEC_ENV = os.environ.get("CHAOSLAB_LOAD_SPEC", "") or ""
_spec: dict[str, Any] = json.loads(_SPEC_ENV) if _SPEC_ENV else {}
#: Requests sent and not yet logged, by the greenlet sending each: (sent at, kind).
_IN_FLIGHT: dict[Any, tuple[float, str]] = {}
#: The open model's arrivals: when the schedule said each should be sent, by greenlet.
_DUE: dict[Any, float] = {}
_sink: Sink | None = None


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _arguments(parser: Any, **_: Any) -> None:
    parser.add_argument("--chaoslab-spec", type=str, default="", include_in_web_ui=False,
                        help="the lab's load spec, as JSON (forwarded to workers)")


def load_spec(environment: Environment | None = None) -> dict[str, Any]:
    """The load spec: this process's environment, else what the master forwarded."""
    global _spec
    if not _spec and environment is not None and environment.parsed_options is not None:
        text = getattr(environment.parsed_options, "chaoslab_spec", "") or ""
        if text:
            _spec = json.loads(text)
    return _spec


def contracts() -> dict[str, SuccessContract]:
    return {str(e["request"]): SuccessContract.from_json(e["contract"])
            for e in _spec.get("endpoints", []) if e.get("contract") is not None
            } or dict(SAMPLE_CONTRACTS)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _init(environment: Environment, **_: Any) -> None:
    global _sink
    _sink = sink_for(environment, os.environ.get("CHAOSLAB_REQUEST_LOG", os.devnull),
                     in_flight=lambda: min((sent for sent, _ in list(_IN_FLIGHT.values())),
                                           default=None))


def _write(record: dict[str, Any]) -> None:
    if _sink is not None:
        _sink.write(record)


def unfinished_record(sent: float, kind: str, now: float) -> dict[str, Any]:
    return {"t": round(sent, 6), "ms": round((now - sent) * 1000, 3), "status": None,
            "outcome": UNFINISHED, "retry_after": False, "kind": "none", "request": kind,
            "instance": None, "error": "LoadStopped"}


@contextlib.contextmanager
def sending(kind: str) -> Iterator[None]:
    """Around one request: known to be in flight until the request hook logs it; one
    whose greenlet is killed first (the load stopping) is logged as unfinished."""
    me = gevent.getcurrent()
    _IN_FLIGHT[me] = (time.time(), kind)
    try:
        yield
    finally:
        entry = _IN_FLIGHT.pop(me, None)
        if entry is not None and _sink is not None and not _sink.stopped:
            _write(unfinished_record(*entry, time.time()))


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _log_unfinished(**_: Any) -> None:
    """The load stopped: what is still in flight is logged as unfinished, once."""
    if _sink is None or _sink.stopped:
        return
    now = time.time()
    for sent, kind in list(_IN_FLIGHT.values()):
        _write(unfinished_record(sent, kind, now))
    _IN_FLIGHT.clear()
    _sink.stop()


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _quitting(**kw: Any) -> None:
    _log_unfinished(**kw)


@events.request.add_listener  # type: ignore[untyped-decorator]
def _log_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    context: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    if _sink is None or _sink.stopped:  # logged as unfinished when the load stopped
        return
    me = gevent.getcurrent()
    _IN_FLIGHT.pop(me, None)
    due = _DUE.pop(me, None)
    status = int(getattr(response, "status_code", 0) or 0)
    transport_error = getattr(response, "error", None) if status == 0 else None
    reason = None
    body_error: str | None = None
    if status == 0:
        outcome = "timeout" if is_timeout(transport_error or exception) else "error"
        kind = "none"
        retry_after = False
        instance = None
    else:
        headers = response.headers or {}
        retry_after = headers.get("Retry-After") is not None
        instance = headers.get("X-Instance")
        body: bytes | None
        try:
            body = response.content or b""
        except Exception:  # the body itself timed out or was cut: see answer_outcome
            body = None
        # With a status, `exception` is what reading the body raised (cut, reset, stalled)
        # — or Locust's own word that the status was not a 2xx/3xx, which the status says.
        read_error = None if type(exception).__name__ == "LocustBadStatusCode" else exception
        outcome, kind, body_error = answer_outcome(
            status, headers.get("Content-Type", "") or "", body,
            contracts().get(name), read_error)
        if kind == "problem" and body is not None:
            reason = problem_reason(body)
    record = {
        "t": round(start_time if start_time is not None else time.time(), 6),
        "ms": round(response_time, 3),
        "status": status or None,
        "outcome": outcome,
        "retry_after": retry_after,
        "kind": kind,
        "request": name,
        "instance": instance,
    }
    if reason:
        record["reason"] = reason
    if due is not None:
        record["due"] = round(due, 6)
    if outcome != "response":
        record["error"] = body_error or error_name(transport_error or exception)
    _write(record)


def due_at(t: float) -> None:
    """The open model: the request this greenlet sends next was due at `t`."""
    _DUE[gevent.getcurrent()] = t


# ---------------------------------------------------------------- what users send


def checkout(visitor: Any) -> None:
    """A completed checkout of a random cart, by a visitor with a cart session."""
    carts = int(_spec.get("carts", 30000))
    payload = {"cart_id": visitor.rng.randint(1, carts), "user_id": visitor.user_id,
               "payment_token": "tok_visa"}
    headers = {"X-Session-Id": visitor.session_id, "X-User-Id": str(visitor.user_id),
               "Idempotency-Key": uuid.uuid4().hex}
    with sending("checkout"):
        visitor.client.post("/api/checkout/complete", json=payload, headers=headers,
                            name="checkout")


def health(visitor: Any) -> None:
    with sending("health"):
        visitor.client.get("/health", name="health")


def catalog(visitor: Any) -> None:
    """The price list every product page shows: a hot, cached key."""
    with sending("catalog"):
        visitor.client.get("/api/catalog/prices", name="catalog")


def custom_request(name: str, definition: Mapping[str, Any]) -> Callable[[Any], None]:
    """The sender of a request the scenario defines (method, path, JSON body, headers)."""
    method, path = str(definition["method"]), str(definition["path"])
    body, headers = definition.get("json"), dict(definition.get("headers") or {})

    def send(visitor: Any) -> None:
        kwargs: dict[str, Any] = {"headers": fill(headers, visitor.rng), "name": name}
        if body is not None:
            kwargs["json"] = fill(body, visitor.rng)
        with sending(name):
            visitor.client.request(method, path, **kwargs)

    return send


class _Requests(dict[str, Callable[[Any], None]]):
    """The sample shop's requests by kind, and the scenario's own, made on first use."""

    def __missing__(self, kind: str) -> Callable[[Any], None]:
        for e in _spec.get("endpoints", []):
            if e.get("request") == kind and e.get("custom") is not None:
                self[kind] = custom_request(kind, e["custom"])
                return self[kind]
        raise KeyError(kind)


REQUESTS = _Requests(checkout=checkout, health=health, catalog=catalog)


def weights(spec: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [(str(e["request"]), int(e.get("weight", 1)))
            for e in spec.get("endpoints", [])] or [("checkout", 1)]


class Shopper(FastHttpUser):
    """Closed loop: a shopper with a cart session who sends the scenario's requests by
    their weights, as fast as the service answers unless think time is set."""

    def __init__(self, environment: Environment) -> None:
        spec = load_spec(environment)
        self.network_timeout = self.connection_timeout = float(spec.get("client_timeout", 5.0))
        super().__init__(environment)
        self.think_s = float(spec.get("wait", 0.0))
        self.rng = random.Random(f"{spec.get('seed', 1)}:{uuid.uuid4().hex}")
        self.picker = RequestPicker(weights(spec), int(spec.get("seed", 1)))

    def wait_time(self) -> float:
        # Think time jittered ±50 % so users do not march in lockstep.
        return self.rng.uniform(self.think_s * 0.5, self.think_s * 1.5) if self.think_s else 0.0

    def on_start(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.user_id = self.rng.randint(1, 1_000_000)

    @task
    def shop(self) -> None:
        REQUESTS[self.picker.pick()](self)


# The open model (a scenario's `rate:`): arrivals on a schedule, whatever the service
# does. Defined here so that Locust sees it in this file; its decisions are
# lab.load.arrivals', its wiring lab.load.open_model's.
from lab.load.open_model import open_arrivals  # noqa: E402


def _began(at: float) -> None:
    if isinstance(_sink, FileSink):
        _sink.mark_start(at)


OpenArrivals = open_arrivals(load_spec, REQUESTS, weights, _write, due_at, _began)
