"""The live commands of `lab` (`up`, `drill [ACTION]`, and `inject`/`revert` against a
live stack): their parsers and what they print."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.cli.common import EXIT_OK, run_async
from lab.errors import NotFound, StateError, UsageError
from lab.scenario.loader import find_scenario, load_scenario_file, scenario_paths
from lab.scenario.units import parse_duration
from lab.stack.backends import backend_named

if TYPE_CHECKING:
    from lab.live.session import LiveSession

#: `lab drill`'s --results when none is given: what `make demo` writes.
DEFAULT_RESULTS = "results/latest.json"
STATUS_EVERY_S = 10.0
PHASES = {"stack": "starting the stack", "calibrating": "calibrating the load",
          "load": "starting the load", "ready": "ready"}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def duration_arg(flag: str, text: str) -> float:
    """A duration flag's value in seconds; a UsageError naming the flag otherwise."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(flag, str(exc)) from None


def _player(given: str | None) -> str:
    """Who plays a drill being started: --player, else the login name."""
    return given or os.environ.get("USER") or "player"


def _phase_printer(began: float) -> Any:
    def show(phase: str) -> None:
        if phase in PHASES:
            _say(f"  [{time.monotonic() - began:5.1f}s] {PHASES[phase]}")
    return show


def _mix_line(session: LiveSession, seconds: int) -> str:
    recent = session.series.last(seconds)
    counts: Counter[str] = Counter()
    for s in recent:
        counts.update(s["counts"])
    total = sum(counts.values())
    p99 = max((s["p99_ms"] for s in recent if s["p99_ms"] is not None), default=None)
    mix = " ".join(f"{k} {v}" for k, v in counts.most_common()) or "no answers"
    rate = total / max(1, len(recent))
    worst = f", worst p99 {p99:.0f} ms" if p99 is not None else ""
    return f"last {len(recent)} s: {rate:.0f} req/s — {mix}{worst}"


# ---------------------------------------------------------------------------- lab up


def cmd_up(args: argparse.Namespace) -> int:
    from lab.live.api import control_app, serve
    from lab.live.files import LiveFile
    from lab.live.session import LiveSession

    path = find_scenario(args.scenario)
    scenario = load_scenario_file(path)
    scenario.require_variants(args.variant)
    hold = duration_arg("--for", args.hold_for)
    backend = backend_named(args.backend)

    async def up() -> None:
        began = time.monotonic()
        _say(f"up: {scenario.name} ({args.variant}) on {backend.name}")
        async with LiveSession(scenario, args.variant, backend, hold_s=hold,
                               on_phase=_phase_printer(began)) as session:
            runner, api = await serve(control_app(session), args.port)
            live = LiveFile(os.getpid(), api, scenario.name, args.variant, backend.name, False)
            try:
                live.save()
                print(f"ready in {time.monotonic() - began:.1f} s")
                print(f"  shop:      {session.urls()['shop']}")
                print(f"  dashboard: {api}/")
                print(f"  control:   {api}/api/status")
                print(f"  fault:     lab inject / lab revert ({scenario.fault.kind})")
                print("  Ctrl-C stops the load and tears the stack down", flush=True)
                await _hold(session, hold)
            finally:
                live.remove()
                await runner.cleanup()
        _say("up: stopped; everything it started is gone")

    run_async(up())
    return EXIT_OK


async def _hold(session: LiveSession, hold_s: float) -> None:
    end = time.monotonic() + hold_s
    next_line = time.monotonic() + STATUS_EVERY_S
    while time.monotonic() < end:
        session.check_alive()
        if time.monotonic() >= next_line:
            state = session.fault_state if session.fault_state != "none" else "no fault"
            _say(f"  {time.strftime('%H:%M:%S')} {state}; {_mix_line(session, 10)}")
            next_line += STATUS_EVERY_S
        await asyncio.sleep(0.5)


# ------------------------------------------------------------ inject/revert on lab up


def live_target(project: str | None, api: str | None) -> Any:
    """The live stack `lab inject`/`lab revert` act on, or None for compose."""
    from lab.live.client import LiveClient, find_live

    if project is not None:
        return None
    live = find_live(api, drill=False)
    if live is None:
        if api is not None:
            raise StateError(f"no live stack at {api}")
        return None
    return live, LiveClient(live.api)


def _fault_state(client: Any) -> dict[str, Any]:
    fault = client.get("/api/status").get("fault") or {}
    return fault if isinstance(fault, dict) else {}


def inject_live(target: Any, scenario_arg: str | None) -> int:
    live, client = target
    if scenario_arg is not None and live.scenario is not None:
        name = load_scenario_file(find_scenario(scenario_arg)).name
        if name != live.scenario:
            raise UsageError(scenario_arg, f"the live stack at {live.api} runs "
                             f"{live.scenario}, not {name}: stop it and `lab up` the other "
                             "scenario, or name none")
    current = _fault_state(client)
    if current.get("state") == "injected":
        raise StateError(f"{current.get('kind')} is already injected into the live stack at "
                         f"{live.api}: `lab revert` first")
    _say(f"inject: asking the live stack at {live.api}…")
    doc = client.post("/api/inject")
    fault = doc["fault"]
    print(f"{fault['kind']} injected into the live stack ({live.scenario}, variant "
          f"{live.variant}); `lab revert` puts it back")
    print_facts(doc.get("evidence", {}).get("facts", {}))
    return EXIT_OK


def revert_live(target: Any) -> int:
    live, client = target
    if _fault_state(client).get("state") != "injected":
        raise StateError(f"nothing is injected into the live stack at {live.api}: "
                         "`lab inject` first")
    _say(f"revert: asking the live stack at {live.api}…")
    doc = client.post("/api/revert")
    fault = doc["fault"]
    held = (fault.get("reverted_at") or time.time()) - (fault.get("injected_at") or time.time())
    took = doc.get("evidence", {}).get("took_effect")
    print(f"{fault['kind']} reverted on the live stack after {held:.0f} s "
          f"(took effect: {'yes' if took else 'no'})")
    print_facts(doc.get("evidence", {}).get("facts", {}))
    return EXIT_OK


def print_facts(facts: dict[str, Any]) -> None:
    """A fault's evidence, one fact a line; the long ones stay in the JSON results."""
    for key, value in facts.items():
        if key not in ("definition", "schedule", "changes"):
            print(f"  {key}: {value}")


# ------------------------------------------------------------------------- lab drill


def _pool(text: str | None) -> list[Path]:
    if not text:
        return scenario_paths()
    return [find_scenario(name.strip()) for name in text.split(",") if name.strip()]


def between_arg(text: str) -> tuple[float, float]:
    low, _, high = text.partition("..")
    first = duration_arg("--inject-between", low)
    second = duration_arg("--inject-between", high or low)
    if second < first:
        raise UsageError("--inject-between", f"expected MIN..MAX with MIN <= MAX, got {text!r}")
    return first, second


def results_arg(given: str | None) -> Path | None:
    """`lab drill --results`: a file given that is not there is an error; the default's
    absence is said at once, since the debrief would only show it at the end. An empty
    --results '' asks for none: the mitigations are not measured, and that is no news."""
    if given == "":
        return None
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise NotFound(given, "results file")
        return path
    path = Path(DEFAULT_RESULTS)
    if not path.is_file():
        _say(f"drill: no results file at {DEFAULT_RESULTS}, so the debrief will show the "
             f"mitigations as not measured; run `lab run --json {DEFAULT_RESULTS}` first "
             "(or pass --results PATH)")
    return path


def cmd_drill(args: argparse.Namespace) -> int:
    if args.action is not None:
        return _drill_action(args)
    from lab.live.api import control_app, serve
    from lab.live.drill import Drill, DrillPlan
    from lab.live.files import LiveFile
    from lab.live.session import LiveSession
    from lab.run.runner import skip_reason

    # Every flag checked before anything starts.
    between = between_arg(args.inject_between)
    limit = duration_arg("--limit", args.limit)
    linger = duration_arg("--linger", args.linger)
    results = results_arg(args.results)
    player = _player(args.player)
    backend = backend_named(args.backend)
    everything = [load_scenario_file(p) for p in scenario_paths()]
    pool = [load_scenario_file(p) for p in _pool(args.pool)]
    runnable = [s for s in pool if skip_reason(s, backend) is None]
    for s in pool:
        if s not in runnable:
            _say(f"drill: {s.name} left out of the pool: {skip_reason(s, backend)}")
    plan = DrillPlan.pick(runnable, args.seed, between)
    out = Path(args.out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{player}"
    causes = sorted({s.drill_cause() for s in [*everything, *pool]})

    async def drill() -> None:
        began = time.monotonic()
        _say(f"drill: seed {args.seed}, player {player}, {len(runnable)} possible "
             f"incidents; the stack starts now")
        async with LiveSession(plan.scenario, "baseline", backend, hold_s=limit + 3600,
                               on_phase=_phase_printer(began)) as session:
            game = Drill(session, plan, seed=args.seed, player=player, causes=causes,
                         pool=[s.name for s in runnable], limit_s=limit, out_dir=out,
                         results_path=results)
            runner, api = await serve(control_app(session, game), args.port)
            live = LiveFile(os.getpid(), api, None, None, backend.name, True)
            try:
                live.save()
                print(f"drill ready in {time.monotonic() - began:.1f} s: the incident starts "
                      f"at an unannounced moment; it ends at the latest {limit:.0f} s after")
                print(f"  shop:      {session.urls()['shop']}")
                print(f"  dashboard: {api}/")
                print("  act:       lab drill diagnose CAUSE | mitigate SWITCH=VALUE… | hint | "
                      "rollback | end")
                print(f"  causes:    {', '.join(causes)}", flush=True)
                await game.run()
                if game.score is not None:
                    print(f"drill over: the incident was {plan.scenario.name}")
                    for line in game.score.lines():
                        print(f"  {line}")
                print(f"  debrief: {out / 'debrief.html'} (and {api}/debrief)", flush=True)
                live.remove()
                if linger > 0:
                    _say(f"  the debrief is served for {linger:.0f} s; Ctrl-C to leave now")
                    await asyncio.sleep(linger)
            finally:
                live.remove()
                await runner.cleanup()

    run_async(drill())
    return EXIT_OK


def _drill_action(args: argparse.Namespace) -> int:
    from lab.live.client import LiveClient, find_live

    live = find_live(args.api, drill=True)
    if live is None:
        raise StateError("no drill runs here: start one with `lab drill` (or pass --api URL)")
    client = LiveClient(live.api)
    # No --player: the drill records the player it was started with.
    body: dict[str, Any] = {} if args.player is None else {"player": args.player}
    doc = client.get("/api/drill")
    if args.action not in ("status", "end") and doc.get("ended"):
        raise StateError(f"the drill at {live.api} has ended: its debrief is at {live.api}/"
                         "debrief")
    if args.action == "hint" and doc.get("hints_exhausted"):
        raise StateError(f"no hints left (all {doc.get('hints_used')} used)")
    if args.action == "status":
        print(f"player {doc['player']}, {doc['elapsed_s']} s in, hints used "
              f"{doc['hints_used']}, switches set: {doc['overrides'] or 'none'}")
        print(f"causes: {', '.join(doc['causes'])}")
        return EXIT_OK
    if args.action == "diagnose":
        if len(args.values) != 1:
            raise UsageError("diagnose", f"expected exactly one CAUSE (one of: "
                             f"{', '.join(doc.get('causes') or [])}), got {len(args.values)}")
        body["cause"] = args.values[0]
    if args.action == "mitigate":
        if not args.values:
            raise UsageError("mitigate", "expected SWITCH=VALUE…, e.g. "
                             "DB_ACQUIRE_TIMEOUT_MS=250")
        switches = {}
        for item in args.values:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise UsageError("mitigate", f"expected SWITCH=VALUE, got {item!r}")
            switches[name] = value
        body["switches"] = switches
        _say("mitigate: rolling restart of the checkout with "
             + " ".join(f"{k}={v}" for k, v in switches.items()) + "…")
    if args.action == "rollback":
        _say("rollback: rolling restart of the checkout with its original configuration…")
    doc = client.post(f"/api/drill/{args.action}", body)
    if args.action == "diagnose":
        print(f"diagnosis recorded: {doc['cause']} (you learn if it was right at the debrief)")
    elif args.action == "hint":
        print(f"hint {doc['hints_used']}: {doc['hint']}")
    elif args.action in ("mitigate", "rollback"):
        restart = doc.get("restart", {})
        print(f"rolling restart {restart.get('outcome')} in {restart.get('took_s')} s; "
              f"switches now: {doc.get('overrides') or 'the original configuration'}")
        if restart.get("failure"):
            print(f"  failure: {restart['failure']}")
    else:  # end
        score = doc.get("score") or {}
        print(f"drill over: the incident was {doc.get('scenario')}; "
              f"{score.get('points')} points")
        print(f"  debrief: {doc.get('record', '').replace('drill.json', 'debrief.html')}")
    return EXIT_OK


# ---------------------------------------------------------------------------- parsers


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("up", help="a scenario's stack under steady load until Ctrl-C, with a "
                       "control API and a live dashboard (rehearsals)")
    p.add_argument("scenario", metavar="SCENARIO", help="name in scenarios/ or path")
    p.add_argument("--variant", default="baseline", help="whose configuration (default: "
                   "baseline)")
    p.add_argument("--backend", default="local", choices=["local", "docker"])
    p.add_argument("--port", type=int, default=8765, help="the control API's and dashboard's "
                   "port on 127.0.0.1 (default 8765; 0: any free port)")
    p.add_argument("--for", dest="hold_for", default="4h", metavar="DURATION",
                   help="stop by itself after this long (default 4h)")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("drill", help="a graded exercise: a hidden incident at an unannounced "
                       "moment; with ACTION, act on the running drill")
    p.add_argument("action", nargs="?", choices=["diagnose", "mitigate", "hint", "rollback",
                                                  "end", "status"],
                   help="act on the running drill (none: start one)")
    p.add_argument("values", nargs="*", metavar="ARG", help="CAUSE, or SWITCH=VALUE…")
    p.add_argument("--pool", help="comma-separated scenarios to pick from (default: all)")
    p.add_argument("--seed", type=int, default=1, help="picks the incident and its moment "
                   "(same seed, same drill)")
    p.add_argument("--player", default=None,
                   help="who plays (starting a drill: default $USER); with ACTION, who acts "
                   "(default: the drill's own player)")
    p.add_argument("--backend", default="local", choices=["local", "docker"])
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--api", help="the drill's control API (default: the one running here)")
    p.add_argument("--inject-between", default="20s..60s", metavar="MIN..MAX",
                   help="the incident starts at a seeded moment in this range after ready")
    p.add_argument("--limit", default="5m", metavar="DURATION",
                   help="the drill ends this long after the incident started (default 5m)")
    p.add_argument("--linger", default="5m", metavar="DURATION",
                   help="keep serving the debrief this long after the end (default 5m)")
    p.add_argument("--out", default="results/drills", metavar="DIR",
                   help="where drill.json and debrief.html go (default results/drills)")
    p.add_argument("--results", default=None, metavar="PATH",
                   help="a `lab run --json` file: what each mitigation did, for the debrief "
                   f"(default {DEFAULT_RESULTS}, said at the start when it is missing; "
                   "'' for none)")
    p.set_defaults(func=cmd_drill)
