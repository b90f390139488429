"""The `lab` command: the one place that prints and picks exit codes (EXIT_CODES, shown
by `lab --help`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lab.backends.base import Backend
from lab.errors import (
    BackendError,
    FaultError,
    Interrupted,
    LabError,
    LoadError,
    NotFound,
    ScenarioError,
    StateError,
    UsageError,
    shown_path,
)
from lab.processes import is_alive
from lab.runs import find_leftovers, remove_leftover, runs_root, tmpfs_roots
from lab.scenario import Scenario
from lab.scenario_loader import find_scenario, load_scenario_file, scenario_paths

if TYPE_CHECKING:  # the run machinery is imported by the commands that run (see cmd_run)
    from lab.events import Progress, Run

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STACK, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
EXIT_NOTHING_TO_ACT_ON = 5
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
#: The whole CLI's exit codes, as `lab --help` and the README's "Exit codes" show them.
EXIT_CODES = f"""exit codes:
  {EXIT_OK}    every expectation held (or the command did what it was asked)
  {EXIT_FAILED}    an expectation failed
  {EXIT_BAD_INPUT}    bad input: a scenario file, a flag or argument, a file that is not there
  {EXIT_STACK}    the stack, the load or the fault machinery could not run
  {EXIT_INCONCLUSIVE}    a verdict was INCONCLUSIVE: the experiment did not happen as designed
  {EXIT_NOTHING_TO_ACT_ON}    nothing to act on: no drill runs, nothing is injected, no live stack
       answers (or the fault is already in)
  {EXIT_SIGINT}/{EXIT_SIGTERM} interrupted by Ctrl-C / SIGTERM, after everything was torn down"""


def _err(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr)


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, with SIGTERM treated like Ctrl-C: cancel, clean up, then raise."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        got: list[str] = []

        def on_term() -> None:
            got.append("SIGTERM")
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        try:
            return await coro
        except asyncio.CancelledError:
            if got:
                raise Interrupted("SIGTERM") from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        raise Interrupted("SIGINT (Ctrl-C)") from None


class _ProgressPrinter:
    """`live`: one rewriting line (the default on a terminal); `lines`: a line per phase
    change (for CI logs that want a heartbeat); `off`: nothing (the default elsewhere)."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":
            mode = "live" if sys.stderr.isatty() else "off"
        self.mode = mode
        self.last = ("", "")  # (head, phase) of the last line printed in `lines` mode
        self.repetition = ""  # " run 3/10" while `--repeat` runs a variant again

    def started(self, run: Run) -> None:
        self.repetition = f" run {run.run}/{run.repeat}" if run.repeat > 1 else ""

    def __call__(self, p: Progress) -> None:
        if self.mode == "off":
            return
        mix = " ".join(f"{k} {v}" for k, v in sorted(p.last_second.items())) or "-"
        head = f"[{p.index}/{p.count}] {p.scenario}/{p.variant}{self.repetition}"
        if p.phase in ("before", "fault", "after"):
            line = (f"{head}  {p.phase:<6} t={p.elapsed_s:4.0f}s  {p.remaining_s:3.0f}s left  "
                    f"last second: {mix}  (requests: {p.total_requests})")
        else:
            line = f"{head}  {p.phase}"
        if self.mode == "live":
            print(f"\r\x1b[2K{line}", end="" if p.phase != "stopping" else "\n",
                  file=sys.stderr, flush=True)
        elif (head, p.phase) != self.last:
            print(line, file=sys.stderr, flush=True)
        self.last = (head, p.phase)


def _backend(name: str) -> Backend:
    if name == "docker":
        from lab.backends.docker import DockerBackend

        return DockerBackend()
    from lab.backends.local import LocalBackend

    return LocalBackend()


def cmd_list(_: argparse.Namespace) -> int:
    problems = 0
    for path in scenario_paths():
        try:
            s = load_scenario_file(path)
        except ScenarioError as exc:
            print(f"{path.stem:<20} (invalid: {exc.problems[0]})")
            problems += 1
            continue
        print(f"{s.name:<20} {s.title}")
        print(f"{'':<20} variants: {', '.join(s.variants)}")
    return EXIT_BAD_INPUT if problems else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Validate scenario files as `lab run` would, starting nothing: one line per file."""
    bad = 0
    targets: list[str | Path] = list(args.scenarios) or list(scenario_paths())
    if not targets:
        raise ScenarioError("scenarios/", ["no scenario files found"])
    for target in targets:
        try:
            path = target if isinstance(target, Path) else find_scenario(target)
            scenario = load_scenario_file(path)
        except ScenarioError as exc:
            _err(str(exc))
            bad += 1
            continue
        print(f"{shown_path(path)}: ok ({len(scenario.variants)} variants: "
              f"{', '.join(scenario.variants)})")
    return EXIT_BAD_INPUT if bad else EXIT_OK


def _plan(args: argparse.Namespace) -> list[tuple[Scenario, list[str]]]:
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
                from lab.ports import free_port

                args.master = f"127.0.0.1:{free_port()}"
            scenario = scenario.model_copy(update={"load": scenario.load.model_copy(
                update={"remote_workers": remote, "master": args.master})})
        variants = args.variant or list(scenario.variants)
        scenario.require_variants(*variants)
        plan.append((scenario, variants))
    return plan


def cmd_run(args: argparse.Namespace) -> int:
    # Here, not at the top: they pull in aiohttp and asyncpg, which `lab check` and
    # `lab list` never need (a test holds `lab check` to that).
    from lab.events import RunEvents
    from lab.report.html import write_report
    from lab.report.stability import render_stability
    from lab.report.table import render_table
    from lab.runner import RunLoop
    from lab.stability import results_json, summarize

    plan = _plan(args)  # every file validated before anything starts
    if args.remote_workers:
        _err(f"each variant's load waits for {args.remote_workers} worker(s): run `lab worker "
             f"--master {args.master}` on each load machine")
    backend = _backend(args.backend)
    events = RunEvents()
    events.skipped.add_listener(lambda s: _err(f"skipping {s.scenario}: {s.reason}"))
    repeat: int = args.repeat
    loop = RunLoop(plan, backend, events, repeat)
    results = loop.results
    if not loop.runnable:
        if args.json:
            _write_json(Path(args.json), results.to_json())
        print(render_table(results))
        return EXIT_STACK  # nothing could run here; the reasons are above
    scenarios = {scenario.name: scenario for scenario, _ in loop.runnable}
    progress = _ProgressPrinter("off" if args.quiet else args.progress)
    events.started.add_listener(progress.started)
    events.progress.add_listener(progress)
    if args.json:  # after each run: nothing lost
        json_path = Path(args.json)
        events.variant_done.add_listener(
            lambda done: _write_json(json_path, results_json(done.results, scenarios, repeat)))
    events.run_failed.add_listener(
        lambda failed: _err(f"{failed.run.scenario.name}/{failed.run.variant}: {failed.error}"))
    loop.run(_run_async)
    if results.variants:
        print(render_table(results))
    if repeat > 1 and results.variants:
        print()
        print(render_stability(summarize(results.variants, scenarios, results.errors), repeat))
    for broke in results.errors:
        what = "REFUSED" if broke.kind == "refused" else "BROKE OFF"
        print(f"{broke.scenario}/{broke.variant} run {broke.run}: {what}: {broke.message}")
    if args.json:  # again: a run that broke off is named in it too
        _write_json(Path(args.json), results_json(results, scenarios, repeat))
        print(f"results written to {args.json}")
    if args.report and results.variants:
        page = write_report(results_json(results, scenarios, repeat), Path(args.report))
        print(f"report written to {page}")
    return _exit_code(results)


def _exit_code(results: Any) -> int:
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


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)


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


def cmd_cleanup(args: argparse.Namespace) -> int:
    from lab import pgdata  # asyncpg comes with it: only the commands that need it

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
    containers = _docker_cleanup(args.all)
    # A `lab up`/`lab drill` killed with SIGKILL leaves its live-<pid>.json behind.
    from lab.live.files import live_stacks

    stale = [f for f in live_stacks(include_stale=True) if not is_alive(f.pid)]
    for entry in stale:
        entry.remove()
        print(f"removed {entry.path} (its lab process {entry.pid} is gone)")
    if not leftovers and not containers and not partials and not entries and not stale:
        cached = f", {pgdata.cache_root()}/pgdata-* (--cache)" if args.cache else ""
        tmpfs = ", ".join(f"{r}/chaoslab-cl-*" for r in tmpfs_roots())
        print(f"nothing to clean up (looked for lab processes, {runs_root()}/cl-*, {tmpfs}, "
              f"unfinished data sets{cached} and Docker objects labelled with a run id)")
    return EXIT_OK


def _docker_cleanup(include_active: bool) -> int:
    """Docker objects of dead runs; silent when there is no engine (nothing to clean)."""
    from lab.backends.docker import engine, leftover_runs, remove_run_objects

    try:
        client = engine()
    except BackendError:
        return 0
    runs = leftover_runs(client, include_active)
    for run_id, kinds in runs.items():
        removed = remove_run_objects(client, run_id)
        print(f"{run_id}: removed {removed} Docker object(s) ({', '.join(sorted(kinds))})")
    return len(runs)


def cmd_images(_: argparse.Namespace) -> int:
    from lab.backends.docker import engine
    from lab.images import IMAGES, build_images

    def progress(msg: str) -> None:
        print(f"images: {msg}", file=sys.stderr, flush=True)

    timings = build_images(engine(), progress)
    for role, seconds in timings.items():
        print(f"  {role:<9} {seconds:6.1f} s  {IMAGES.get(role, '')}")
    return EXIT_OK


def cmd_inject(args: argparse.Namespace) -> int:
    from lab import cli_live, workshop

    target = cli_live.live_target(args.project, args.api)
    if target is not None:  # a `lab up` stack runs here: its control API holds the fault
        return cli_live.inject_live(target, args.scenario)
    if args.scenario is None:
        raise UsageError("SCENARIO", "expected the scenario whose fault to inject: no `lab up` "
                         "stack runs here, so it goes into a compose stack")
    path = find_scenario(args.scenario)
    scenario = load_scenario_file(path)
    scenario.require_variants(args.variant)
    hold_for = cli_live.duration_arg("--for", args.hold_for) if args.hold_for else None
    print(f"inject: attaching to the compose stack and injecting {scenario.fault.kind} "
          f"({scenario.name}/{args.variant})…", file=sys.stderr, flush=True)
    state = workshop.start(args.project, path, args.variant, scenario.fault.kind, hold_for)
    print(f"{state.kind} injected into compose project {state.project!r} "
          f"({state.scenario}, variant {state.variant}), held by pid {state.pid}")
    cli_live.print_facts(state.evidence.get("facts", {}))
    until = (f"it reverts itself at {time.strftime('%H:%M:%S', time.localtime(state.revert_at))}"
             " or " if state.revert_at else "")
    print(f"{until}`lab revert` puts it back")
    return EXIT_OK


def cmd_revert(args: argparse.Namespace) -> int:
    from lab import cli_live, workshop

    target = cli_live.live_target(args.project, args.api)
    if target is not None:
        return cli_live.revert_live(target)

    workshop.require_held(args.project)
    print("revert: asking the holder to revert the fault…", file=sys.stderr, flush=True)
    state = workshop.stop(args.project)
    held = (state.reverted_at or time.time()) - (state.injected_at or state.started_at)
    took = state.evidence.get("took_effect")
    print(f"{state.kind} reverted on compose project {state.project!r} after {held:.0f} s "
          f"(took effect: {'yes' if took else 'no'})")
    cli_live.print_facts(state.evidence.get("facts", {}))
    return EXIT_OK


def cmd_compose_files(_: argparse.Namespace) -> int:
    from lab.backends.compose import write_files

    scenarios = [load_scenario_file(p) for p in scenario_paths()]
    changed = write_files(scenarios)
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("compose/ is up to date")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from lab.scenario_schema import schema_text

    text = schema_text()
    if args.out is None:
        print(text, end="")
        return EXIT_OK
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as exc:
        raise UsageError("--out", f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from lab.bench import run_bench

    scenario = load_scenario_file(find_scenario(args.scenario))

    def progress(msg: str) -> None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    if args.live:
        from lab.bench_live import live_costs

        figures = _run_async(live_costs(scenario.name, args.live_window, progress))
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
    report = _run_async(run_bench(scenario, progress, hops_only=args.hops_only,
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


def cmd_conditions(args: argparse.Namespace) -> int:
    from lab.conditions import all_held, conditions, run_conditions, table

    for name in args.scenarios:  # refuse a bad file before minutes of load
        load_scenario_file(find_scenario(name))
    known = [c.name for c in conditions(args.data_scale)]
    unknown = [c for c in args.only or [] if c not in known]
    if unknown:
        raise UsageError("--only", f"no condition named {', '.join(unknown)} "
                         f"(known: {', '.join(known)})")

    def progress(msg: str) -> None:
        print(f"conditions: {msg}", file=sys.stderr, flush=True)

    out = Path(args.out).resolve()  # the child runs elsewhere (lab.conditions)
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


def _count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _address(text: str) -> str:
    """HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:5557, "
                                         f"got {text!r}")
    return text


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


def _data_scale(text: str) -> float:
    """--data-scale: a share of the scenario's carts, above 0 and at most 4."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.4, got {text!r}") from None
    if not 0 < value <= 4:
        raise argparse.ArgumentTypeError(f"expected a share above 0 and at most 4, got {value:g}")
    return value


def _positive_int(text: str) -> int:
    """--repeat: a whole number of runs, at least one (argparse turns a refusal into exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of runs, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 run, got {value}")
    return value


def version() -> str:
    """The installed package's version; pyproject.toml's when run from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("chaoslab")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, ValueError, KeyError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lab", description="Reproduce the incidents behind HTTP 500s and prove the fixes.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the scenarios, with a one-line title each")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("check", help="validate scenario files (all when none is named); "
                       "starts nothing")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="name in scenarios/ or path")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("run", help="run scenarios (all when none is named), every variant")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="name in scenarios/ or path")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="run only this variant (repeatable)")
    p.add_argument("--json", metavar="PATH", help="write the results (schema: docs/results.md)")
    p.add_argument("--backend", default="local", choices=["local", "docker"],
                   help="where the stack runs: local processes (default) or docker containers")
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report there")
    p.add_argument("--progress", choices=["auto", "live", "lines", "off"], default="auto",
                   help="live line on a terminal (auto default), a line per phase, or off")
    p.add_argument("--quiet", action="store_true", help="no progress (same as --progress off)")
    p.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                   help="run each variant N times and report its pass rate and each "
                   "expectation's min/median/max and margin (exit 1 if any run failed)")
    p.add_argument("--data-scale", type=_data_scale, default=1.0, metavar="F",
                   help="seed F × each scenario's carts (e.g. 0.4): a stand-in for a faster "
                   "machine; a scenario sized by its physics recalibrates its load")
    p.add_argument("--remote-workers", type=_count, default=0, metavar="N",
                   help="wait for N load-generator workers from other machines (each runs "
                   "`lab worker --master HOST:PORT`) and let them send the load")
    p.add_argument("--master", type=_address, metavar="HOST:PORT",
                   help="where the load generator's master listens for remote workers "
                   "(default 127.0.0.1 and a free port, printed when it starts)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("worker", help="join a `lab run --remote-workers` as a load-generator "
                       "worker: sends its share of the load from this machine")
    p.add_argument("--master", type=_address, required=True, metavar="HOST:PORT",
                   help="the master's address, as `lab run` printed it")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("conditions", help="run scenarios as normal, pinned to one CPU and "
                       "with 40%% of their data; print the verdicts side by side")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="name in scenarios/ or path (default: all)")
    p.add_argument("--out", default="results/conditions", metavar="DIR",
                   help="where each condition's results JSON and log go")
    p.add_argument("--data-scale", type=_data_scale, default=0.4, metavar="F",
                   help="the data share of the faster-machine condition (default 0.4)")
    p.add_argument("--only", action="append", metavar="CONDITION",
                   help="run only this condition (normal, one-core, data-40; repeatable)")
    p.set_defaults(func=cmd_conditions)
    p = sub.add_parser("report", help="write the HTML report of saved results (--json)")
    p.add_argument("results", metavar="RESULTS.json")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("cleanup", help="remove what a killed run left (processes, data dirs)")
    p.add_argument("--all", action="store_true",
                   help="also stop runs whose owner is still alive")
    p.add_argument("--cache", action="store_true",
                   help="also remove the cached seeded data sets (CHAOSLAB_CACHE_DIR, "
                   "default /var/cache/chaoslab as root); the next run of each size "
                   "builds its set again")
    p.set_defaults(func=cmd_cleanup)
    p = sub.add_parser("images", help="build the docker backend's images (offline, make images)")
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("inject", help="inject a scenario's fault into a `lab up` stack, or a "
                       "compose stack started by hand (workshops); held until `lab revert`")
    p.add_argument("scenario", nargs="?", metavar="SCENARIO",
                   help="name in scenarios/ or path (optional on a `lab up` stack)")
    p.add_argument("--variant", default="baseline",
                   help="whose fault parameters to use (default: baseline)")
    p.add_argument("--project", help="compose project (default: the only one running)")
    p.add_argument("--api", metavar="URL", help="a `lab up` stack's control API (default: "
                   "the one running here, else the compose project)")
    p.add_argument("--for", dest="hold_for", metavar="DURATION",
                   help="revert by itself after this long (e.g. 90s, 5m)")
    p.set_defaults(func=cmd_inject)
    p = sub.add_parser("revert", help="revert what `lab inject` injected; show its evidence")
    p.add_argument("--project", help="compose project (default: the only one injected)")
    p.add_argument("--api", metavar="URL", help="a `lab up` stack's control API")
    p.set_defaults(func=cmd_revert)
    from lab import cli_live

    cli_live.add_parsers(sub)
    p = sub.add_parser("compose-files", help="regenerate compose/ from the scenarios and "
                       "the docker backend's container specs (make compose-files)")
    p.set_defaults(func=cmd_compose_files)
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files (editors "
                       "read schema/scenario.schema.json through each file's first line)")
    p.add_argument("--out", metavar="FILE", help="write it there instead (make schema)")
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("bench", help="measure the lab's own costs (make bench)")
    p.add_argument("--scenario", default="pool-exhaustion", help="stack and seed to use")
    p.add_argument("--hops-only", action="store_true",
                   help="only the fault proxy's and the router's per-request overhead")
    p.add_argument("--generator", action="store_true",
                   help="only the load generator's ceiling: one worker's and two workers' "
                   "highest rate held at 98 %% of the schedule (recorded for load.workers: auto)")
    p.add_argument("--docker", action="store_true",
                   help="also the docker backend's stack start/teardown, against local")
    p.add_argument("--live", action="store_true",
                   help="only `lab up`: time to ready, and the lab process's CPU without "
                   "and with the dashboard's 1 Hz refresh")
    p.add_argument("--live-window", type=float, default=30.0, metavar="S",
                   help="seconds per CPU measurement of --live (default 30)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int
        if getattr(args, "live_cmd", None) is not None:
            from lab import cli_live

            command = cli_live.cmd_up if args.live_cmd == "up" else cli_live.cmd_drill
            code = command(args, _backend, _run_async)
        else:
            code = args.func(args)
        return code
    except (ScenarioError, UsageError) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except StateError as exc:
        _err(f"nothing to act on: {exc}")
        return EXIT_NOTHING_TO_ACT_ON
    except (BackendError, LoadError, FaultError) as exc:
        _err(f"the stack could not run: {exc}")
        return EXIT_STACK
    except Interrupted as exc:
        _err(str(exc))
        return EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT
    except LabError as exc:
        _err(str(exc))
        return EXIT_STACK
    except BrokenPipeError:  # `lab … | head`: the reader left; nothing more to say
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
