"""`lab schema`: the JSON Schema an editor checks scenario files with. It must accept
every shipped scenario, refuse what the loader refuses (an unknown field, fault kind or
switch; a bad duration), enumerate the lab's real fault kinds and switches, and the
committed copy the scenarios point at must be what `lab schema` prints today."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lab.cli import main
from lab.errors import ScenarioError
from lab.faults.registry import FAULT_KINDS
from lab.scenario.loader import load_scenario_file
from lab.scenario.schema import SCHEMA_PATH, scenario_schema, schema_text
from lab.services.checkout.switches import SWITCHES

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema=../schema/scenario.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_passes_and_points_at_the_schema(
        validator: jsonschema.Draft202012Validator, path: Path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == HEADER
    assert errors(validator, yaml.safe_load(text)) == []
    load_scenario_file(path)  # the header is a comment: the loader reads the file as before


@pytest.mark.parametrize("path", sorted((REPO / "examples" / "orders" / "scenarios").glob(
    "*.yaml")), ids=lambda p: p.stem)
def test_a_scenario_against_your_own_service_passes_with_its_own_variables(
        validator: jsonschema.Draft202012Validator, path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert errors(validator, doc) == []
    # Its config is its service's variables, not the sample's switches...
    doc["variants"]["baseline"]["config"] = {"SHIPPING_FALLBACK": "estimate"}
    assert errors(validator, doc) == []
    # ...which the sample shop's scenario may not set.
    sample = _pool()
    sample["variants"]["baseline"]["config"] = {"SHIPPING_FALLBACK": "estimate"}
    assert errors(validator, sample) != []


def test_the_committed_schema_is_what_lab_schema_prints(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text()
    assert (REPO / SCHEMA_PATH).read_text() == printed, (
        f"{SCHEMA_PATH} is stale: regenerate it with `make schema` "
        f"(lab schema --out {SCHEMA_PATH})")


def test_lab_schema_out_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "s" / "scenario.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["$defs"]["FaultSpec"]["properties"]["kind"]["enum"] \
        == sorted(FAULT_KINDS)


def test_the_enums_are_the_labs_own() -> None:
    defs = scenario_schema()["$defs"]
    assert defs["FaultSpec"]["properties"]["kind"]["enum"] == sorted(FAULT_KINDS)
    switches = defs["SampleSwitches"]["properties"]
    assert set(switches) == {n for n, s in SWITCHES.items() if s.set_by_lab is None}
    assert switches and all(v["description"] for v in switches.values())
    # Each kind's params are its own Params model's.
    for kind, cls in FAULT_KINDS.items():
        assert set(defs[cls.Params.__name__].get("properties", {})) == set(
            cls.Params.model_fields), kind


def _pool() -> dict[str, Any]:
    return yaml.safe_load((REPO / "scenarios" / "pool-exhaustion.yaml").read_text())


def _mutations() -> list[tuple[str, Any]]:
    def top_field(d: dict[str, Any]) -> None:
        d["colour"] = "blue"

    def fault_kind(d: dict[str, Any]) -> None:
        d["fault"]["kind"] = "meteor"

    def fault_param(d: dict[str, Any]) -> None:
        d["fault"]["params"]["indexx"] = "idx"

    def switch(d: dict[str, Any]) -> None:
        d["variants"]["timeouts"]["config"]["DB_ACQUIRE_TIMEOUT"] = "250"

    def duration(d: dict[str, Any]) -> None:
        d["load"]["duration"] = "soon"

    def bound(d: dict[str, Any]) -> None:
        d["variants"]["baseline"]["expect"][0]["rate"] = "about half"

    return [("an unknown top-level field", top_field), ("an unknown fault kind", fault_kind),
            ("an unknown fault parameter", fault_param), ("a misspelt switch", switch),
            ("a bad duration", duration), ("a bound that does not parse", bound)]


@pytest.mark.parametrize(("what", "mutate"), _mutations(), ids=[w for w, _ in _mutations()])
def test_the_schema_refuses_what_the_loader_refuses(
        validator: jsonschema.Draft202012Validator, what: str, mutate: Any,
        tmp_path: Path) -> None:
    doc = copy.deepcopy(_pool())
    path = tmp_path / "pool-exhaustion.yaml"
    path.write_text(yaml.safe_dump(doc))
    load_scenario_file(path)  # unchanged, both accept it
    assert errors(validator, doc) == []
    mutate(doc)
    path.write_text(yaml.safe_dump(doc))
    assert errors(validator, doc), f"the schema accepts {what}"
    with pytest.raises(ScenarioError):
        load_scenario_file(path)
