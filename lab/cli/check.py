"""`lab list`, `lab check` and `lab schema`: the scenario files, read and validated,
starting nothing (no aiohttp or asyncpg is imported: a test holds `lab check` to it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lab.cli.common import EXIT_BAD_INPUT, EXIT_OK, err
from lab.errors import ScenarioError, UsageError, shown_path
from lab.scenario.loader import find_scenario, load_scenario_file, scenario_paths


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
            err(str(exc))
            bad += 1
            continue
        print(f"{shown_path(path)}: ok ({len(scenario.variants)} variants: "
              f"{', '.join(scenario.variants)})")
    return EXIT_BAD_INPUT if bad else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from lab.scenario.schema import schema_text

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
