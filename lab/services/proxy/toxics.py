"""Toxic definitions and the seeded choices of which connections and requests they hit.

Pure (no I/O) so the choices can be unit-tested with exact counts. A choice depends only
on (seed, toxic name, connection or request number), never on the order in which
concurrent connections happen to ask, so the same seed gives the same decisions.

Semantics follow Toxiproxy where it has the toxic:
  latency     delay data by `latency` ms ± `jitter` ms
  timeout     let no data through; close the connection after `timeout` ms (0 = hold it
              until the toxic is removed)
  reset_peer  reset the connection (TCP RST) after `timeout` ms (0 = at the first data)
  down        the proxy refuses connections (Toxiproxy: the proxy disabled)
  bandwidth   at most `rate` KB/s
`stream` picks the direction (downstream: gateway → checkout, the default, as in
Toxiproxy; upstream: checkout → gateway) and `toxicity` the share of *connections* hit.

Two things Toxiproxy cannot do. `http_error` answers a share (`toxicity`) of *requests*
with `status`, without forwarding them, as a failing load balancer in front of a gateway
would. And `scope: request` makes any toxic pick a share of *requests* instead of
connections: a client that keeps connections alive otherwise selects itself a pool of
unaffected connections (a reset one is replaced, a slow one is busy when the next request
looks for an idle one), so a per-connection fault of 50 % hits a few requests only —
while a sick node behind a gateway's load balancer hits a share of requests.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ToxicType = Literal["latency", "timeout", "reset_peer", "down", "bandwidth", "http_error"]
TOXIC_TYPES: tuple[str, ...] = ("latency", "timeout", "reset_peer", "down", "bandwidth",
                                "http_error")
_ATTRIBUTES: dict[str, set[str]] = {
    "latency": {"latency", "jitter"},
    "timeout": {"timeout"},
    "reset_peer": {"timeout"},
    "down": set(),
    "bandwidth": {"rate"},
    "http_error": {"status"},
}


class Toxic(BaseModel):
    """One toxic, as the admin API and scenario files write it (flat, or Toxiproxy's
    `attributes` object)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ToxicType
    name: str = Field("", max_length=64)
    stream: Literal["downstream", "upstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0.0, le=1.0)
    latency: int = Field(0, ge=0, le=600_000, description="ms")
    jitter: int = Field(0, ge=0, le=600_000, description="ms")
    timeout: int = Field(0, ge=0, le=600_000, description="ms")
    rate: int = Field(0, ge=0, description="KB/s")
    status: Literal[500, 502, 503, 504] = 503
    scope: Literal["connection", "request"] = "connection"

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("attributes"), dict):
            data = {**{k: v for k, v in data.items() if k != "attributes"},
                    **data["attributes"]}
        return data

    @model_validator(mode="after")
    def _coherent(self) -> Toxic:
        given: set[str] = {k for k in ("latency", "jitter", "timeout", "rate", "status")
                           if k in self.model_fields_set}
        extra = given - _ATTRIBUTES[self.type]
        if extra:
            takes = ", ".join(sorted(_ATTRIBUTES[self.type])) or "nothing"
            raise ValueError(f"a {self.type} toxic takes no {', '.join(sorted(extra))} "
                             f"(it takes: {takes})")
        if self.type == "bandwidth" and self.rate <= 0:
            raise ValueError("a bandwidth toxic needs rate > 0 (KB/s)")
        if self.type == "down" and self.toxicity != 1.0:
            raise ValueError("a down toxic takes the whole proxy down: toxicity must be 1")
        return self

    @property
    def key(self) -> str:
        """The name the toxic is known by (defaults to its type, like Toxiproxy's
        `<type>_<stream>` but shorter)."""
        return self.name or self.type

    def describe(self) -> str:
        attrs = {a: getattr(self, a) for a in sorted(_ATTRIBUTES[self.type])}
        shown = " ".join(f"{k}={v}" for k, v in attrs.items())
        return " ".join(p for p in (f"{self.key}: {self.type}", shown,
                                    f"toxicity={self.toxicity:g}", self.stream, self.scope) if p)


class FaultChooser:
    """Seeded, order-independent choices: does a toxic hit this connection (request), and
    how much jitter does a delay get."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _draw(self, toxic: str, what: str, number: int) -> float:
        # random.Random seeded with a str hashes it with SHA-512: stable across processes
        # and unaffected by PYTHONHASHSEED.
        return random.Random(f"{self.seed}/{toxic}/{what}/{number}").random()

    def hits_connection(self, toxic: Toxic, connection: int) -> bool:
        if toxic.toxicity >= 1.0:
            return True
        return self._draw(toxic.key, "connection", connection) < toxic.toxicity

    def hits_request(self, toxic: Toxic, request: int) -> bool:
        if toxic.toxicity >= 1.0:
            return True
        return self._draw(toxic.key, "request", request) < toxic.toxicity

    def delay_ms(self, toxic: Toxic, connection: int, chunk: int) -> float:
        """`latency` ± `jitter` (uniform), never negative."""
        if toxic.jitter == 0:
            return float(toxic.latency)
        u = self._draw(toxic.key, f"jitter/{connection}", chunk)
        return max(0.0, toxic.latency + (2 * u - 1) * toxic.jitter)


def applies(
    toxic: Toxic, *, stream: str, chooser: FaultChooser, connection: int, request: int = 0
) -> bool:
    """Does a TCP-level toxic act on this connection's `stream` direction, for the request
    in flight on it (`request` 0: not an HTTP exchange, so the connection decides)?"""
    if toxic.type in ("http_error", "down") or toxic.stream != stream:
        return False
    if toxic.scope == "request" and request > 0:
        return chooser.hits_request(toxic, request)
    return chooser.hits_connection(toxic, connection)
