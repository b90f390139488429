"""The docker backend's pieces that need no engine: `attach()` builds a handle on a
compose project from what it finds (fake containers here), and `off_loop` (lab.system.threads)
keeps a cancelled `up()` from racing its own teardown."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from lab.stack import compose
from lab.stack.postgres import DATABASE
from lab.system.threads import off_loop

PROJECT = "shop"


class FakeContainer:
    def __init__(self, service: str, number: int, env: dict[str, str],
                 ports: dict[int, int]) -> None:
        self.name = f"{PROJECT}_{service}_{number}"
        self.labels = {compose.PROJECT_LABEL: PROJECT, compose.SERVICE_LABEL: service,
                       compose.NUMBER_LABEL: str(number)}
        self.attrs = {
            "Config": {"Env": [f"{k}={v}" for k, v in env.items()]},
            "NetworkSettings": {
                "Ports": {f"{p}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(h)}]
                          for p, h in ports.items()},
                "Networks": {f"{PROJECT}_default": {"IPAddress": "10.0.0.9"}}},
            "HostConfig": {"Tmpfs": {}},
        }

    def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
        return 0, b"    server checkout-1 checkout:8080 check inter 300 fall 3 rise 2\n"


class FakeClient:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = self
        self._all = containers

    def list(self, filters: dict[str, str]) -> list[FakeContainer]:
        key, _, value = filters["label"].partition("=")
        return [c for c in self._all if c.labels.get(key) == value]


def test_attach_builds_the_handle_from_the_running_project(
        monkeypatch: pytest.MonkeyPatch) -> None:
    checkout_env = {"CHECKOUT_INSTANCE": "checkout-1", "DATABASE_URL": compose.DSN,
                    "CHECKOUT_PORT": "8080", "PAYMENT_URL": "http://proxy:8091",
                    "PAYMENT_API_KEY": compose.API_KEY, "DB_POOL_MAX": "10"}
    second = {**checkout_env, "CHECKOUT_INSTANCE": "checkout-2"}
    client = FakeClient([
        FakeContainer("postgres", 1, {}, {5432: 15432}),
        FakeContainer("payments", 1, {}, {8090: 18090}),
        FakeContainer("proxy", 1, {}, {8092: 18092}),
        FakeContainer("checkout", 1, checkout_env, {8080: 20001}),
        FakeContainer("checkout", 3, second, {8080: 20003}),
        FakeContainer("router", 1, {}, {8080: 18080, 8404: 18404, 9999: 19999}),
    ])
    monkeypatch.setattr(compose, "engine", lambda: client)

    handle = compose.attach()

    stack = handle.stack
    assert (stack.backend, stack.run_id) == ("docker-compose", f"workshop-{PROJECT}")
    assert stack.entry_url == "http://127.0.0.1:18080"
    assert stack.db_dsn.endswith(f"@127.0.0.1:15432/{DATABASE}")
    assert [(i.name, i.base_url) for i in stack.instances] == [
        ("checkout-1", "http://127.0.0.1:20001"), ("checkout-2", "http://127.0.0.1:20003")]
    assert [(s.service, s.base_url) for s in stack.services] == [
        ("router", "http://127.0.0.1:18404"), ("proxy", "http://127.0.0.1:18092"),
        ("payments", "http://127.0.0.1:18090")]
    assert stack.data_volumes == []
    assert handle.network == f"{PROJECT}_default"
    assert handle.prefix == f"{PROJECT}-lab-"
    assert handle.labels[compose.PROJECT_LABEL] == PROJECT
    assert handle.checkout_env == {"PAYMENT_URL": "http://proxy:8091",
                                   "PAYMENT_API_KEY": compose.API_KEY, "DB_POOL_MAX": "10"}
    assert handle.dsn == compose.DSN
    assert handle.data_volume_bytes is None
    assert handle.router_check == "check inter 300 fall 3 rise 2"
    assert handle.proxy_admin == "http://127.0.0.1:18092"
    assert list(handle.checkouts) == ["checkout-1", "checkout-2"]
    assert (handle.number_label, handle.next_number) == (compose.NUMBER_LABEL, 4)


def test_a_cancelled_off_loop_call_finishes_before_the_cancellation_propagates() -> None:
    created = threading.Event()

    def create() -> str:
        time.sleep(0.3)
        created.set()
        return "container"

    async def main() -> bool:
        task = asyncio.create_task(off_loop(create))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return created.is_set()

    assert asyncio.run(main()), "the teardown would have run before the container existed"


def test_off_loop_returns_and_raises_like_the_call() -> None:
    def boom() -> Any:
        raise ValueError("no")

    assert asyncio.run(off_loop(sum, [1, 2])) == 3
    with pytest.raises(ValueError, match="no"):
        asyncio.run(off_loop(boom))
