"""pytest plugin: `pytest scenarios/` runs every scenario variant as a test item.

Items are named `<file>::<variant>` (e.g. `scenarios/pool-exhaustion.yaml::baseline`), so
`--junitxml` gives CI one test case per variant. A failed item reports each expectation
that did not hold, with what was measured. The baseline is a test like any other: if a
change to the service stops it from producing its 500s, the suite fails — the lab no
longer reproduces the incident, and its mitigations prove nothing.

With `--lab-repeat N` an item runs its variant N times and fails if any run failed,
naming the pass rate (k of N) and each expectation's spread and margin (lab.verdict.stability).
One item per variant rather than one per run: the test ids and the JUnit cases stay the
same whatever N is (CI history stays comparable), `-k` selects a variant as before, and
the verdict a stability check exists for — "k of N", not N separate verdicts — is one
test's outcome with its figures in the failure message.

Locust stays a subprocess (the runner starts it); this plugin never imports it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.errors import ScenarioError
from lab.run.events import RunEvents, VariantDone
from lab.run.runner import RunLoop, run_variant
from lab.scenario.loader import load_scenario_file
from lab.scenario.models import Scenario
from lab.stack.backends import NAMES, backend_named
from lab.verdict.results import RunResults, VariantResult
from lab.verdict.stability import (
    ExpectationStability,
    VariantStability,
    format_margin,
    format_value,
    stability_json,
    variant_stability,
)

_RESULTS_KEY = pytest.StashKey[RunResults]()
_STABILITY_KEY = pytest.StashKey[list[VariantStability]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoslab", "chaoslab scenarios as tests")
    group.addoption("--lab-backend", default=NAMES[0], choices=list(NAMES),
                    help="where the stack runs (default: local)")
    group.addoption("--lab-scenario", action="append", default=[], metavar="NAME",
                    help="only these scenarios (repeatable; default: every file collected)")
    group.addoption("--lab-json", metavar="PATH",
                    help="also write the results of every variant run to this JSON file")
    group.addoption("--lab-repeat", type=int, default=1, metavar="N",
                    help="run each variant N times; it fails if any run failed, and its "
                    "pass rate and margins go in the failure and --lab-json (default: 1)")


def pytest_configure(config: pytest.Config) -> None:
    repeat = config.getoption("--lab-repeat", 1)
    if repeat < 1:
        raise pytest.UsageError(f"--lab-repeat: expected at least 1 run, got {repeat}")
    config.stash[_RESULTS_KEY] = RunResults()
    config.stash[_STABILITY_KEY] = []
    config.addinivalue_line(
        "markers", "reproduces: a baseline variant; it fails when the incident stops reproducing"
    )
    config.addinivalue_line(
        "markers", "shows_problem: a control variant (shows_problem: true): it fails when the "
        "problem it exists to show stops showing")
    config.addinivalue_line(
        "markers", "mitigation: a mitigation variant, judged by its expectations and the "
        "built-in honest line")


#: The first line of a scenario file that points an editor at the lab's schema.
SCHEMA_HEADER = "# yaml-language-server: $schema="


def is_scenario_file(file_path: Path, named: Collection[Path]) -> bool:
    """A scenario, wherever it lives: in a folder named `scenarios`, named on the command
    line, or carrying the schema header (`lab schema`) whatever its folder."""
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    if file_path.parent.name == "scenarios" or file_path.resolve() in named:
        return True
    try:
        with file_path.open(encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    return first.startswith(SCHEMA_HEADER) and "scenario.schema.json" in first


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    config = parent.config
    named = {(Path(config.invocation_params.dir) / a.split("::")[0]).resolve()
             for a in config.args}
    if is_scenario_file(file_path, named):
        wanted = parent.config.getoption("--lab-scenario")
        if wanted and file_path.stem not in wanted:
            return None
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[VariantItem]:
        try:
            scenario = load_scenario_file(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        for name in scenario.variants:
            yield VariantItem.from_parent(self, name=name, scenario=scenario)


class VariantFailed(Exception):
    """Raised by an item whose expectations did not hold; rendered without a traceback."""


class VariantInconclusive(Exception):
    """Raised while an item sets up — runs its experiment — when the experiment did not
    happen as designed, or broke off: JUnit counts it an error, not a failure nor a skip."""


class VariantItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result: VariantResult | None = None  # the last run
        self.runs: list[VariantResult] = []
        self.errored = 0
        if self.name == "baseline":
            self.add_marker(pytest.mark.reproduces)
        elif scenario.variants[self.name].shows_problem:
            self.add_marker(pytest.mark.shows_problem)
        else:
            self.add_marker(pytest.mark.mitigation)

    def setup(self) -> None:
        """The experiment: the variant's runs. One that did not happen as designed
        (INCONCLUSIVE) or broke off is an error of the item, raised here."""
        repeat: int = self.config.getoption("--lab-repeat", 1)
        events = RunEvents()
        events.variant_done.add_listener(self._record)
        # The run loop of `lab run`, over this one variant (each run under its own
        # asyncio.run); `run_variant` is looked up here so tests can stand in for it.
        backend = backend_named(self.config.getoption("--lab-backend", NAMES[0]))
        loop = RunLoop([(self.scenario, [self.name])], backend, events, repeat,
                       variant_runner=run_variant)
        if loop.results.skipped:  # e.g. no size-limited filesystem here: never faked
            pytest.skip(loop.results.skipped[0].reason)
        results = loop.run()
        self.runs = results.variants
        self.errored = len(results.errors)
        problems = [f"run {e.run} broke off: {e.message}" for e in results.errors]
        problems += [f"run {n}: INCONCLUSIVE: {i.text}"
                     for n, r in enumerate(self.runs, 1) for i in r.inconclusive]
        if problems and (repeat == 1 or not self.runs):
            raise VariantInconclusive("\n".join(
                [f"{self.scenario.name}::{self.name}: the experiment did not happen as "
                 "designed, so it has no verdict", *(f"  - {p}" for p in problems)]))

    def runtest(self) -> None:
        repeat: int = self.config.getoption("--lab-repeat", 1)
        runs = self.runs
        if repeat > 1:
            self._judge_runs(variant_stability(runs, self.scenario.variants[self.name].expect,
                                               self.errored))
        elif self.result is not None and not self.result.passed:
            failed = [e for e in self.result.expectations if not e.passed]
            lines = [f"{e.text}: measured {e.measured}" + (f" ({e.note})" if e.note else "")
                     for e in failed]
            head = (f"{self.scenario.name}::{self.name}: {len(failed)} expectation(s) did not hold")
            if self.name == "baseline":
                head += " — the lab no longer reproduces the incident"
            raise VariantFailed("\n".join([head, *(f"  - {line}" for line in lines)]))

    def _record(self, done: VariantDone) -> None:
        self.result = done.result
        self.config.stash[_RESULTS_KEY].variants.append(done.result)
        prefix = f"run {done.run.run}/{done.run.repeat}: " if done.run.repeat > 1 else ""
        for e in done.result.expectations:
            self.user_properties.append(
                (prefix + e.text, f"{'ok' if e.passed else 'FAIL'}: {e.measured}"))

    def _judge_runs(self, stats: VariantStability) -> None:
        """Several runs: the pass rate and every expectation's spread and margin are
        properties of the test case; it fails unless every run passed."""
        self.config.stash[_STABILITY_KEY].append(stats)
        self.user_properties.append(("pass rate", f"{stats.passes}/{stats.runs}"))
        for e in stats.expectations:
            self.user_properties.append((f"stability: {e.text}", _spread(e)))
        if stats.passes == stats.runs:
            return
        head = (f"{self.scenario.name}::{self.name}: {stats.runs - stats.passes} of "
                f"{stats.runs} runs failed (passed {stats.passes}/{stats.runs})")
        if self.name == "baseline":
            head += " — the lab does not reproduce the incident every time"
        lines = [f"{e.text}: held in {e.passes}/{e.runs}; {_spread(e)}"
                 for e in stats.expectations if e.passes < e.runs]
        raise VariantFailed("\n".join([head, *(f"  - {line}" for line in lines)]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, VariantFailed | VariantInconclusive):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException],
                         style: Any = None) -> Any:
        """pytest renders an error of the set-up phase here: the inconclusive experiment in
        words, not a traceback of the plugin."""
        if isinstance(excinfo.value, VariantInconclusive):
            return str(excinfo.value)
        return super()._repr_failure_py(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.name}::{self.name}"


def _spread(e: ExpectationStability) -> str:
    return (f"min {format_value(e.min, e.unit)}, median {format_value(e.median, e.unit)}, "
            f"max {format_value(e.max, e.unit)}, margin {format_margin(e.margin, e.unit)}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--lab-json", None)
    results = session.config.stash.get(_RESULTS_KEY, None)
    if path and results is not None and results.variants:
        doc = results.to_json()
        repeat = session.config.getoption("--lab-repeat", 1)
        if repeat > 1:
            stats: list[VariantStability] = session.config.stash[_STABILITY_KEY]
            doc["stability"] = stability_json(repeat, stats)
        Path(path).write_text(json.dumps(doc, indent=2))
