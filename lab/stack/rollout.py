"""Replacing checkout instances behind the router, the way a deploy tool does it.

One roll-out step: start a new instance, register it with the router — which sends it
nothing until it passed the health check `rise` times in a row — and wait up to
`ready_timeout` for it to enter rotation; then retire the instances it replaces (out of
rotation, drained, stopped). If the new one exits, or never enters rotation in time, the
step fails: the old ones keep serving and the new one is removed, with its exit code and
stderr line kept as evidence.

The rolling-deploy fault deploys (and rolls back) with one step; a drill's `mitigate` and
`rollback` use `rolling_restart`, one step per instance, so the new configuration acts on
real traffic while the router always has an instance in rotation.

Draining is what keeps the lab's own restart out of the verdict and the score: an old
instance leaves rotation, then keeps its requests until the last one a client still waits
for has been answered (`drain_for`: the load's client timeout, plus slack). Whatever is
still in flight after that was already recorded by its client as a timeout, so stopping
the instance (HAProxy shuts its sessions) changes no answer anyone sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from lab.errors import FaultError, LabError
from lab.stack.base import StackHandle

#: How often a step polls the router while it waits for the new instance.
POLL_S = 0.1
#: Beyond the client timeout: the router's view of "in flight" trails the client's.
DRAIN_SLACK_S = 1.0


def drain_for(client_timeout: float) -> float:
    """How long an instance leaving rotation keeps its requests: as long as a client may
    still wait for one (a request older than the client timeout is already a timeout in
    the client's record, whatever the instance does with it)."""
    return client_timeout + DRAIN_SLACK_S


def next_instance_name(handle: StackHandle, taken: Collection[str] = ()) -> str:
    """The first `<prefix>-N` (`checkout-N` for the sample) past the instance count that
    no instance of this stack ever had: neither running, nor in `taken`, nor known to the
    handle (it remembers the ones it stopped — their exit code, their log — and refuses or
    misreads a reused name)."""
    running = {i.name for i in handle.stack.instances}
    n = len(running) + 1
    prefix = handle.stack.instance_prefix
    while (name := f"{prefix}-{n}") in running or name in taken or _known(handle, name):
        n += 1
    return name


def _known(handle: StackHandle, name: str) -> bool:
    """Did the handle ever start `name`? It answers `instance_exit` for its instances,
    stopped ones included, and raises FaultError for a name it never had."""
    try:
        handle.instance_exit(name)
    except FaultError:
        return False
    return True


def key_line(lines: list[str]) -> str:
    """The line that explains an exit: a STARTUP_FAILURE line, else the last one."""
    for line in lines:
        if "STARTUP_FAILURE" in line:
            return line.strip()
    return lines[-1].strip() if lines else ""


async def roll_out(
    handle: StackHandle, *, name: str, env: Mapping[str, str], unset: Sequence[str],
    ready_timeout: float, drain: float, facts: dict[str, Any], what: str,
    retire: Sequence[str] | None = None, on_start: Callable[[str], None] | None = None,
) -> str:
    """One step: start `name` (the stack's checkout env + `env` − `unset`) → register →
    wait for rotation → retire `retire` (default: every instance running before); or fail
    and keep them. Returns "completed" or "failed"; the evidence goes into `facts` under
    keys prefixed with `what`. `on_start(name)` runs right after the launch, while the
    process may still be alive to be looked at (e.g. its environment)."""
    previous = [i.name for i in handle.stack.instances] if retire is None else list(retire)
    began = time.monotonic()
    inst = await handle.start_instance(name, env=env, unset=unset)
    facts[f"{what}_instance"] = name
    facts[f"{what}_pid"] = inst.pid
    if on_start is not None:
        on_start(name)
    await handle.router.add_backend(name, inst.base_url)
    deadline = began + ready_timeout
    in_rotation = False
    while time.monotonic() < deadline:
        if handle.instance_exit(name) is not None:
            break
        state = {b["name"]: b for b in await handle.router.backends()}
        if state.get(name, {}).get("in_rotation"):
            in_rotation = True
            break
        await asyncio.sleep(POLL_S)
    if not in_rotation:
        code = handle.instance_exit(name)
        state = {b["name"]: b for b in await handle.router.backends()}
        await handle.router.remove_backend(name, drain_s=0)
        if code is None:
            facts[f"{what}_failure"] = f"not in rotation within {ready_timeout:g}s"
            facts[f"{what}_last_health_check"] = state.get(name, {}).get("last_check")
        else:
            facts[f"{what}_failure"] = "the process exited"
            facts[f"{what}_exited_after_s"] = round(time.monotonic() - began, 3)
            facts[f"{what}_exit_code"] = code
            facts[f"{what}_stderr_line"] = key_line(handle.instance_stderr(name))
        await handle.stop_instance(name)
        facts[what] = "failed"
        facts[f"{what}_kept"] = previous
        return "failed"
    facts[f"{what}_in_rotation_after_s"] = round(time.monotonic() - began, 3)
    for old in previous:
        drained = await handle.router.remove_backend(old, drain_s=drain)
        await handle.stop_instance(old)
        facts.setdefault(f"{what}_retired", []).append(
            {"instance": old, "served": drained.get("served")})
    facts[what] = "completed"
    return "completed"


async def rolling_restart(
    handle: StackHandle, env: Mapping[str, str], unset: Sequence[str] = (), *,
    drain: float, ready_timeout: float = 8.0,
) -> dict[str, Any]:
    """Replace every checkout instance, one at a time, with one running the stack's
    checkout env + `env` − `unset`: a configuration change that really meets traffic.
    Each old instance drains for up to `drain` seconds (see `drain_for`) before it stops.

    Stops at the first step that fails (the instances not yet replaced keep serving, so
    the stack may run mixed). Not safe to run twice at once on one stack: the caller
    serialises. Returns a JSON-able outcome: {"outcome": "completed"|"failed",
    "replaced": [[old, new], ...], "failure": text|None, "took_s", "steps": [facts...]}.
    """
    began = time.monotonic()
    olds = [i.name for i in handle.stack.instances if i.service == "checkout"]
    replaced: list[list[str]] = []
    steps: list[dict[str, Any]] = []
    failure: str | None = None if olds else "no checkout instance to replace"
    started: list[str] = []
    for old in olds:
        name = next_instance_name(handle, started)
        started.append(name)
        facts: dict[str, Any] = {}
        steps.append(facts)
        try:
            outcome = await roll_out(handle, name=name, env=env, unset=unset,
                                     ready_timeout=ready_timeout, drain=drain, facts=facts,
                                     what="restart", retire=[old])
        except LabError as exc:
            await _discard_unready(handle, name, facts)
            failure = f"{old} → {name}: {exc}"
            break
        except BaseException:  # cancelled: no half-started instance may join later
            await _discard_unready(handle, name, facts)
            raise
        if outcome != "completed":
            failure = f"{old} → {name}: {_failure_text(facts)}"
            break
        replaced.append([old, name])
    return {
        "outcome": "failed" if failure else "completed",
        "replaced": replaced,
        "failure": failure,
        "took_s": round(time.monotonic() - began, 3),
        "steps": steps,
    }


def _failure_text(facts: dict[str, Any]) -> str:
    text = str(facts.get("restart_failure", "failed"))
    if "restart_exit_code" in facts:
        text += f" with code {facts['restart_exit_code']}"
        if line := facts.get("restart_stderr_line"):
            text += f": {line}"
    elif facts.get("restart_last_health_check") is not None:
        text += f" (last health check: {facts['restart_last_health_check']})"
    return text


async def _discard_unready(handle: StackHandle, name: str, facts: dict[str, Any]) -> None:
    """After a step broke off: a new instance that never entered rotation leaves the
    router and stops (one that did is serving and stays: stopping it could leave the
    router with nobody while its predecessor drains)."""
    if "restart_in_rotation_after_s" in facts or facts.get("restart") == "failed":
        return
    if all(i.name != name for i in handle.stack.instances):
        return
    with contextlib.suppress(LabError):  # it may never have been registered
        await handle.router.remove_backend(name, drain_s=0)
    with contextlib.suppress(LabError):
        await handle.stop_instance(name)
