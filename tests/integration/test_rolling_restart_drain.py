"""A rolling restart must not charge the lab's own restart to anyone: every request an
old instance holds when it leaves rotation is answered before it stops, as long as its
client still waits. Slow requests make the point: the payment gateway answers after
3 s (a latency toxic on the fault proxy), so each old instance leaves rotation with
seconds of work in it. HAProxy (docker) shuts an old server's sessions when its drain
ends: with a drain shorter than the requests (the 2 s it was), clients got 502s (3 of 45
here); the local router lets them finish on the instance's graceful shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from lab.stack.base import StackRequest
from lab.stack.rollout import drain_for, rolling_restart
from lab.system.run_dirs import new_run_id

CHECKOUT = "/api/checkout/complete"
#: The load's client timeout (the scenarios' default) and the gateway's delay under it.
CLIENT_TIMEOUT_S = 5.0
GATEWAY_DELAY_MS = 3000
SENT = 45


def backend_named(name: str) -> Any:
    if name == "local":
        from lab.stack.local import LocalBackend

        return LocalBackend()
    from lab.errors import BackendError
    from lab.stack.docker import DockerBackend, engine
    from lab.stack.images import check_images

    try:
        check_images(engine())
    except BackendError as exc:
        pytest.skip(f"docker backend unavailable here: {exc}")
    return DockerBackend()


async def restart_under_slow_requests(backend: Any) -> tuple[list[str], dict[str, Any]]:
    """Two instances, each with room for every request it gets (pool of 20, ~8 at once);
    a checkout every 200 ms for 9 s, each taking 3 s; a rolling restart 1.5 s in.
    Returns what each request's client saw and the restart's outcome."""
    request = StackRequest(new_run_id(), 2, {"SESSION_TTL_MS": "60000",
                                             "DB_POOL_MAX": "20"}, 2000, 5)
    seen: list[str] = []
    async with backend.up(request) as handle, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)) as http:
        url = handle.stack.entry_url + CHECKOUT
        await handle.proxy.set_toxic({"type": "latency", "latency": GATEWAY_DELAY_MS,
                                      "name": "slow-gateway"})

        async def one(i: int) -> None:
            body = {"cart_id": 1 + i % 1999, "user_id": i + 1, "payment_token": "tok"}
            try:
                async with http.post(url, json=body, headers={"X-Session-Id": f"s{i}"}) as r:
                    text = await r.text()
                    seen.append(str(r.status) if r.status == 201 else f"{r.status} {text}")
            except TimeoutError:
                seen.append("timeout")
            except aiohttp.ClientError as exc:
                seen.append(type(exc).__name__)

        async def restart() -> dict[str, Any]:
            await asyncio.sleep(1.5)
            return await rolling_restart(handle, {}, drain=drain_for(CLIENT_TIMEOUT_S),
                                         ready_timeout=30)

        restarting = asyncio.ensure_future(restart())
        sent: list[asyncio.Task[None]] = []
        began = time.monotonic()
        for i in range(SENT):
            await asyncio.sleep(max(0.0, began + i * 0.2 - time.monotonic()))
            sent.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*sent)
        outcome = await restarting
    return seen, outcome


@pytest.mark.parametrize("backend_name", ["local", "docker"])
def test_a_rolling_restart_answers_every_request_the_old_instances_hold(
        backend_name: str) -> None:
    seen, outcome = asyncio.run(restart_under_slow_requests(backend_named(backend_name)))
    assert outcome["outcome"] == "completed", outcome
    assert len(outcome["replaced"]) == 2
    # Every old instance left with requests in it (the drain had something to do)...
    assert all(step["restart_retired"][0]["served"] for step in outcome["steps"])
    # ...and every request was answered by the checkout: no cut connection, no 502.
    mix = {k: seen.count(k) for k in set(seen)}
    assert len(seen) == SENT
    assert mix == {"201": SENT}, mix
