"""Roll-outs (lab.stack.rollout) against a fake stack: the router is a dict that puts a backend in
rotation after `rise` polls, and an instance started without PAYMENT_API_KEY exits at
once, as the real checkout does. What must hold: a rolling restart replaces every
instance one at a time with the new configuration while the router always has one in
rotation; a failed step keeps the old instances and leaves no new one behind; names are
never reused (the backends refuse or misread them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from lab.errors import FaultError
from lab.faults.rolling_deploy import RollingDeploy, RollingDeployParams
from lab.stack.base import ServiceInstance, Stack, StartedInstance
from lab.stack.rollout import next_instance_name, roll_out, rolling_restart

BASE_ENV = {"PAYMENT_API_KEY": "k", "DB_POOL_MAX": "10"}
STARTUP_LINE = "STARTUP_FAILURE missing PAYMENT_API_KEY"


class FakeRouter:
    def __init__(self, names: Sequence[str], rise: int = 2) -> None:
        self.rise = rise
        self.table: dict[str, dict[str, Any]] = {
            n: {"name": n, "in_rotation": True, "polls": rise, "last_check": "200"}
            for n in names}
        self.log: list[tuple[str, str]] = []
        #: Backends in rotation left after each removal: a rolling restart keeps it >= 1.
        self.left_in_rotation: list[int] = []
        self.healthy: dict[str, bool] = {}

    async def backends(self) -> list[dict[str, Any]]:
        for b in self.table.values():
            if not b["in_rotation"] and self.healthy.get(b["name"], True):
                b["polls"] += 1
                b["last_check"] = "200"
                b["in_rotation"] = b["polls"] >= self.rise
            elif not self.healthy.get(b["name"], True):
                b["last_check"] = "503"
        return [dict(b) for b in self.table.values()]

    async def add_backend(self, name: str, base_url: str) -> None:
        self.log.append(("add", name))
        self.table[name] = {"name": name, "in_rotation": False, "polls": 0, "last_check": None}

    async def remove_backend(self, name: str, drain_s: float = 10.0) -> dict[str, Any]:
        if name not in self.table:
            raise FaultError(f"router: no backend {name}")
        self.log.append(("remove", name))
        del self.table[name]
        self.left_in_rotation.append(sum(b["in_rotation"] for b in self.table.values()))
        return {"name": name, "served": 7}

    async def events(self) -> list[dict[str, Any]]:
        return []


class FakeHandle:
    """Just enough of StackHandle; like the local backend it remembers stopped instances."""

    def __init__(self, names: Sequence[str] = ("checkout-1", "checkout-2")) -> None:
        self.stack = Stack(backend="fake", run_id="r", entry_url="http://router", db_dsn="",
                           instances=[ServiceInstance(n, f"http://{n}") for n in names],
                           work_dir="")
        self._router = FakeRouter(names)
        self.envs: dict[str, dict[str, str]] = {n: dict(BASE_ENV) for n in names}
        self.stopped: list[str] = []

    @property
    def router(self) -> FakeRouter:
        return self._router

    async def start_instance(self, name: str, *, env: Mapping[str, str] | None = None,
                             unset: Sequence[str] = ()) -> StartedInstance:
        if name in self.envs:
            raise FaultError(f"an instance named {name!r} exists already")
        self.envs[name] = {k: v for k, v in {**BASE_ENV, **(env or {})}.items()
                           if k not in unset}
        self.stack.instances = [*self.stack.instances, ServiceInstance(name, f"http://{name}")]
        return StartedInstance(name, f"http://{name}", 4242, time.time())

    def instance_exit(self, name: str) -> int | None:
        if name not in self.envs:
            raise FaultError(f"no instance named {name!r} in this stack")
        return 2 if "PAYMENT_API_KEY" not in self.envs[name] else None

    def instance_stderr(self, name: str) -> list[str]:
        return ["starting", STARTUP_LINE, "exit"]

    def instance_environ(self, name: str) -> dict[str, str] | None:
        return None if self.instance_exit(name) is not None else self.envs[name]

    async def stop_instance(self, name: str) -> int | None:
        self.stopped.append(name)
        self.stack.instances = [i for i in self.stack.instances if i.name != name]
        return self.instance_exit(name)

    def running(self) -> list[str]:
        return [i.name for i in self.stack.instances]


def restart(handle: FakeHandle, env: Mapping[str, str], unset: Sequence[str] = (),
            **kw: Any) -> dict[str, Any]:
    kw.setdefault("drain", 0.0)
    return asyncio.run(rolling_restart(handle, env, unset, **kw))  # type: ignore[arg-type]


def test_a_rolling_restart_replaces_each_instance_in_turn_and_never_empties_the_router(
) -> None:
    handle = FakeHandle()
    result = restart(handle, {"DB_ACQUIRE_TIMEOUT_MS": "500"})

    assert result["outcome"] == "completed" and result["failure"] is None
    assert result["replaced"] == [["checkout-1", "checkout-3"], ["checkout-2", "checkout-4"]]
    # one at a time: the second new instance starts only after the first old one left
    assert handle.router.log == [("add", "checkout-3"), ("remove", "checkout-1"),
                                 ("add", "checkout-4"), ("remove", "checkout-2")]
    assert min(handle.router.left_in_rotation) >= 1
    assert handle.running() == ["checkout-3", "checkout-4"]
    for name in handle.running():  # the stack's env, plus the switch
        assert handle.envs[name] == {**BASE_ENV, "DB_ACQUIRE_TIMEOUT_MS": "500"}
    assert [s["restart_retired"][0]["served"] for s in result["steps"]] == [7, 7]
    assert isinstance(result["took_s"], float)


def test_a_second_restart_never_reuses_a_stopped_instance_s_name() -> None:
    handle = FakeHandle()
    restart(handle, {"A": "1"})
    result = restart(handle, {})  # a rollback: the stack's own env again
    assert result["outcome"] == "completed"
    assert result["replaced"] == [["checkout-3", "checkout-5"], ["checkout-4", "checkout-6"]]
    assert handle.envs["checkout-5"] == BASE_ENV


def test_a_step_that_exits_keeps_the_old_instances_and_says_why() -> None:
    handle = FakeHandle()
    result = restart(handle, {}, ["PAYMENT_API_KEY"])

    assert result["outcome"] == "failed" and result["replaced"] == []
    assert result["failure"] == (f"checkout-1 → checkout-3: the process exited with code 2: "
                                 f"{STARTUP_LINE}")
    assert handle.running() == ["checkout-1", "checkout-2"]
    assert handle.stopped == ["checkout-3"]
    assert set(handle.router.table) == {"checkout-1", "checkout-2"}
    assert result["steps"][0]["restart_kept"] == ["checkout-1"]


def test_a_step_never_in_rotation_times_out_and_the_rest_are_not_touched() -> None:
    handle = FakeHandle()
    handle.router.healthy["checkout-3"] = False
    result = restart(handle, {"X": "1"}, ready_timeout=0.3)

    assert result["outcome"] == "failed"
    assert result["failure"] == ("checkout-1 → checkout-3: not in rotation within 0.3s "
                                 "(last health check: 503)")
    assert handle.running() == ["checkout-1", "checkout-2"]
    assert handle.router.log == [("add", "checkout-3"), ("remove", "checkout-3")]


def test_a_router_error_fails_the_restart_and_removes_the_unready_instance() -> None:
    handle = FakeHandle()

    async def broken() -> list[dict[str, Any]]:
        raise FaultError("router: GET /backends failed")

    handle.router.backends = broken  # type: ignore[method-assign]
    result = restart(handle, {"X": "1"})

    assert result["outcome"] == "failed"
    assert result["failure"] == "checkout-1 → checkout-3: router: GET /backends failed"
    assert handle.running() == ["checkout-1", "checkout-2"]
    assert "checkout-3" not in handle.router.table


def test_a_cancelled_restart_leaves_no_half_started_instance() -> None:
    handle = FakeHandle()
    handle.router.healthy["checkout-3"] = False  # waits in the poll loop

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(rolling_restart(handle, {"X": "1"}, drain=0.0))  # type: ignore[arg-type]
        await asyncio.sleep(0.25)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert handle.running() == ["checkout-1", "checkout-2"]
    assert set(handle.router.table) == {"checkout-1", "checkout-2"}


def test_nothing_to_replace_is_a_failure_not_a_silent_success() -> None:
    result = restart(FakeHandle(names=()), {"X": "1"})
    assert result["outcome"] == "failed" and result["replaced"] == []
    assert result["failure"] == "no checkout instance to replace"


def test_next_instance_name_skips_running_taken_and_stopped_names() -> None:
    handle = FakeHandle()
    assert next_instance_name(handle) == "checkout-3"  # type: ignore[arg-type]
    assert next_instance_name(handle, ["checkout-3"]) == "checkout-4"  # type: ignore[arg-type]
    asyncio.run(handle.stop_instance("checkout-2"))
    # one running: checkout-2 is free by count, but the handle remembers it
    assert next_instance_name(handle) == "checkout-3"  # type: ignore[arg-type]
    handle.envs["checkout-3"] = {}
    assert next_instance_name(handle) == "checkout-4"  # type: ignore[arg-type]


def test_roll_out_retires_every_previous_instance_by_default() -> None:
    handle = FakeHandle()
    facts: dict[str, Any] = {}
    started: list[str] = []
    outcome = asyncio.run(roll_out(
        handle, name="checkout-3", env={}, unset=[], ready_timeout=2, drain=0,  # type: ignore[arg-type]
        facts=facts, what="deploy", on_start=started.append))
    assert outcome == "completed" and started == ["checkout-3"]
    assert facts["deploy"] == "completed" and facts["deploy_instance"] == "checkout-3"
    assert [r["instance"] for r in facts["deploy_retired"]] == ["checkout-1", "checkout-2"]
    assert handle.running() == ["checkout-3"]


def run_fault(handle: FakeHandle, **params: Any) -> dict[str, Any]:
    fault = RollingDeploy(RollingDeployParams(**params), handle.stack, seed=1,
                          handle=handle)  # type: ignore[arg-type]

    async def go() -> None:
        async with fault.active():
            pass

    asyncio.run(go())
    return fault.evidence.facts


def test_the_rolling_deploy_fault_keeps_its_evidence_keys() -> None:
    handle = FakeHandle(names=("checkout-1",))
    facts = run_fault(handle, unset=["DB_POOL_MAX"])  # starts fine, without the variable
    assert facts["environ_read_from_process"] is True and facts["variables_absent"] is True
    assert facts["deploy"] == "completed" and facts["rollback"] == "completed"
    assert [r["instance"] for r in facts["deploy_retired"]] == ["checkout-1"]
    assert [r["instance"] for r in facts["rollback_retired"]] == ["checkout-2"]
    assert handle.running() == ["checkout-3"]
    assert handle.envs["checkout-3"] == BASE_ENV


def test_the_rolling_deploy_fault_records_a_failed_deploy() -> None:
    handle = FakeHandle(names=("checkout-1",))
    facts = run_fault(handle)  # PAYMENT_API_KEY unset: exits at start-up
    assert facts["deploy"] == "failed" and facts["deploy_exit_code"] == 2
    assert facts["deploy_stderr_line"] == STARTUP_LINE
    assert facts["deploy_kept"] == ["checkout-1"]
    assert "rollback" not in facts
    assert handle.running() == ["checkout-1"]
