"""A rolling deploy of a new checkout version whose environment lacks a variable.

The rollout rule (what a deploy tool in front of the router does): start the new
instance, register it with the router — which sends it nothing until it passed the
router's health check `rise` times in a row — and wait up to `ready_timeout` for it to
enter rotation; then retire the old instance (out of rotation, drained, stopped). If the
new instance exits, or never enters rotation in time, the deploy fails: the old one keeps
serving and the new one is removed, with its exit code and stderr line kept as evidence.

Revert is the rollback: when the deploy went through, a new instance of the previous
version (full environment) is started and swapped in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from pydantic import Field, field_validator

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams
from lab.services.checkout.switches import unknown_variable
from lab.units import Duration


class RollingDeployParams(FaultParams):
    unset: list[str] = Field(default_factory=lambda: ["PAYMENT_API_KEY"], min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    ready_timeout: Duration = 8.0
    drain: Duration = 5.0
    rollback: bool = True

    @field_validator("unset")
    @classmethod
    def _known_unset(cls, names: list[str]) -> list[str]:
        """Any variable the checkout reads, the lab's own included (a deploy may lose the
        key or the DSN); a misspelt one would deploy an intact version and prove nothing.
        Values in `env` are not judged: a deploy with a bad value is a fault worth having."""
        return _known(names)

    @field_validator("env")
    @classmethod
    def _known_env(cls, env: dict[str, str]) -> dict[str, str]:
        _known(list(env))
        return env


def _known(names: list[str]) -> list[str]:
    for name in names:
        if (problem := unknown_variable(name)) is not None:
            raise ValueError(f"{name}: {problem}")
    return names


def _key_line(lines: list[str]) -> str:
    """The line that explains an exit: a STARTUP_FAILURE line, else the last one."""
    for line in lines:
        if "STARTUP_FAILURE" in line:
            return line.strip()
    return lines[-1].strip() if lines else ""


class RollingDeploy(Fault):
    kind = "rolling-deploy"
    Params = RollingDeployParams
    description = "a new version is rolled out without a required environment variable"

    params: RollingDeployParams
    _old: list[str]
    _bad: str | None = None
    _deployed = False

    def _next_name(self) -> str:
        taken = {i.name for i in self.stack.instances}
        n = len(taken) + 1
        while f"checkout-{n}" in taken or f"checkout-{n}" in self._started:
            n += 1
        return f"checkout-{n}"

    async def inject(self) -> None:
        self._started: list[str] = []
        self._old = [i.name for i in self.stack.instances]
        facts = self.evidence.facts
        facts.update(old_instances=list(self._old), unset=self.params.unset)
        outcome = await self._roll_out({}, self.params.unset, facts, "deploy")
        self._deployed = outcome == "completed"

    async def _roll_out(self, env: dict[str, str], unset: list[str], facts: dict[str, Any],
                        what: str) -> str:
        """Start → register → wait for rotation → retire the others; or fail and keep them."""
        handle = self.handle
        name = self._next_name()
        self._started.append(name)
        previous = [i.name for i in self.stack.instances]
        began = time.monotonic()
        inst = await handle.start_instance(name, env={**self.params.env, **env}, unset=unset)
        environ = handle.instance_environ(name)
        facts[f"{what}_instance"] = name
        facts[f"{what}_pid"] = inst.pid
        if what == "deploy":
            facts["environ_read_from_process"] = environ is not None
            facts["variables_absent"] = (environ is not None
                                         and not any(v in environ for v in unset))
        await handle.router.add_backend(name, inst.base_url)
        deadline = began + self.params.ready_timeout
        in_rotation = False
        while time.monotonic() < deadline:
            if handle.instance_exit(name) is not None:
                break
            state = {b["name"]: b for b in await handle.router.backends()}
            if state.get(name, {}).get("in_rotation"):
                in_rotation = True
                break
            await asyncio.sleep(0.1)
        if not in_rotation:
            code = handle.instance_exit(name)
            state = {b["name"]: b for b in await handle.router.backends()}
            await handle.router.remove_backend(name, drain_s=0)
            if code is None:
                facts[f"{what}_failure"] = f"not in rotation within {self.params.ready_timeout:g}s"
                facts[f"{what}_last_health_check"] = state.get(name, {}).get("last_check")
                await handle.stop_instance(name)
            else:
                facts[f"{what}_failure"] = "the process exited"
                facts[f"{what}_exited_after_s"] = round(time.monotonic() - began, 3)
                facts[f"{what}_exit_code"] = code
                facts[f"{what}_stderr_line"] = _key_line(handle.instance_stderr(name))
                await handle.stop_instance(name)
            facts[what] = "failed"
            facts[f"{what}_kept"] = previous
            return "failed"
        facts[f"{what}_in_rotation_after_s"] = round(time.monotonic() - began, 3)
        for old in previous:
            drained = await handle.router.remove_backend(old, drain_s=self.params.drain)
            await handle.stop_instance(old)
            facts.setdefault(f"{what}_retired", []).append(
                {"instance": old, "served": drained.get("served")})
        facts[what] = "completed"
        return "completed"

    async def _discard_unfinished(self) -> None:
        """After an interrupted roll-out: whatever was started and is not the old version
        leaves the router and stops, so the stack is as it was."""
        running = {i.name for i in self.stack.instances}
        for name in self._started:
            if name in running and name not in self._old:
                with contextlib.suppress(FaultError):  # it may never have been registered
                    await self.handle.router.remove_backend(name, drain_s=0)
                await self.handle.stop_instance(name)

    async def observe(self) -> None:
        backends = await self.handle.router.backends()
        self.evidence.observations.append({
            "t": round(time.time(), 3),
            "in_rotation": [b["name"] for b in backends if b.get("in_rotation")],
            "known": [b["name"] for b in backends],
        })

    async def revert(self) -> None:
        facts = self.evidence.facts
        if not hasattr(self, "_started"):
            return
        if not self._deployed:
            await self._discard_unfinished()
        elif self.params.rollback:
            outcome = await self._roll_out({}, [], facts, "rollback")
            if outcome != "completed":
                raise FaultError(f"rolling-deploy: the rollback failed: "
                                 f"{facts.get('rollback_stderr_line', '')}")
        names = [b["name"] for b in await self.handle.router.backends()]
        facts["in_rotation_after_revert"] = names
        self.evidence.took_effect = bool(facts.get("variables_absent")) and (
            facts.get("deploy") in ("completed", "failed"))
