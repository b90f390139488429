"""The `lab` command: the only place that prints and picks exit codes (EXIT_CODES, shown
by `lab --help`). One parser and one dispatch (every command's `func`), the commands by
group: lab.cli.check (list, check, schema), lab.cli.run (run, report, conditions,
worker, bench), lab.cli.stack (cleanup, images, compose-files, inject, revert),
lab.cli.live (up, drill); lab.cli.common is what they share."""

from __future__ import annotations

import argparse
import sys

from lab.cli import live
from lab.cli.check import cmd_check, cmd_list, cmd_schema
from lab.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_NOTHING_TO_ACT_ON,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_STACK,
    address_arg,
    count_arg,
    data_scale_arg,
    err,
    positive_int_arg,
    version,
)
from lab.cli.run import cmd_bench, cmd_conditions, cmd_report, cmd_run, cmd_worker
from lab.cli.stack import cmd_cleanup, cmd_compose_files, cmd_images, cmd_inject, cmd_revert
from lab.errors import (
    BackendError,
    FaultError,
    Interrupted,
    LabError,
    LoadError,
    ScenarioError,
    StateError,
    UsageError,
)
from lab.stack.backends import NAMES as BACKENDS

#: What callers (the entry point, tests, a wrapper script) may use of the CLI.
__all__ = ["EXIT_BAD_INPUT", "EXIT_CODES", "EXIT_FAILED", "EXIT_INCONCLUSIVE",
           "EXIT_NOTHING_TO_ACT_ON", "EXIT_OK", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_STACK",
           "UsageError", "build_parser", "main", "version"]


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
    p.add_argument("--backend", default=BACKENDS[0], choices=list(BACKENDS),
                   help="where the stack runs: local processes (default) or docker containers")
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report there")
    p.add_argument("--progress", choices=["auto", "live", "lines", "off"], default="auto",
                   help="live line on a terminal (auto default), a line per phase, or off")
    p.add_argument("--quiet", action="store_true", help="no progress (same as --progress off)")
    p.add_argument("--repeat", type=positive_int_arg, default=1, metavar="N",
                   help="run each variant N times and report its pass rate and each "
                   "expectation's min/median/max and margin (exit 1 if any run failed)")
    p.add_argument("--data-scale", type=data_scale_arg, default=1.0, metavar="F",
                   help="seed F × each scenario's carts (e.g. 0.4): a stand-in for a faster "
                   "machine; a scenario sized by its physics recalibrates its load")
    p.add_argument("--remote-workers", type=count_arg, default=0, metavar="N",
                   help="wait for N load-generator workers from other machines (each runs "
                   "`lab worker --master HOST:PORT`) and let them send the load")
    p.add_argument("--master", type=address_arg, metavar="HOST:PORT",
                   help="where the load generator's master listens for remote workers "
                   "(default 127.0.0.1 and a free port, printed when it starts)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("worker", help="join a `lab run --remote-workers` as a load-generator "
                       "worker: sends its share of the load from this machine")
    p.add_argument("--master", type=address_arg, required=True, metavar="HOST:PORT",
                   help="the master's address, as `lab run` printed it")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("conditions", help="run scenarios as normal, pinned to one CPU and "
                       "with 40%% of their data; print the verdicts side by side")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="name in scenarios/ or path (default: all)")
    p.add_argument("--out", default="results/conditions", metavar="DIR",
                   help="where each condition's results JSON and log go")
    p.add_argument("--data-scale", type=data_scale_arg, default=0.4, metavar="F",
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
    live.add_parsers(sub)
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
        code: int = args.func(args)
        return code
    except (ScenarioError, UsageError) as exc:
        err(str(exc))
        return EXIT_BAD_INPUT
    except StateError as exc:
        err(f"nothing to act on: {exc}")
        return EXIT_NOTHING_TO_ACT_ON
    except (BackendError, LoadError, FaultError) as exc:
        err(f"the stack could not run: {exc}")
        return EXIT_STACK
    except Interrupted as exc:
        err(str(exc))
        return EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT
    except LabError as exc:
        err(str(exc))
        return EXIT_STACK
    except BrokenPipeError:  # `lab … | head`: the reader left; nothing more to say
        sys.stderr.close()
        return EXIT_OK
