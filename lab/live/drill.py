"""`lab drill`: a graded exercise on a live stack.

The lab picks a hidden incident (seeded, so every participant given the same seed gets
the same incident at the same moment), starts its stack under the scenario's steady
load, and injects the fault at an unannounced moment. Participants investigate (the
dashboard, logs, curl) and act through the control API: `diagnose`, `mitigate` (a real
rolling restart of the checkout with the given switches, through the router, while the
fault stays in), `hint` and `rollback`. The score counts what users saw — 500s, lying
200s and every other failure that is not an honest 503 — from the injection to the end,
and the times to detect, diagnose and mitigate (lab.live.score).

One participant per stack: a mitigation restarts the checkout every user of the stack
hits, so on a shared stack one player's action would change another's score, and the
500s users saw could not be attributed to anyone. A workshop gives everyone the same
`--seed` instead: the same incident at the same moment, scores that compare.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.live.api import ApiError
from lab.live.debrief import render_debrief
from lab.live.score import Score, score_drill
from lab.live.session import LiveSession
from lab.scenario.models import Scenario
from lab.services.checkout.switches import SWITCHES, unknown_variable
from lab.stack.rollout import drain_for, rolling_restart

ACTIONS = ("diagnose", "mitigate", "hint", "rollback", "end")
#: How long a drill's restart waits for each new instance to enter rotation. A deploy
#: fault waits 8 s; under an incident the CPU is the incident's (50 sequential scans at
#: once: a new checkout did not even bind its port within 8 s), and a participant's
#: restart should not fail for that.
RESTART_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DrillPlan:
    """What the seed decided: which incident, and when it starts."""

    scenario: Scenario
    inject_after_s: float

    @classmethod
    def pick(cls, pool: Sequence[Scenario], seed: int, quiet: tuple[float, float]) -> DrillPlan:
        if not pool:
            raise LabError("the drill's pool of incidents is empty")
        rng = random.Random(seed)
        ordered = sorted(pool, key=lambda s: s.name)
        scenario = rng.choice(ordered)
        return cls(scenario, round(rng.uniform(*quiet), 1))


def mitigation_results(scenario: Scenario, results_path: Path | None) -> list[dict[str, Any]]:
    """What each of the scenario's variants did when it last ran (`make demo` writes
    results/latest.json); `result` is None for a variant that never ran there."""
    measured: dict[str, dict[str, Any]] = {}
    source = str(results_path) if results_path is not None else None
    if results_path is not None and results_path.is_file():
        try:
            doc = json.loads(results_path.read_text())
        except (OSError, ValueError):
            doc = {}
        for v in doc.get("variants", []) if isinstance(doc, dict) else []:
            if isinstance(v, dict) and v.get("scenario") == scenario.name:
                fault = (v.get("windows") or {}).get("fault") or {}
                measured[str(v.get("name"))] = {"passed": bool(v.get("passed")),
                                                "fault_counts": fault.get("by_class", {}),
                                                "source": source}
    return [{"variant": name, "description": spec.description,
             "switches": scenario.mitigation_switches(name),
             "shows_problem": spec.shows_problem, "result": measured.get(name)}
            for name, spec in scenario.variants.items() if name != "baseline"]


class Drill:
    """The drill's rules on top of a LiveSession (the API's DrillControl)."""

    def __init__(self, session: LiveSession, plan: DrillPlan, *, seed: int, player: str,
                 causes: Sequence[str], pool: Sequence[str], limit_s: float, out_dir: Path,
                 results_path: Path | None = None) -> None:
        self.session = session
        self.plan = plan
        self.seed = seed
        self.player = player
        self.causes = sorted(set(causes))
        self.pool = list(pool)
        self.limit_s = limit_s
        self.out_dir = out_dir
        self.results_path = results_path
        self.actions: list[dict[str, Any]] = []
        self.hints_used = 0
        self.overrides: dict[str, str] = {}
        self.ended_at: float | None = None
        self.score: Score | None = None
        self.record: dict[str, Any] | None = None
        self._debrief: str | None = None
        self._end = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def scenario(self) -> Scenario:
        return self.plan.scenario

    def switch_names(self) -> list[str]:
        """What `mitigate` may set: the sample checkout's switches, or the variables the
        scenario configures a user's own service by."""
        if self.scenario.stack.service is None:
            return list(SWITCHES)
        return self.scenario.service_variables()

    def _switches(self, value: object) -> dict[str, str]:
        if not isinstance(value, dict) or not value:
            own_names = self.scenario.service_variables() if self.scenario.stack.service else []
            example = own_names[0] if own_names else "DB_ACQUIRE_TIMEOUT_MS"
            raise ApiError(400, "switches: expected an object of SWITCH: VALUE, e.g. "
                                f'{{"{example}": "500"}}')
        own = self.scenario.stack.service is not None
        known = self.switch_names()
        out = {}
        for name, setting in value.items():
            problem = ((f"not a variable this scenario configures your service by (known: "
                        f"{', '.join(known)})" if str(name) not in known else None)
                       if own else unknown_variable(str(name)))
            if problem is not None:
                raise ApiError(400, f"switches.{name}: {problem}")
            out[str(name)] = str(setting)
        return out

    def status_json(self) -> dict[str, Any]:
        started = self.session.ready_at
        return {
            "player": self.player, "seed": self.seed, "causes": self.causes,
            "switches": self.switch_names(), "hints_used": self.hints_used,
            # Whether asking again would be refused, never how many are left: the count
            # differs between incidents and would give the hidden one away.
            "hints_exhausted": self.hints_used >= len(self.scenario.drill_hints()),
            "overrides": self.overrides, "ended": self.ended,
            "elapsed_s": None if started is None else round(time.time() - started, 1),
            "actions": self.actions,  # every screen shows every answer (hints cost once)
            "score": self.score.to_json() if self.score is not None else None,
            "debrief": "/debrief" if self._debrief is not None else None,
            "record": str(self.out_dir / "drill.json") if self.record is not None else None,
        }

    async def run(self) -> None:
        """Wait the unannounced quiet time, inject, and end at the limit or on `end`."""
        try:
            await asyncio.wait_for(self._end.wait(), self.plan.inject_after_s)
        except TimeoutError:
            await self.session.inject()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._end.wait(), self.limit_s)
        if not self.ended:
            await self.finish()

    async def act(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind not in ACTIONS:
            raise ApiError(404, f"no drill action {kind!r} (actions: {', '.join(ACTIONS)})")
        if self.ended:
            if kind == "end":
                return self._ended_json()
            raise ApiError(409, "the drill has ended: see its debrief")
        player = str(body.get("player") or self.player)  # no player given: the drill's own
        if kind == "end":
            await self.finish()
            return self._ended_json()
        t = time.time()
        outcome: dict[str, Any]
        if kind == "diagnose":
            cause = str(body.get("cause", "")).strip()
            if cause not in self.causes:
                raise ApiError(400, f"cause: expected one of {', '.join(self.causes)}")
            outcome = {"cause": cause}
            args: dict[str, Any] = {"cause": cause}
        elif kind == "hint":
            hints = self.scenario.drill_hints()
            if self.hints_used >= len(hints):
                raise ApiError(409, "no hints left")
            outcome = {"hint": hints[self.hints_used]}
            self.hints_used += 1
            args = {}
        elif kind == "mitigate":
            switches = self._switches(body.get("switches"))
            args = {"switches": switches}
            outcome = await self._restart({**self.overrides, **switches})
        else:  # rollback
            args = {}
            outcome = await self._restart({})
        self.actions.append({"t": t, "player": player, "kind": kind, "args": args,
                             "outcome": outcome})
        return {"kind": kind, "at": t, **outcome, "hints_used": self.hints_used}

    async def _restart(self, overrides: dict[str, str]) -> dict[str, Any]:
        """A rolling restart with these switches over the stack's configuration."""
        async with self.session.lock:
            done = await rolling_restart(
                self.session.handle, overrides, ready_timeout=RESTART_READY_TIMEOUT_S,
                drain=drain_for(self.scenario.load.client_timeout))
        if done.get("outcome") == "completed":
            self.overrides = overrides
        return {"restart": done, "overrides": dict(self.overrides)}

    def _ended_json(self) -> dict[str, Any]:
        return {"ended": True, "scenario": self.scenario.name,
                "score": self.score.to_json() if self.score is not None else None,
                "debrief": "/debrief", "record": str(self.out_dir / "drill.json")}

    async def finish(self) -> None:
        """End: score what users saw until now, revert, write the record and debrief."""
        if self.ended:
            return
        self.ended_at = time.time()
        self._end.set()
        session = self.session
        await asyncio.sleep(1.0)  # the answers to the last requests sent before the end
        session.series.flush(self.ended_at)
        if session.fault_state == "injected":
            await session.revert()
        cause = self.scenario.drill_cause()
        seconds = [s for s in session.series.seconds
                   if session.ready_at is None or s["t"] >= int(session.ready_at)]
        self.score = score_drill(seconds, session.injected_at, self.ended_at, self.actions,
                                 cause)
        self.record = {
            "seed": self.seed, "player": self.player, "pool": self.pool,
            "scenario": self.scenario.name, "title": self.scenario.title, "cause": cause,
            "summary": self.scenario.drill_summary(),
            "fault_kind": self.scenario.fault.kind,
            "started_at": session.ready_at, "injected_at": session.injected_at,
            "ended_at": self.ended_at, "actions": self.actions, "seconds": seconds,
            "errors": session.errors(), "infra": list(session.infra_history),
            "evidence": session.evidence(), "score": self.score.to_json(),
            "mitigations": mitigation_results(self.scenario, self.results_path),
        }
        self._debrief = render_debrief(self.record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "drill.json").write_text(json.dumps(self.record, indent=1, default=str))
        (self.out_dir / "debrief.html").write_text(self._debrief)

    def debrief_html(self) -> str | None:
        return self._debrief


