"""`lab run` (the runner, and so the pytest plugin and bench), `lab up` and `lab drill`
(the live session) build a variant's experiment through one function,
lab.run.experiment.build_experiment: a change to its wiring reaches every one of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from lab.live.session import LiveSession
from lab.run import experiment
from lab.run.runner import run_variant
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.stack.base import StackRequest


class Wired(Exception):
    """Raised by the changed wiring: proof that the command went through it."""


class UpOnly:
    """A backend whose stack is up at once (nothing runs): enough to reach the wiring."""

    name = "fake"

    def __init__(self) -> None:
        self.requests: list[StackRequest] = []

    def unsupported(self, request: StackRequest) -> str | None:
        return None

    @contextlib.asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[Any]:
        self.requests.append(request)
        yield SimpleNamespace(stack=SimpleNamespace(db_dsn="postgresql://nowhere",
                                                    instances=[], services=[]))


@pytest.fixture
def changed_wiring(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The workers' step of the wiring, changed to record the load it got and stop."""
    seen: list[float] = []

    def wiring(load: Any) -> Any:
        seen.append(load.duration)
        raise Wired("the experiment's wiring ran")
    monkeypatch.setattr(experiment, "with_workers", wiring)
    return seen


def test_run_up_and_drill_build_their_experiment_through_one_function(
        changed_wiring: list[float]) -> None:
    scenario = load_scenario_file(find_scenario("missing-env-var"))
    assert scenario.physics is None  # no database to time: the wiring comes next
    backend = UpOnly()
    with pytest.raises(Wired):
        asyncio.run(run_variant(scenario, "baseline", backend))  # lab run, plugin, bench

    async def live() -> None:  # lab up, and lab drill (a LiveSession with rules on top)
        async with LiveSession(scenario, "baseline", backend, hold_s=3600):
            pass
    with pytest.raises(Wired):
        asyncio.run(live())
    # Both reached it with their own load: the run's window, the session's hold.
    assert changed_wiring == [scenario.load.duration, 3600]
    assert len(backend.requests) == 2
