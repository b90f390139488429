"""The docs' sample outputs have the shape of what the lab prints today (the run table's
is checked against a real run in tests/integration/test_pool_exhaustion.py).

A sample that falls behind the printer (a column added, a line renamed) misleads the
newcomer who reads it next to their own terminal, so each one is compared here with the
output of the code that prints it.
"""

from __future__ import annotations

import subprocess
import sys

from lab.report.stability import render_stability
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.scenario.models import Expectation
from lab.verdict.stability import summarize
from tests.doc_samples import REPO, sample_after, shape
from tests.unit.test_stability import variant


def test_the_readmes_lab_list_is_what_lab_list_prints() -> None:
    proc = subprocess.run([sys.executable, "-m", "lab", "list"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    assert sample_after("README.md", "`lab list` prints") == proc.stdout.rstrip("\n").split("\n")


def test_the_stability_sample_has_the_shape_render_stability_prints() -> None:
    scenario = load_scenario_file(find_scenario("cache-stampede"))
    verdicts: list[tuple[Expectation | str, bool, float | None]] = []
    for e in scenario.variants["baseline"].expect:
        bound = e.value_bound()
        assert bound is not None
        # Every share met in full, every count twice its floor: the share is the tightest.
        verdicts.append((e, True, 1.0 if bound.unit == "%" else 2 * bound.value))
    verdicts.append(("[fault] hot-key-expiry took effect (evidence recorded)", True, None))
    runs = [variant("baseline", verdicts, run_id=f"cl-{i}", scenario="cache-stampede")
            for i in range(5)]
    printed = render_stability(summarize(runs, {"cache-stampede": scenario}), 5)
    sample = sample_after("docs/running.md", "`lab run cache-stampede --variant baseline "
                                             "--repeat 5`")
    assert [shape(line) for line in sample] == [shape(line) for line in printed.split("\n")]
