"""A rolling deploy of a new checkout version whose environment lacks a variable.

The deploy is one roll-out step of lab.stack.rollout (start, wait for rotation, retire the old
instances; or fail, keep them and remove the new one, with its exit code and stderr line
kept as evidence).

Revert is the rollback: when the deploy went through, a new instance of the previous
version (full environment) is started and swapped in the same way.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams
from lab.scenario.units import Duration
from lab.services.checkout.switches import unknown_variable
from lab.stack.rollout import next_instance_name, roll_out


class RollingDeployParams(FaultParams):
    unset: list[str] = Field(default_factory=lambda: ["PAYMENT_API_KEY"], min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    ready_timeout: Duration = 8.0
    drain: Duration = 5.0
    rollback: bool = True

    @field_validator("unset")
    @classmethod
    def _known_unset(cls, names: list[str], info: ValidationInfo) -> list[str]:
        """Any variable the checkout reads, the lab's own included (a deploy may lose the
        key or the DSN); a misspelt one would deploy an intact version and prove nothing.
        Values in `env` are not judged: a deploy with a bad value is a fault worth having.
        A user's own service is judged by the scenario loader instead (what its stack
        declares), as the lab cannot know what it reads."""
        return names if _own(info) else _known(names)

    @field_validator("env")
    @classmethod
    def _known_env(cls, env: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if not _own(info):
            _known(list(env))
        return env


def _own(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("own_service"))


def _known(names: list[str]) -> list[str]:
    for name in names:
        if (problem := unknown_variable(name)) is not None:
            raise ValueError(f"{name}: {problem}")
    return names


class RollingDeploy(Fault):
    kind = "rolling-deploy"
    Params = RollingDeployParams
    description = "a new version is rolled out without a required environment variable"

    params: RollingDeployParams
    _old: list[str]
    _bad: str | None = None
    _deployed = False

    async def inject(self) -> None:
        self._started: list[str] = []
        self._old = [i.name for i in self.stack.instances]
        facts = self.evidence.facts
        facts.update(old_instances=list(self._old), unset=self.params.unset)
        outcome = await self._roll_out(self.params.unset, facts, "deploy")
        self._deployed = outcome == "completed"

    async def _roll_out(self, unset: list[str], facts: dict[str, Any], what: str) -> str:
        name = next_instance_name(self.handle, self._started)
        self._started.append(name)

        def record_environ(started: str) -> None:
            """Proof from the running process itself that the variables are gone."""
            environ = self.handle.instance_environ(started)
            facts["environ_read_from_process"] = environ is not None
            facts["variables_absent"] = (environ is not None
                                         and not any(v in environ for v in unset))

        return await roll_out(self.handle, name=name, env=self.params.env, unset=unset,
                              ready_timeout=self.params.ready_timeout,
                              drain=self.params.drain, facts=facts, what=what,
                              on_start=record_environ if what == "deploy" else None)

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
            outcome = await self._roll_out([], facts, "rollback")
            if outcome != "completed":
                raise FaultError(f"rolling-deploy: the rollback failed: "
                                 f"{facts.get('rollback_stderr_line', '')}")
        names = [b["name"] for b in await self.handle.router.backends()]
        facts["in_rotation_after_revert"] = names
        self.evidence.took_effect = bool(facts.get("variables_absent")) and (
            facts.get("deploy") in ("completed", "failed"))
