"""`lab run` and the commands around a run: `lab report` (a saved run's HTML),
`lab conditions` (the run on machine stand-ins), `lab worker` (a load machine of a run)
and `lab bench` (the lab's own costs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lab.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_STACK,
    ProgressPrinter,
    err,
    run_async,
    write_json,
)
from lab.errors import Interrupted, NotFound, ScenarioError, UsageError
from lab.scenario.loader import find_scenario, load_scenario_file, scenario_paths
from lab.scenario.models import Scenario
from lab.stack.backends import backend_named


def run_plan(args: argparse.Namespace) -> list[tuple[Scenario, list[str]]]:
    paths = [find_scenario(n) for n in args.scenarios] or scenario_paths()
    if not paths:
        raise ScenarioError("scenarios/", ["no scenario files found"])
    plan = []
    scale: float = getattr(args, "data_scale", 1.0)
    for path in paths:
        scenario = load_scenario_file(path)
        if scale != 1.0:
            scenario = scenario.with_data_scale(scale)
        remote = getattr(args, "remote_workers", 0)
        if remote:
            if not args.master:  # chosen here, so it can be said before the load starts
                from lab.system.ports import free_port

                args.master = f"127.0.0.1:{free_port()}"
            scenario = scenario.model_copy(update={"load": scenario.load.model_copy(
                update={"remote_workers": remote, "master": args.master})})
        variants = args.variant or list(scenario.variants)
        scenario.require_variants(*variants)
        plan.append((scenario, variants))
    return plan


def declaration_problems(plan: list[tuple[Scenario, list[str]]], backend: str) -> None:
    """What a backend needs of an own-service declaration that the file alone cannot say
    (the docker backend runs it from a compose file): exit 2 before anything starts."""
    if backend != "docker":
        return
    from lab.stack.docker.own import docker_problems
    from lab.stack.wiring import own_stack

    for scenario, _variants in plan:
        own = own_stack(scenario)
        if own is not None and (problems := docker_problems(own)):
            raise ScenarioError(scenario.source or scenario.name, problems)


def cmd_run(args: argparse.Namespace) -> int:
    # Here, not at the top: they pull in aiohttp and asyncpg, which `lab check` and
    # `lab list` never need (a test holds `lab check` to that).
    from lab.report.html import write_report
    from lab.report.stability import render_stability
    from lab.report.table import render_table
    from lab.run.events import RunEvents
    from lab.run.runner import RunLoop
    from lab.verdict.stability import results_json, summarize

    plan = run_plan(args)  # every file validated before anything starts
    if args.remote_workers:
        err(f"each variant's load waits for {args.remote_workers} worker(s): run `lab worker "
             f"--master {args.master}` on each load machine")
    backend = backend_named(args.backend)
    declaration_problems(plan, backend.name)
    events = RunEvents()
    events.skipped.add_listener(lambda s: err(f"skipping {s.scenario}: {s.reason}"))
    repeat: int = args.repeat
    loop = RunLoop(plan, backend, events, repeat)
    results = loop.results
    if not loop.runnable:
        if args.json:
            write_json(Path(args.json), results.to_json())
        print(render_table(results))
        return EXIT_STACK  # nothing could run here; the reasons are above
    scenarios = {scenario.name: scenario for scenario, _ in loop.runnable}
    progress = ProgressPrinter("off" if args.quiet else args.progress)
    events.started.add_listener(progress.started)
    events.progress.add_listener(progress)
    if args.json:  # after each run: nothing lost
        json_path = Path(args.json)
        events.variant_done.add_listener(
            lambda done: write_json(json_path, results_json(done.results, scenarios, repeat)))
    events.run_failed.add_listener(
        lambda failed: err(f"{failed.run.scenario.name}/{failed.run.variant}: {failed.error}"))
    loop.run(run_async)
    if results.variants:
        print(render_table(results))
    if repeat > 1 and results.variants:
        print()
        print(render_stability(summarize(results.variants, scenarios, results.errors), repeat))
    for broke in results.errors:
        what = "REFUSED" if broke.kind == "refused" else "BROKE OFF"
        print(f"{broke.scenario}/{broke.variant} run {broke.run}: {what}: {broke.message}")
    if args.json:  # again: a run that broke off is named in it too
        write_json(Path(args.json), results_json(results, scenarios, repeat))
        print(f"results written to {args.json}")
    if args.report and results.variants:
        page = write_report(results_json(results, scenarios, repeat), Path(args.report))
        print(f"report written to {page}")
    return exit_code(results)


def exit_code(results: Any) -> int:
    """The worst of what happened: a run that broke off (3, or 2 when the scenario refused
    the load as this machine cannot carry it), a failed expectation (1), an inconclusive
    verdict (4); with --repeat, one run of any variant decides (k of N < N of N)."""
    kinds = {e.kind for e in results.errors}
    if "error" in kinds:
        return EXIT_STACK
    if "refused" in kinds:
        return EXIT_BAD_INPUT
    if results.failed:
        return EXIT_FAILED
    if results.inconclusive:
        return EXIT_INCONCLUSIVE
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    source = Path(args.results)
    if not source.exists():
        raise NotFound(args.results, "results file")
    try:
        doc = json.loads(source.read_text())
        variants = doc["variants"]
        if not isinstance(variants, list) or not variants:
            raise ValueError("no variants in it")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(args.results, "expected a results file of `lab run --json`, got "
                         f"something else ({type(exc).__name__}: {exc})") from None
    from lab.report.html import write_report

    page = write_report(doc, Path(args.directory))
    print(f"report written to {page}")
    return EXIT_OK


def cmd_conditions(args: argparse.Namespace) -> int:
    from lab.run.conditions import all_held, conditions, run_conditions, table

    for name in args.scenarios:  # refuse a bad file before minutes of load
        load_scenario_file(find_scenario(name))
    known = [c.name for c in conditions(args.data_scale)]
    unknown = [c for c in args.only or [] if c not in known]
    if unknown:
        raise UsageError("--only", f"no condition named {', '.join(unknown)} "
                         f"(known: {', '.join(known)})")

    def progress(msg: str) -> None:
        print(f"conditions: {msg}", file=sys.stderr, flush=True)

    out = Path(args.out).resolve()  # the child runs elsewhere (lab.run.conditions)
    runs = run_conditions(args.scenarios, out, args.data_scale, progress,
                          only=args.only or ())
    rows = table(runs)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for run in runs:
        overhead = run.median_overhead_s
        print(f"{run.condition.name}: {run.condition.what}; {run.wall_s:.0f} s against "
              f"{run.load_windows_s:.0f} s of load windows "
              f"({run.wall_s / max(run.load_windows_s, 1e-9):.2f}×"
              + (f", median overhead per variant {overhead:.1f} s" if overhead is not None
                 else "")
              + f"); results in {out / (run.condition.name + '.json')}")
    held = all_held(runs)
    print("every baseline reproduced and every mitigation held in every condition" if held
          else "verdicts differ between conditions: see the FAIL cells")
    return EXIT_OK if held else EXIT_FAILED


def cmd_worker(args: argparse.Namespace) -> int:
    """A Locust worker with the lab's locustfile, joined to a master elsewhere: the load
    spec, its share of the schedule and the target come from the master; its records go
    back to it. Runs until the master's run ends (or Ctrl-C)."""
    import subprocess

    from lab.load.locust_process import LOCUSTFILE, worker_argv

    host, _, port = args.master.rpartition(":")
    print(f"worker: joining the master at {args.master}; Ctrl-C leaves", file=sys.stderr,
          flush=True)
    try:
        return subprocess.call([sys.executable, "-m", "locust",
                                *worker_argv(str(LOCUSTFILE), host.strip("[]"), int(port))])
    except KeyboardInterrupt:
        raise Interrupted("SIGINT (Ctrl-C)") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from lab.run.bench import run_bench

    scenario = load_scenario_file(find_scenario(args.scenario))

    def progress(msg: str) -> None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    if args.live:
        from lab.run.bench_live import live_costs

        figures = run_async(live_costs(scenario.name, args.live_window, progress))
        print("chaoslab bench --live (one run)")
        print(f"  lab up to ready                      {figures['up_to_ready_s']:.1f} s")
        for key, what in (("cpu_share_idle", "lab process CPU, no dashboard"),
                          ("cpu_share_dashboard", "lab process CPU, dashboard at 1 Hz"),
                          ("cpu_share_fault_dashboard", "… during the fault")):
            print(f"  {what:<37}{figures[key]:.1%} of one core")
        extra = figures["cpu_share_dashboard"] - figures["cpu_share_idle"]
        print(f"  the dashboard's cost                 {extra:+.1%} of one core "
              f"({figures['dashboard_calls']:.0f} calls of /api/live)")
        return EXIT_OK
    report = run_async(run_bench(scenario, progress, hops_only=args.hops_only,
                                  docker=args.docker, generator_only=args.generator))
    width = max(len(k) for k in report.figures)
    print("chaoslab bench (one run; compare ratios, not absolute times)")
    for key, value in report.figures.items():
        print(f"  {key:<{width}}  {value:g}")
    for key, note in report.notes.items():
        print(f"  {key}: {note}")
    if report.goals:
        print("the lab's own costs against their goals (one run)")
        for goal in report.goals:
            print(f"  {'ok  ' if goal.met else 'MISS'} {goal.what}: {goal.measured:g} {goal.unit} "
                  f"(goal <= {goal.limit:g} {goal.unit})")
    return EXIT_OK
