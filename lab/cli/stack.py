"""The commands about stacks the lab made or runs next to: `lab cleanup` (what a killed
run left), `lab images` (the docker backend's images), `lab compose-files`, and
`lab inject` / `lab revert` (into a `lab up` stack, or a compose stack for workshops)."""

from __future__ import annotations

import argparse
import sys
import time

from lab.cli import live
from lab.cli.common import EXIT_OK
from lab.errors import BackendError, UsageError
from lab.scenario.loader import find_scenario, load_scenario_file, scenario_paths
from lab.system.processes import is_alive
from lab.system.run_dirs import find_leftovers, remove_leftover, runs_root, tmpfs_roots


def cmd_cleanup(args: argparse.Namespace) -> int:
    from lab.stack import pgdata  # asyncpg comes with it: only the commands that need it

    leftovers = find_leftovers(include_active=args.all)
    for lo in leftovers:
        remove_leftover(lo)
        where = "".join(f", removed {d}" for d in lo.directories)  # run dir, tmpfs dir
        print(f"{lo.run_id}: stopped {len(lo.pids)} process(es){where}")
    # Half-built data sets of killed runs (their builder is gone); never a finished one.
    partials = pgdata.stale_partials()
    for path in partials:
        pgdata.remove_entry(path)
        print(f"removed the unfinished data set {path}")
    entries = pgdata.cache_entries() if args.cache else []
    for path in entries:
        size = pgdata.tree_bytes(path)
        pgdata.remove_entry(path)
        print(f"removed the cached data set {path} ({size / 2**20:.0f} MiB)")
    containers = docker_cleanup(args.all, args.cache)
    # A `lab up`/`lab drill` killed with SIGKILL leaves its live-<pid>.json behind.
    from lab.live.files import live_stacks

    stale = [f for f in live_stacks(include_stale=True) if not is_alive(f.pid)]
    for entry in stale:
        entry.remove()
        print(f"removed {entry.path} (its lab process {entry.pid} is gone)")
    if not leftovers and not containers and not partials and not entries and not stale:
        cached = (f", {pgdata.cache_root()}/pgdata-* and the docker data set volumes "
                  "(--cache)") if args.cache else ""
        tmpfs = ", ".join(f"{r}/chaoslab-cl-*" for r in tmpfs_roots())
        print(f"nothing to clean up (looked for lab processes, {runs_root()}/cl-*, {tmpfs}, "
              f"unfinished data sets{cached} and Docker objects labelled with a run id)")
    return EXIT_OK


def docker_cleanup(include_active: bool, cached: bool = False) -> int:
    """Docker objects of dead runs, and the data set volumes of their unfinished builds
    (all of them with `cached`); silent when there is no engine (nothing to clean)."""
    from lab.stack.docker import dataset, engine, leftover_runs, remove_run_objects

    try:
        client = engine()
    except BackendError:
        return 0
    runs = leftover_runs(client, include_active)
    for run_id, kinds in runs.items():
        removed = remove_run_objects(client, run_id)
        print(f"{run_id}: removed {removed} Docker object(s) ({', '.join(sorted(kinds))})")
    volumes = dataset.cache_volumes(client) if cached else dataset.unfinished_volumes(client)
    removed_volumes = 0
    for volume in volumes:
        state = "cached" if cached else "unfinished"
        try:
            dataset.remove_volume(volume)
        except BackendError as exc:  # the engine keeps a volume a container still uses
            print(f"kept the {state} data set volume {volume.name}: {exc}")
            continue
        removed_volumes += 1
        print(f"removed the {state} data set volume {volume.name}")
    return len(runs) + removed_volumes


def cmd_images(_: argparse.Namespace) -> int:
    from lab.stack.docker import engine
    from lab.stack.images import IMAGES, build_images

    def progress(msg: str) -> None:
        print(f"images: {msg}", file=sys.stderr, flush=True)

    timings = build_images(engine(), progress)
    for role, seconds in timings.items():
        print(f"  {role:<9} {seconds:6.1f} s  {IMAGES.get(role, '')}")
    return EXIT_OK


def cmd_inject(args: argparse.Namespace) -> int:
    from lab.live import workshop

    target = live.live_target(args.project, args.api)
    if target is not None:  # a `lab up` stack runs here: its control API holds the fault
        return live.inject_live(target, args.scenario)
    if args.scenario is None:
        raise UsageError("SCENARIO", "expected the scenario whose fault to inject: no `lab up` "
                         "stack runs here, so it goes into a compose stack")
    path = find_scenario(args.scenario)
    scenario = load_scenario_file(path)
    scenario.require_variants(args.variant)
    hold_for = live.duration_arg("--for", args.hold_for) if args.hold_for else None
    print(f"inject: attaching to the compose stack and injecting {scenario.fault.kind} "
          f"({scenario.name}/{args.variant})…", file=sys.stderr, flush=True)
    state = workshop.start(args.project, path, args.variant, scenario.fault.kind, hold_for)
    print(f"{state.kind} injected into compose project {state.project!r} "
          f"({state.scenario}, variant {state.variant}), held by pid {state.pid}")
    live.print_facts(state.evidence.get("facts", {}))
    until = (f"it reverts itself at {time.strftime('%H:%M:%S', time.localtime(state.revert_at))}"
             " or " if state.revert_at else "")
    print(f"{until}`lab revert` puts it back")
    return EXIT_OK


def cmd_revert(args: argparse.Namespace) -> int:
    from lab.live import workshop

    target = live.live_target(args.project, args.api)
    if target is not None:
        return live.revert_live(target)

    workshop.require_held(args.project)
    print("revert: asking the holder to revert the fault…", file=sys.stderr, flush=True)
    state = workshop.stop(args.project)
    held = (state.reverted_at or time.time()) - (state.injected_at or state.started_at)
    took = state.evidence.get("took_effect")
    print(f"{state.kind} reverted on compose project {state.project!r} after {held:.0f} s "
          f"(took effect: {'yes' if took else 'no'})")
    live.print_facts(state.evidence.get("facts", {}))
    return EXIT_OK


def cmd_compose_files(_: argparse.Namespace) -> int:
    from lab.stack.compose import write_files

    scenarios = [load_scenario_file(p) for p in scenario_paths()]
    changed = write_files(scenarios)
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("compose/ is up to date")
    return EXIT_OK
