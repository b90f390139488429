"""`lab inject` / `lab revert`: a scenario's fault on a stack an instructor started by hand
with compose, held until someone reverts it.

A fault is an async context (lab.faults.base): injected on enter, reverted on exit, with
its evidence in memory, and some keep acting while they are active (a gateway schedule
moves from phase to phase). So `lab inject` does not inject and walk away: it starts a
small detached *holder* process (`python -m lab.live.workshop`) that attaches to the compose
project, enters the fault and stays in it, observing once a second, until `lab revert`
sends it SIGTERM (or `--for` runs out). Leaving the context reverts the fault exactly as
at the end of a `lab run`. Holder and commands talk through one JSON state file per
project in the runs root; it is removed once the fault is reverted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import BackendError, FaultError, LabError, StateError
from lab.live.workshop_files import held_projects, log_path, state_path
from lab.system.processes import is_alive
from lab.system.waiting import wait_until

#: How long `lab inject` / `lab revert` wait for the holder to inject or revert.
HOLDER_TIMEOUT_S = 90.0
#: Phases of the state file. `active`: injected and held; `reverted` / `failed`: the holder
#: is done (the fault is not in place).
DONE = ("reverted", "failed")


@dataclass
class Injection:
    """The state file: which fault is on which project, held by which process."""

    project: str
    scenario: str
    variant: str
    kind: str
    pid: int = 0
    phase: str = "starting"
    started_at: float = field(default_factory=time.time)
    injected_at: float | None = None
    reverted_at: float | None = None
    revert_at: float | None = None
    error: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return state_path(self.project)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str))
        tmp.replace(self.path)


def load_state(project: str) -> Injection | None:
    try:
        return Injection(**json.loads(state_path(project).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise LabError(f"{state_path(project)}: unreadable workshop state ({exc}); "
                       "delete it once you checked the stack") from None


def _forget(project: str) -> None:
    for path in (state_path(project), log_path(project)):
        path.unlink(missing_ok=True)


def _holder_tail(project: str) -> str:
    try:
        lines = log_path(project).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-15:])


# --------------------------------------------------------------------- the commands' side


def start(project: str | None, scenario_path: Path, variant: str, kind: str,
          hold_for_s: float | None) -> Injection:
    """Start the holder and wait until the fault is in place (or failed to be)."""
    from lab.stack.compose import resolve_project

    try:
        project = resolve_project(project)
    except BackendError as exc:  # no compose stack to act on (or no engine to ask)
        raise StateError(f"no stack to inject into: no `lab up` stack runs here, and {exc}"
                         ) from None
    current = load_state(project)
    if current is not None:
        if current.phase not in DONE and is_alive(current.pid):
            raise StateError(
                f"{current.kind} ({current.scenario}/{current.variant}) is already injected "
                f"into {project!r}: `lab revert` first")
        if current.phase not in DONE:
            raise FaultError(
                f"the holder of an earlier {current.kind} injection into {project!r} died "
                f"(pid {current.pid}) before reverting it; check the stack, then `lab revert` "
                "clears the state")
        _forget(project)
    state = Injection(project, scenario_path.stem, variant, kind)
    state.save()
    argv = [sys.executable, "-m", "lab.live.workshop", project, str(scenario_path), variant,
            str(hold_for_s or 0)]
    with log_path(project).open("w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    state.pid = proc.pid
    deadline = time.monotonic() + HOLDER_TIMEOUT_S
    while time.monotonic() < deadline:
        current = load_state(project)
        if current is not None and current.phase in ("active", *DONE):
            if current.phase != "active":
                proc.wait(10)
                _forget(project)
                raise FaultError(f"{kind} could not be injected into {project!r}: "
                                 f"{current.error or _holder_tail(project)}")
            return current
        if proc.poll() is not None:
            tail = _holder_tail(project)
            _forget(project)
            raise FaultError(f"the fault holder exited ({proc.returncode}) before injecting:"
                             f"\n{tail}")
        time.sleep(0.2)
    proc.terminate()
    raise FaultError(f"{kind} was not in place within {HOLDER_TIMEOUT_S:g}s; the holder was "
                     f"stopped (log: {log_path(project)})")


def require_held(project: str | None) -> None:
    """A StateError when no compose project holds a fault (so there is nothing to revert);
    with a project named, stop() looks at its state file."""
    if project is None and not held_projects():
        raise StateError("nothing is injected: no `lab up` stack runs here, and no compose "
                         "project holds a fault of `lab inject`")


def stop(project: str | None) -> Injection:
    """Have the holder revert its fault; the final state, with the evidence."""
    from lab.stack.compose import resolve_project

    require_held(project)
    project = resolve_project(project, must_run=False)
    state = load_state(project)
    if state is None:
        raise StateError(f"nothing is injected into {project!r} (no {state_path(project)})")
    if state.phase not in DONE and is_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        pid = state.pid
        if not wait_until(lambda: not is_alive(pid), HOLDER_TIMEOUT_S, every=0.2):
            raise FaultError(f"the holder (pid {state.pid}) did not revert within "
                             f"{HOLDER_TIMEOUT_S:g}s; log: {log_path(project)}")
    final = load_state(project) or state
    _forget(project)
    if final.phase == "failed":
        raise FaultError(f"reverting {final.kind} failed: {final.error}")
    if final.phase != "reverted":
        raise FaultError(f"the holder of {final.kind} (pid {final.pid}) died without "
                         "reverting it: the fault may still be in place; the state is cleared")
    return final


# ---------------------------------------------------------------------- the holder's side


async def hold(project: str, scenario_path: Path, variant: str, hold_for_s: float) -> None:
    """Attach, inject, observe until cancelled (SIGTERM) or `hold_for_s`, revert."""
    from lab.faults.registry import create_fault
    from lab.scenario.loader import load_scenario_file
    from lab.stack.compose import attach

    scenario = load_scenario_file(scenario_path)
    state = load_state(project) or Injection(project, scenario.name, variant,
                                             scenario.fault.kind)
    state.pid = os.getpid()
    handle = await asyncio.to_thread(attach, project)
    fault = create_fault(scenario.fault.kind, scenario.variant_fault_params(variant),
                         handle.stack, scenario.seed, handle=handle)
    try:
        async with fault.active():
            state.phase, state.injected_at = "active", time.time()
            state.revert_at = time.time() + hold_for_s if hold_for_s > 0 else None
            state.evidence = fault.evidence.to_json()
            state.save()
            while state.revert_at is None or time.time() < state.revert_at:
                await asyncio.sleep(1)
                with contextlib.suppress(LabError):  # a missed observation is no failure
                    await fault.observe()
                state.evidence = fault.evidence.to_json()
                state.save()
    except asyncio.CancelledError:
        pass  # SIGTERM from `lab revert`: the context above has reverted the fault
    except Exception as exc:
        state.phase, state.error = "failed", f"{type(exc).__name__}: {exc}"
        state.evidence = fault.evidence.to_json()
        state.save()
        raise
    state.phase, state.reverted_at = "reverted", time.time()
    state.evidence = fault.evidence.to_json()
    state.save()


def main(argv: list[str]) -> int:
    project, scenario_path, variant, hold_for = argv

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await hold(project, Path(scenario_path), variant, float(hold_for))

    try:
        asyncio.run(run())
    except Exception as exc:  # the state file carries it; the log keeps the traceback
        state = load_state(project)
        if state is not None and state.phase not in DONE:
            state.phase, state.error = "failed", f"{type(exc).__name__}: {exc}"
            state.save()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
