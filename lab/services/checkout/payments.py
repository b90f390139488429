"""The checkout's client for the payment gateway, with every resilience switch.

Baseline (the incident's client): no timeout, one attempt, no idempotency key, no
breaker; and the API key is read from the environment where it is used, so a deploy
without `PAYMENT_API_KEY` starts fine and fails at the first checkout (KeyError).
Switches (see config.py): a per-attempt timeout, retries with full-jitter exponential
backoff (tenacity), an `Idempotency-Key` so a retried charge is not charged twice, and a
circuit breaker around each attempt.

Gateway failures become `DependencyUnavailable("payments", reason)`; whether that is a
500 or an honest 503 is the HTTP layer's choice (`PAYMENT_ERRORS_AS_503`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from .breaker import BreakerOpen, CircuitBreaker, State
from .config import CheckoutConfig
from .problems import DependencyUnavailable

PAYMENTS = "payments"
# Problem `reason`s of a breaker's refusal: on arrival, before any work (the fail-fast
# path), or at the payment step of a request admitted before the breaker opened.
BREAKER_OPEN = "breaker_open"
BREAKER_OPEN_AFTER_WAIT = "breaker_open_after_wait"
CHARGES_PATH = "/v1/charges"
# Upper bound of one backoff sleep, whatever the attempt number.
MAX_BACKOFF_S = 1.0


class PaymentsUnavailable(DependencyUnavailable):
    """The gateway failed or could not be reached; `retry_after_s` suggests when to retry."""

    def __init__(self, reason: str, detail: str = "", retry_after_s: int | None = None) -> None:
        super().__init__(PAYMENTS, reason, detail)
        self.retry_after_s = retry_after_s


def _api_key() -> str:
    # The incident's code: the key is looked up where it is used, not validated at start.
    return os.environ["PAYMENT_API_KEY"]


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, PaymentsUnavailable) and not exc.reason.startswith(BREAKER_OPEN)


class PaymentMetrics:
    """Attempts by outcome, and the breaker's state for Prometheus."""

    def __init__(self, registry: CollectorRegistry, breaker: CircuitBreaker | None) -> None:
        self.attempts = Counter(
            "checkout_payment_attempts_total",
            "Calls to the payment gateway, by outcome (ok, timeout, http_503, ...).",
            ["outcome"], registry=registry,
        )
        if breaker is not None:
            registry.register(_BreakerCollector(breaker))


class _BreakerCollector(Collector):
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        b = self.breaker
        state = b.state
        labels = ["dependency"]
        for name, doc, value in (
            ("checkout_breaker_open", "1 while the breaker is open.", state is State.OPEN),
            ("checkout_breaker_half_open", "1 while half-open.", state is State.HALF_OPEN),
            ("checkout_breaker_opened", "Times the breaker opened.", b.opened),
            ("checkout_breaker_half_opened", "Times it went half-open.", b.half_opened),
            ("checkout_breaker_closed", "Times a trial call closed it again.", b.closed),
            ("checkout_breaker_rejected", "Calls refused while open.", b.rejected),
        ):
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric([b.name], float(value))
            yield family


class PaymentClient:
    def __init__(self, config: CheckoutConfig, http: aiohttp.ClientSession,
                 registry: CollectorRegistry) -> None:
        assert config.payments.url is not None
        self.settings = config.payments
        self.url = config.payments.url.rstrip("/") + CHARGES_PATH
        self.http = http
        self.breaker: CircuitBreaker | None = None
        if self.settings.breaker:
            self.breaker = CircuitBreaker(
                PAYMENTS, failure_threshold=self.settings.breaker_failures,
                reset_timeout_s=self.settings.breaker_reset_ms / 1000,
            )
        self.metrics = PaymentMetrics(registry, self.breaker)

    def fail_fast(self) -> None:
        """While the breaker is open, refuse before the request takes a pool connection
        or touches the database: the refusal then costs milliseconds, whatever the load."""
        if self.breaker is None:
            return
        try:
            self.breaker.check()
        except BreakerOpen as exc:
            self.metrics.attempts.labels("breaker_open").inc()
            raise PaymentsUnavailable(BREAKER_OPEN, str(exc), exc.retry_after_s) from exc

    async def charge(self, *, amount_cents: int, token: str, order_ref: str) -> dict[str, Any]:
        """Charge once (retries reuse the idempotency key); the gateway's charge object."""
        body = {"amount_cents": amount_cents, "currency": "eur", "token": token,
                "order_ref": order_ref}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + self.settings.retries),
            wait=wait_random_exponential(multiplier=self.settings.retry_backoff_ms / 1000,
                                         max=MAX_BACKOFF_S),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._guarded(body, order_ref)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _guarded(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        """One attempt, through the breaker when there is one."""
        if self.breaker is None:
            return await self._attempt(body, key)
        try:
            ticket = self.breaker.admit()
        except BreakerOpen as exc:
            # Admitted while the breaker was closed, refused now: the request may have waited
            # (for the pool) meanwhile, so this refusal is not the fail-fast path.
            self.metrics.attempts.labels("breaker_open").inc()
            raise PaymentsUnavailable(BREAKER_OPEN_AFTER_WAIT, str(exc),
                                      exc.retry_after_s) from exc
        try:
            result = await self._attempt(body, key)
        except PaymentsUnavailable:
            self.breaker.failure(ticket)
            raise
        except BaseException:
            self.breaker.abandon(ticket)
            raise
        self.breaker.success(ticket)
        return result

    async def _attempt(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {_api_key()}"}
        if self.settings.idempotency_keys:
            headers["Idempotency-Key"] = key
        seconds = self.settings.timeout_ms / 1000 or None
        timeout = aiohttp.ClientTimeout(total=seconds)
        outcome = "ok"
        try:
            async with self.http.post(self.url, json=body, headers=headers,
                                      timeout=timeout) as resp:
                if resp.status >= 500:
                    outcome = f"http_{resp.status}"
                    raise PaymentsUnavailable(outcome, f"gateway answered {resp.status}")
                payload: dict[str, Any] = await resp.json(content_type=None)
                if resp.status >= 400:
                    # Our request was wrong (bad key, bad body): a bug, not an outage.
                    outcome = f"http_{resp.status}"
                    raise RuntimeError(f"payment gateway refused the charge: {resp.status} "
                                       f"{payload.get('error', payload)}")
                return payload
        except TimeoutError as exc:
            outcome = "timeout"
            raise PaymentsUnavailable("timeout", f"no answer within {seconds}s") from exc
        except aiohttp.ClientConnectorError as exc:
            outcome = "refused"
            raise PaymentsUnavailable("refused", str(exc)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            outcome = "disconnected"
            raise PaymentsUnavailable("disconnected", type(exc).__name__) from exc
        finally:
            self.metrics.attempts.labels(outcome).inc()
