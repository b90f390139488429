"""The flaky-dependency incident end to end: the real gateway stub behind the real fault
proxy, the checkout behind the router, Locust, the shipped scenario file."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lab.records.samples import parse_metrics
from lab.stack.base import StackRequest
from lab.stack.local import LocalBackend
from lab.system.run_dirs import new_run_id
from tests.integration.lab_cli import run_lab, variants, verdict

CHECKOUT = "/api/checkout/complete"
Flaky = tuple[dict[str, dict[str, Any]], str]


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Flaky:
    """baseline, timeouts-retries and circuit-breaker in one `lab run` (one lock, ~2.5 min)."""
    runs_root = Path(f"/tmp/chaoslab-test-{secrets.token_hex(4)}")
    out = tmp_path_factory.mktemp("flaky") / "results.json"
    proc = run_lab(["run", "flaky-dependency", "--variant", "baseline", "--variant",
                    "timeouts-retries", "--variant", "circuit-breaker", "--json", str(out),
                    "--quiet"], runs_root)
    leftovers = list(runs_root.iterdir()) if runs_root.exists() else []
    shutil.rmtree(runs_root, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leftovers == []
    return variants(out), proc.stdout


def test_baseline_turns_gateway_hiccups_into_500s(flaky: Flaky) -> None:
    v = flaky[0]["baseline"]
    before, fault = v["windows"]["before"], v["windows"]["fault"]
    assert before["by_status"].get("500", 0) == 0
    assert fault["by_status"]["500"] / fault["total"] >= 0.30
    # The 500s come from the payment call, not from a planted raise.
    assert v["signatures"][0]["exception"] == "PaymentsUnavailable"
    assert "payments.py" in v["signatures"][0]["frame"]
    # Every phase of the schedule was applied and acted on requests.
    evidence = v["evidence"]
    assert evidence["took_effect"] is True
    assert all(n > 0 for n in evidence["facts"]["toxic_hits"].values())
    assert evidence["facts"]["toxics_after_revert"] == 0
    # No retries, so nobody is charged twice; but answers lost after the charge left
    # customers charged for a checkout that answered 500.
    assert v["ledger"]["double_charges"] == 0
    assert v["ledger"]["charged_without_order"] >= 1


def test_retries_with_idempotency_keys_never_double_charge(flaky: Flaky) -> None:
    v = flaky[0]["timeouts-retries"]
    fault = v["windows"]["fault"]
    base = flaky[0]["baseline"]["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["retry_after"]["503"] == fault["by_status"]["503"]
    # Fewer failures than the baseline...
    assert fault["by_class"]["2xx"] / fault["total"] > base["by_class"]["2xx"] / base["total"]
    # ...and the double-charge count: retries re-sent charges the gateway had taken, and
    # the idempotency key made it answer them with the original charge.
    assert v["ledger"]["duplicate_attempts"] >= 10
    assert v["ledger"]["double_charges"] == 0
    assert v["passed"] is True


def test_breaker_fails_fast_and_closes_after_the_fault(flaky: Flaky) -> None:
    v = flaky[0]["circuit-breaker"]
    fast = verdict(v, "[fault] p99 latency of 503 (breaker_open)")
    assert fast["passed"] and fast["value"] <= 250  # a quarter of the 1 s timeout
    quiet = verdict(v, "[fault] increase of proxy proxy_requests_total while")
    assert quiet["passed"] and quiet["value"] <= 10
    opened = [s["metrics"]["checkout-1"].get("checkout_breaker_open", 0)
              for s in v["timeline"] if s["phase"] == "fault" and "checkout-1" in s["metrics"]]
    assert max(opened) == 1
    assert v["windows"]["fault"]["by_status"].get("500", 0) == 0
    assert v["passed"] is True


def test_breaker_state_shows_in_health_and_metrics(runs_root: Path) -> None:
    """The breaker's wiring, request by request: open on gateway 503s, fail fast with
    Retry-After, state in /health (which stays 200) and /metrics, then close again."""

    async def scenario() -> None:
        request = StackRequest(new_run_id(), 1, {
            "PAYMENT_TIMEOUT_MS": "500", "PAYMENT_BREAKER": "true",
            "PAYMENT_BREAKER_FAILURES": "3", "PAYMENT_BREAKER_RESET_MS": "1000",
            "PAYMENT_ERRORS_AS_503": "true", "SESSION_TTL_MS": "60000"}, 2000, 5)
        async with LocalBackend().up(request) as handle, aiohttp.ClientSession() as http:
            url = handle.stack.entry_url
            body = {"cart_id": 7, "user_id": 7, "payment_token": "tok"}

            async def checkout() -> tuple[int, dict[str, str], dict[str, object]]:
                async with http.post(url + CHECKOUT, json=body,
                                     headers={"X-Session-Id": "s"}) as resp:
                    return resp.status, dict(resp.headers), await resp.json(content_type=None)

            assert (await checkout())[0] == 201
            await handle.proxy.set_toxic({"type": "http_error", "status": 503})
            reasons = [(await checkout())[2].get("reason") for _ in range(3)]
            assert reasons == ["http_503"] * 3
            status, headers, problem = await checkout()
            assert (status, problem["reason"]) == (503, "breaker_open")
            assert headers["Retry-After"] == "1"
            async with http.get(url + "/health") as resp:
                assert resp.status == 200
                assert (await resp.json())["checks"]["payments_breaker"]["state"] == "open"
            async with http.get(url + "/metrics") as resp:
                metrics = parse_metrics(await resp.text())
            assert metrics["checkout_breaker_open"] == 1
            assert metrics["checkout_breaker_rejected"] == 1
            forwarded = (await handle.proxy.stats())["requests"]
            await handle.proxy.reset()
            await asyncio.sleep(1.1)
            assert (await checkout())[0] == 201  # the half-open trial succeeds...
            async with http.get(url + "/metrics") as resp:
                metrics = parse_metrics(await resp.text())
            assert metrics["checkout_breaker_closed"] == 1  # ...and closes it
            # While open, the refused call never reached the gateway's side of the proxy.
            assert (await handle.proxy.stats())["requests"] == forwarded + 1

    began = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - began < 60
