"""The scenario's `drill:` section: what `lab drill` grades against (the cause to name, the
hints a participant buys) and the switches each mitigation would set with `mitigate`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import UnknownVariant
from lab.scenario.loader import load_scenario_file, scenario_paths
from lab.scenario.models import MAX_HINTS
from tests.unit.scenario_docs import load, problems_of

DOC: dict[str, Any] = {
    "name": "demo",
    "title": "a demo",
    "description": "what happened",
    "stack": {"config": {"DB_POOL_MAX": 10, "DB_ACQUIRE_TIMEOUT_MS": 0}},
    "load": {"users": 5, "spawn_rate": 5, "duration": "20s",
             "endpoints": [{"request": "checkout"}]},
    "fault": {"kind": "drop-index", "at": "5s", "until": "10s"},
    "variants": {
        "baseline": {"expect": [{"window": "fault", "status": 500, "rate": ">= 10%"}]},
        "timeouts": {"config": {"DB_ACQUIRE_TIMEOUT_MS": 250, "DB_POOL_MAX": 10,
                                "DB_ERRORS_AS_503": True},
                     "expect": [{"window": "fault", "status": 500, "count": "== 0"}]},
        "bigger-pool": {"shows_problem": True, "config": {"DB_POOL_MAX": 50},
                        "expect": [{"window": "fault", "status": "5xx", "count": ">= 1"}]},
    },
}


def doc(**drill: Any) -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(DOC))
    if drill:
        out["drill"] = drill
    return out


def test_mitigation_switches_are_what_differs_from_the_baseline(tmp_path: Path) -> None:
    scenario = load(tmp_path, doc())
    # DB_POOL_MAX=10 is what the baseline runs with already: not a switch to set.
    assert scenario.mitigation_switches("timeouts") == {
        "DB_ACQUIRE_TIMEOUT_MS": "250", "DB_ERRORS_AS_503": "true"}
    assert scenario.mitigation_switches("bigger-pool") == {"DB_POOL_MAX": "50"}
    assert scenario.mitigation_switches("baseline") == {}
    with pytest.raises(UnknownVariant, match=r"no variant named 'nope' in \S*demo\.yaml "
                       r"\(known: baseline, bigger-pool, timeouts\)"):
        scenario.mitigation_switches("nope")


def test_without_a_drill_section_the_cause_is_the_name_and_hints_walk_the_layers(
        tmp_path: Path) -> None:
    scenario = load(tmp_path, doc())
    assert scenario.drill is None
    assert scenario.drill_cause() == "demo"
    assert scenario.drill_summary() == "a demo"
    hints = scenario.drill_hints()
    assert 1 <= len(hints) <= MAX_HINTS
    # Only the last names the fix, and only the mitigations' switches (not the control's).
    assert all("DB_" not in h for h in hints[:-1])
    assert "DB_ACQUIRE_TIMEOUT_MS" in hints[-1] and "DB_ERRORS_AS_503" in hints[-1]
    assert "DB_POOL_MAX" not in hints[-1]


def test_a_drill_section_is_read_as_written(tmp_path: Path) -> None:
    scenario = load(tmp_path, doc(cause="pool-exhaustion", summary="the pool ran dry",
                                  hints=["look at the pool", "  set   a timeout  "]))
    assert scenario.drill_cause() == "pool-exhaustion"
    assert scenario.drill_summary() == "the pool ran dry"
    assert scenario.drill_hints() == ["look at the pool", "set a timeout"]
    only_hints = load(tmp_path, doc(hints=["look at the pool"]))
    assert only_hints.drill_cause() == "demo"


@pytest.mark.parametrize(("drill", "problem"), [
    ({"hints": []}, "drill.hints: expected 1 to 5 hints, from vague to specific; got 0"),
    ({"hints": [f"hint {i}" for i in range(6)]},
     "drill.hints: expected 1 to 5 hints, from vague to specific; got 6"),
    ({"hints": ["look at the pool", "   "]}, "drill.hints.1: expected a non-empty hint"),
    ({"hints": ["look", 3]}, "drill.hints.1: expected a hint as text"),
    ({"hint": ["look"]},
     "drill.hint: unknown field (check the spelling; see README 'Writing a scenario')"),
    ({"cause": "Pool Exhaustion"},
     "drill.cause: expected an incident class written like a scenario's name (lowercase "
     "letters, digits, dashes: 'pool-exhaustion'), got 'Pool Exhaustion'"),
    ({"hints": ["set DB_ACQUIRE_TIMEOUT_MS", "the fix"]},
     "drill: hint 1 of 2 names DB_ACQUIRE_TIMEOUT_MS, a switch a mitigation sets; only the "
     "last hint may name the fix"),
])
def test_a_bad_drill_section_is_refused_naming_the_field(
        tmp_path: Path, drill: dict[str, Any], problem: str) -> None:
    assert problems_of(tmp_path, doc(**drill)) == [problem]


def test_a_control_switch_or_a_prefix_in_an_early_hint_is_not_the_fix(tmp_path: Path) -> None:
    # DB_POOL_MAX belongs to a control (shows_problem); DB_ERRORS_AS_503X is no switch.
    scenario = load(tmp_path, doc(hints=["DB_POOL_MAX is 10", "DB_ERRORS_AS_503X", "fix"]))
    assert scenario.drill_hints()[0] == "DB_POOL_MAX is 10"


@pytest.mark.parametrize("path", scenario_paths(), ids=lambda p: p.stem)
def test_every_shipped_scenario_has_hints_from_vague_to_the_fix(path: Path) -> None:
    scenario = load_scenario_file(path)
    assert scenario.drill is not None and scenario.drill.hints is not None
    assert scenario.drill_cause() == scenario.name
    assert scenario.drill.summary
    hints = scenario.drill_hints()
    assert 2 <= len(hints) <= MAX_HINTS
    fixes = {k for name, v in scenario.variants.items()
             if name != "baseline" and not v.shows_problem
             for k in scenario.mitigation_switches(name)}
    # The last hint nearly names the fix: a switch one of the mitigations sets, with the
    # value that mitigation gives it.
    named = [(k, v) for name in scenario.variants if name != "baseline"
             for k, v in scenario.mitigation_switches(name).items()
             if k in fixes and re.search(rf"\b{k}={re.escape(v)}\b", hints[-1])]
    assert named, hints[-1]
