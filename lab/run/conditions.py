"""`lab conditions`: the same scenarios on machines unlike this one, verdicts side by side.

A verdict is worth something only if it holds on the user's machine. Three stand-ins:

- `normal`: as the machine is;
- `one-core`: every process of the run pinned to one CPU (what `taskset -c 0` does) — a
  slower machine, where the healthy path must still hold;
- `data-40`: the data set cut to 40 % (`lab run --data-scale 0.4`), so the slow path is
  about 2.5× cheaper — a faster machine, where a scenario sized by its physics must
  still reproduce because the calibration raises the arrival rate to compensate.

Each condition is one `lab run` in a child process (so the pinning covers Postgres, the
services and Locust, which inherit it) writing its own results JSON; this module reads
them back and lines the verdicts up. A run is stopped with the parent: Ctrl-C reaches the
child through the terminal, SIGTERM is passed on, and the child cleans up as `lab run`
always does.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.system.processes import REPO_ROOT


@dataclass(frozen=True)
class Condition:
    name: str
    what: str
    extra_args: tuple[str, ...] = ()
    cpus: frozenset[int] | None = None  # pin the run to these CPUs


def one_cpu() -> frozenset[int]:
    """The first CPU this process may run on (CPU 0 unless a taskset says otherwise)."""
    return frozenset({min(os.sched_getaffinity(0))})


def conditions(data_scale: float = 0.4) -> list[Condition]:
    return [
        Condition("normal", "as this machine is"),
        Condition("one-core", "every process pinned to one CPU (a slower machine)",
                  cpus=one_cpu()),
        Condition(f"data-{data_scale * 100:g}",
                  f"data set at {data_scale:.0%}, the calibration compensating (a faster "
                  "machine)", extra_args=("--data-scale", f"{data_scale:g}")),
    ]


@dataclass
class ConditionRun:
    condition: Condition
    exit_code: int
    wall_s: float
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def load_windows_s(self) -> float:
        """The sum of the variants' load windows: the least a matrix can take."""
        return sum(float(v["timing"]["load_s"]) for v in self.results.get("variants", []))

    @property
    def median_overhead_s(self) -> float | None:
        """The median of what each variant cost beyond its load window."""
        values = sorted(float(v["timing"]["overhead_s"])
                        for v in self.results.get("variants", []))
        return statistics.median(values) if values else None


class ConditionsFailed(LabError):
    """A condition's `lab run` could not produce results at all."""


def child_argv(condition: Condition, scenarios: Sequence[str], json_path: Path,
               backend: str = "local") -> list[str]:
    """The child's `lab run`. It runs in the repository (REPO_ROOT), not where `lab
    conditions` was started, so every path it is handed is absolute: the results file, and
    a scenario named by a path that exists from here (a bare name is looked up in
    scenarios/ wherever it runs)."""
    named = [str(Path(s).resolve()) if Path(s).suffix in (".yaml", ".yml") else s
             for s in scenarios]  # what lab.scenario.loader.find_scenario takes for a path
    return [sys.executable, "-m", "lab", "run", *named, "--backend", backend,
            "--json", str(json_path.resolve()), "--progress", "lines", *condition.extra_args]


def run_condition(condition: Condition, scenarios: Sequence[str], out_dir: Path,
                  backend: str = "local") -> ConditionRun:
    """One `lab run` of `scenarios` under `condition`; its results JSON in `out_dir`."""
    out_dir = out_dir.resolve()
    json_path = out_dir / f"{condition.name}.json"
    argv = child_argv(condition, scenarios, json_path, backend)
    cpus = condition.cpus

    def pin() -> None:  # in the child, before exec: everything it starts inherits it
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    began = time.monotonic()
    with open(out_dir / f"{condition.name}.log", "w") as log:
        child = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 preexec_fn=pin)
        previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        try:
            code = child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
    wall = time.monotonic() - began
    if not json_path.is_file():
        raise ConditionsFailed(f"condition {condition.name}: `lab run` exited {code} without "
                               f"results; see {out_dir / (condition.name + '.log')}")
    return ConditionRun(condition, code, wall, json.loads(json_path.read_text()))


#: The classes a cell shows: what users got, honest or not (see lab.load.classify).
_MIX = ("2xx", "fallback", "lying_200", "500", "502", "503", "504", "timeout", "error")


def _cell(variant: dict[str, Any]) -> str:
    """A variant's verdict under one condition, with the fault window's mix."""
    fault = variant["windows"]["fault"]
    total = fault["total"] or 1
    by = fault["by_class"]
    mix = " ".join(f"{k} {by[k] / total:.0%}" for k in _MIX if by.get(k))
    verdict = "PASS" if variant["passed"] else "FAIL"
    if not variant["passed"]:
        failed = next((e["text"] for e in variant["expectations"] if not e["passed"]), "")
        return f"{verdict} ({failed})"
    return f"{verdict} {mix}".rstrip()


def table(runs: Sequence[ConditionRun]) -> list[list[str]]:
    """Rows of scenario/variant × condition; the first row names the conditions."""
    header = ["scenario / variant", *(r.condition.name for r in runs)]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for run in runs:
        for v in run.results.get("variants", []):
            cells.setdefault((v["scenario"], v["name"]), {})[run.condition.name] = _cell(v)
        for s in run.results.get("skipped", []):
            for name in s["variants"]:
                cells.setdefault((s["scenario"], name), {})[run.condition.name] = "SKIPPED"
    rows = [header]
    for (scenario, variant), by_condition in cells.items():
        rows.append([f"{scenario} / {variant}",
                     *(by_condition.get(r.condition.name, "not run") for r in runs)])
    return rows


def all_held(runs: Sequence[ConditionRun]) -> bool:
    """Every variant passed (the baselines reproduced, the mitigations held) everywhere."""
    return all(r.exit_code == 0 for r in runs) and all(
        cell.startswith("PASS") for row in table(runs)[1:] for cell in row[1:])


def run_conditions(scenarios: Sequence[str], out_dir: Path, data_scale: float,
                   progress: Callable[[str], None], only: Sequence[str] = ()) -> list[ConditionRun]:
    out_dir = out_dir.resolve()  # one directory, whichever process looks at it
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for condition in conditions(data_scale):
        if only and condition.name not in only:
            continue
        progress(f"{condition.name}: {condition.what} …")
        run = run_condition(condition, scenarios, out_dir)
        progress(f"{condition.name}: exit {run.exit_code} after {run.wall_s:.0f} s")
        runs.append(run)
    return runs
