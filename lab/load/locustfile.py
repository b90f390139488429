"""The simulated users, run by Locust in its own process (never imported by the lab).

Locust monkey-patches the process with gevent at import, so the lab starts it as a
subprocess and talks to it through two environment variables:

  CHAOSLAB_LOAD_SPEC    JSON: endpoints with weights, client timeout, think time, carts
  CHAOSLAB_REQUEST_LOG  path of the per-request log (JSON lines, see lab.load.request_log)

Every request is logged by an `events.request` hook with its start time, status (or
timeout/error), latency, whether Retry-After was present and the body's classification.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from typing import Any

from locust import between, constant, events
from locust.contrib.fasthttp import FastHttpUser

from lab.load.classify import answer_outcome, error_name, is_timeout, problem_reason

SPEC: dict[str, Any] = json.loads(os.environ.get("CHAOSLAB_LOAD_SPEC", "{}") or "{}")
_LOG_PATH = os.environ.get("CHAOSLAB_REQUEST_LOG", os.devnull)
_LOG = open(_LOG_PATH, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 — lives as long as Locust
_rng = random.Random(SPEC.get("seed", 1))


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
        outcome, kind, body_error = answer_outcome(
            status, headers.get("Content-Type", "") or "", body)
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
    if outcome != "response":
        record["error"] = body_error or error_name(transport_error or exception)
    _LOG.write(json.dumps(record) + "\n")


class Shopper(FastHttpUser):
    """A shopper with a cart session who completes checkouts (and whatever else the
    scenario's endpoints list), as fast as the service answers unless think time is set."""

    network_timeout = float(SPEC.get("client_timeout", 5.0))
    connection_timeout = float(SPEC.get("client_timeout", 5.0))
    # Think time jittered ±50 % so users do not march in lockstep.
    _wait = float(SPEC.get("wait", 0.0))
    wait_time = between(_wait * 0.5, _wait * 1.5) if _wait > 0 else constant(0)

    def on_start(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.user_id = _rng.randint(1, 1_000_000)

    def checkout(self) -> None:
        carts = int(SPEC.get("carts", 30000))
        payload = {
            "cart_id": _rng.randint(1, carts),
            "user_id": self.user_id,
            "payment_token": "tok_visa",
        }
        headers = {
            "X-Session-Id": self.session_id,
            "X-User-Id": str(self.user_id),
            "Idempotency-Key": uuid.uuid4().hex,
        }
        self.client.post("/api/checkout/complete", json=payload, headers=headers, name="checkout")

    def health(self) -> None:
        self.client.get("/health", name="health")

    def catalog(self) -> None:
        """The price list every product page shows: a hot, cached key."""
        self.client.get("/api/catalog/prices", name="catalog")


_KINDS = {"checkout": Shopper.checkout, "health": Shopper.health, "catalog": Shopper.catalog}
Shopper.tasks = {  # type: ignore[assignment]
    _KINDS[e["request"]]: int(e.get("weight", 1)) for e in SPEC.get("endpoints", [])
} or {Shopper.checkout: 1}

# The open model (a scenario's `rate:`): one user fires every arrival on a schedule
# (lab/load/open_model.py), and the closed-loop Shopper above is not run. Closed-loop
# runs never import it.
if "open" in SPEC:
    from lab.load.open_model import open_model_user

    Shopper.abstract = True
    OpenArrivals = open_model_user(SPEC, _KINDS, _LOG)
