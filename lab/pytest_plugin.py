"""pytest plugin: `pytest scenarios/` runs every scenario variant as a test item.

Items are named `<file>::<variant>` (e.g. `scenarios/pool-exhaustion.yaml::baseline`), so
`--junitxml` gives CI one test case per variant. A failed item reports each expectation
that did not hold, with what was measured. The baseline is a test like any other: if a
change to the service stops it from producing its 500s, the suite fails — the lab no
longer reproduces the incident, and its mitigations prove nothing.

Locust stays a subprocess (the runner starts it); this plugin never imports it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backends.local import LocalBackend
from lab.errors import ScenarioError
from lab.results import RunResults, VariantResult
from lab.runner import run_variant, skip_reason
from lab.scenario import Scenario, load_scenario_file

_RESULTS_KEY = pytest.StashKey[RunResults]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoslab", "chaoslab scenarios as tests")
    group.addoption("--lab-backend", default="local", choices=["local"],
                    help="where the stack runs (default: local)")
    group.addoption("--lab-scenario", action="append", default=[], metavar="NAME",
                    help="only these scenarios (repeatable; default: every file collected)")
    group.addoption("--lab-json", metavar="PATH",
                    help="also write the results of every variant run to this JSON file")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS_KEY] = RunResults()
    config.addinivalue_line(
        "markers", "reproduces: a baseline variant; it fails when the incident stops reproducing"
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and file_path.parent.name == "scenarios":
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


class VariantItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result: VariantResult | None = None
        if self.name == "baseline":
            self.add_marker(pytest.mark.reproduces)

    def runtest(self) -> None:
        backend = LocalBackend()
        if (reason := skip_reason(self.scenario, backend)) is not None:
            pytest.skip(reason)  # e.g. no size-limited filesystem here: never faked
        self.result = asyncio.run(run_variant(self.scenario, self.name, backend))
        self.config.stash[_RESULTS_KEY].variants.append(self.result)
        for e in self.result.expectations:
            self.user_properties.append((e.text, f"{'ok' if e.passed else 'FAIL'}: {e.measured}"))
        if not self.result.passed:
            failed = [e for e in self.result.expectations if not e.passed]
            lines = [f"{e.text}: measured {e.measured}" + (f" ({e.note})" if e.note else "")
                     for e in failed]
            head = (f"{self.scenario.name}::{self.name}: {len(failed)} expectation(s) did not hold")
            if self.name == "baseline":
                head += " — the lab no longer reproduces the incident"
            raise VariantFailed("\n".join([head, *(f"  - {line}" for line in lines)]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, VariantFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.name}::{self.name}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--lab-json", None)
    results = session.config.stash.get(_RESULTS_KEY, None)
    if path and results is not None and results.variants:
        Path(path).write_text(json.dumps(results.to_json(), indent=2))
