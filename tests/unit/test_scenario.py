"""Scenario validation: every error names the file, the field path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import ScenarioError
from lab.scenario.loader import load_scenario_file, scenario_paths
from tests.unit.scenario_docs import problems_of, write

MINIMAL: dict[str, Any] = {
    "name": "demo",
    "title": "a demo",
    "description": "what happened",
    "load": {"users": 5, "spawn_rate": 5, "duration": "20s",
             "endpoints": [{"request": "checkout"}]},
    "fault": {"kind": "drop-index", "at": "5s", "until": "10s"},
    "variants": {"baseline": {"expect": [{"window": "fault", "status": 500, "rate": ">= 10%"}]}},
}




def with_changes(**changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(MINIMAL))
    for dotted, value in changes.items():
        node = doc
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return doc


def test_minimal_scenario_loads_with_defaults(tmp_path: Path) -> None:
    s = load_scenario_file(write(tmp_path, MINIMAL))
    assert s.load.duration == 20.0
    assert s.load.client_timeout == 5.0
    assert s.fault.at == 5.0 and s.fault.until == 10.0
    exp = s.variants["baseline"].expect[0]
    assert exp.rate is not None and exp.rate.value == pytest.approx(0.10)
    assert exp.text == "[fault] 500 share >= 10%"


def test_every_shipped_scenario_is_valid() -> None:
    paths = scenario_paths()
    assert paths, "scenarios/ has no files"
    for path in paths:
        assert load_scenario_file(path).name == path.stem


def test_unknown_field_is_named_with_its_path(tmp_path: Path) -> None:
    doc = with_changes(load__userz=3)
    assert problems_of(tmp_path, doc) == [
        "load.userz: unknown field (check the spelling; see README 'Writing a scenario')"
    ]


def test_missing_field_is_named(tmp_path: Path) -> None:
    doc = with_changes()
    del doc["load"]["duration"]
    assert problems_of(tmp_path, doc) == ["load.duration: required field is missing"]


def test_bad_bound_says_what_was_expected(tmp_path: Path) -> None:
    doc = with_changes(variants__baseline__expect=[
        {"window": "fault", "status": 500, "rate": "lots"}])
    [problem] = problems_of(tmp_path, doc)
    assert problem.startswith("variants.baseline.expect.0.rate: expected a bound like")
    assert "'>= 10%'" in problem


def test_rate_above_one_without_percent_is_rejected(tmp_path: Path) -> None:
    doc = with_changes(variants__baseline__expect=[
        {"window": "fault", "status": 500, "rate": ">= 10"}])
    [problem] = problems_of(tmp_path, doc)
    assert "fraction 0..1" in problem


def test_bad_window_and_status(tmp_path: Path) -> None:
    doc = with_changes(variants__baseline__expect=[
        {"window": "during", "status": 600, "count": 0}])
    probs = problems_of(tmp_path, doc)
    assert any(p.startswith("variants.baseline.expect.0.window: expected a window") for p in probs)
    assert any(p.startswith("variants.baseline.expect.0.status: expected a status code")
               for p in probs)


def test_expectation_needs_one_subject(tmp_path: Path) -> None:
    doc = with_changes(variants__baseline__expect=[{"window": "fault", "count": 0}])
    [problem] = problems_of(tmp_path, doc)
    assert problem.startswith("variants.baseline.expect.0: expected one of: 'status'")


def test_fault_must_end_before_the_load(tmp_path: Path) -> None:
    doc = with_changes(fault__until="25s")
    [problem] = problems_of(tmp_path, doc)
    assert "fault.until (25s) must be before the end of the load (20s)" in problem


def test_fault_until_after_at(tmp_path: Path) -> None:
    doc = with_changes(fault__until="5s")
    [problem] = problems_of(tmp_path, doc)
    assert problem.startswith("fault: 'until' (5s) must be after 'at' (5s)")


def test_baseline_is_required(tmp_path: Path) -> None:
    doc = with_changes()
    doc["variants"] = {"timeouts": doc["variants"]["baseline"]}
    [problem] = problems_of(tmp_path, doc)
    assert "expected a 'baseline' variant" in problem


def test_unknown_fault_kind_and_param(tmp_path: Path) -> None:
    assert problems_of(tmp_path, with_changes(fault__kind="meteor")) == [
        "fault.kind: expected one of disk-fill, drop-index, gateway, hot-key-expiry, lock-table, "
        "rolling-deploy, got 'meteor'"
    ]
    probs = problems_of(tmp_path, with_changes(fault__params={"idx": "x"}))
    assert probs[0].startswith("fault.params.idx: unknown parameter for fault 'drop-index'")


def test_variant_fault_override_is_validated(tmp_path: Path) -> None:
    doc = with_changes()
    doc["variants"]["baseline"]["fault"] = {"recreate": "sometimes"}
    [problem] = problems_of(tmp_path, doc)
    assert problem.startswith("variants.baseline.fault.recreate:")


def test_config_keys_must_be_env_names_and_values_become_strings(tmp_path: Path) -> None:
    doc = with_changes(stack={"config": {"DB_POOL_MAX": 10, "DB_ERRORS_AS_503": True}})
    s = load_scenario_file(write(tmp_path, doc))
    assert s.variant_env("baseline") == {"DB_POOL_MAX": "10", "DB_ERRORS_AS_503": "true"}
    bad = with_changes(stack={"config": {"db-pool": 1}})
    [problem] = problems_of(tmp_path, bad)
    assert problem.startswith("stack.config.db-pool")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, "name: demo\nload: [unclosed\n")
    assert problem.startswith("line 3, column 1: not valid YAML")


def test_name_must_match_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, name="other")
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(path)
    assert info.value.problems == ["name: expected 'other' (the file's name), got 'demo'"]


def test_durations_accept_units_and_reject_nonsense(tmp_path: Path) -> None:
    s = load_scenario_file(write(tmp_path, with_changes(load__duration="1m",
                                                        load__client_timeout="500ms")))
    assert s.load.duration == 60.0 and s.load.client_timeout == 0.5
    [problem] = problems_of(tmp_path, with_changes(load__duration="forever"))
    assert problem.startswith("load.duration: expected a duration like '30s'")
