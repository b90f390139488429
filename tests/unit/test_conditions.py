"""`lab conditions`: the verdicts of one scenario set under three machine stand-ins.

The runs themselves are minutes of load (docs/measurements.md's table comes from one);
here, how their results are lined up and judged, and what the command refuses before it
starts.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from lab.cli import main
from lab.run.conditions import Condition, ConditionRun, all_held, conditions, table


def variant(scenario: str, name: str, passed: bool, **by_class: int) -> dict[str, Any]:
    total = sum(by_class.values())
    return {
        "scenario": scenario, "name": name, "passed": passed,
        "timing": {"load_s": 40.0, "overhead_s": 2.0 + total / 100},
        "windows": {"fault": {"total": total, "by_class": by_class}},
        "expectations": [{"text": "[fault] 500 share >= 30%", "passed": passed}],
    }


def run(name: str, *variants: dict[str, Any], code: int = 0,
        skipped: list[dict[str, Any]] | None = None) -> ConditionRun:
    return ConditionRun(Condition(name, name), code, 1.0,
                        {"variants": list(variants), "skipped": skipped or []})


def test_the_three_conditions_and_what_each_changes() -> None:
    normal, one_core, small = conditions(0.4)
    assert (normal.extra_args, normal.cpus) == ((), None)
    assert one_core.cpus is not None and len(one_core.cpus) == 1
    assert one_core.cpus <= os.sched_getaffinity(0)
    assert (small.name, small.extra_args) == ("data-40", ("--data-scale", "0.4"))


def test_verdicts_line_up_by_variant_with_the_fault_mix() -> None:
    runs = [run("normal", variant("p", "baseline", True, **{"2xx": 10, "500": 90}),
                variant("p", "timeouts", True, **{"2xx": 40, "503": 60})),
            run("one-core", variant("p", "baseline", True, **{"2xx": 20, "500": 80}),
                variant("p", "timeouts", True, **{"2xx": 30, "503": 70}))]
    rows = table(runs)
    assert rows[0] == ["scenario / variant", "normal", "one-core"]
    assert rows[1] == ["p / baseline", "PASS 2xx 10% 500 90%", "PASS 2xx 20% 500 80%"]
    degraded = run("x", variant("p", "fallback", True, fallback=90, lying_200=5, error=5))
    assert table([degraded])[1][1] == "PASS fallback 90% lying_200 5% error 5%"
    assert rows[2][0] == "p / timeouts" and all_held(runs)
    # the matrix's floor and what each variant cost beyond it
    assert runs[0].load_windows_s == 80.0 and runs[0].median_overhead_s == 3.0


def test_one_failed_cell_a_missing_variant_or_a_skip_fails_the_whole() -> None:
    good = run("normal", variant("p", "baseline", True, **{"500": 9}))
    failed = run("data-40", variant("p", "baseline", False, **{"2xx": 9}), code=1)
    assert not all_held([good, failed])
    assert "FAIL ([fault] 500 share >= 30%)" in table([good, failed])[1]
    missing = run("one-core")
    assert table([good, missing])[1][2] == "not run" and not all_held([good, missing])
    skipped = run("one-core", skipped=[{"scenario": "p", "variants": ["baseline"]}])
    assert table([good, skipped])[1][2] == "SKIPPED" and not all_held([good, skipped])


def test_an_unknown_condition_or_scenario_is_refused_before_any_load(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conditions", "--only", "two-core"]) == 2
    assert "no condition named two-core" in capsys.readouterr().err
    assert main(["conditions", "no-such-scenario"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "5", "lots"])
def test_a_data_scale_outside_its_range_is_refused(value: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "pool-exhaustion", "--data-scale", value])
    assert info.value.code == 2
