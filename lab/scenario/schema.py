"""The JSON Schema of a scenario file, generated from the models that load it, so an
editor (VS Code's YAML extension, through the `# yaml-language-server: $schema=` line at
the top of every shipped scenario) completes and checks the same fields the loader does.

The models alone leave two things open that the loader closes: a fault's `params` depend
on its `kind` (each kind's own Params model), and a variant's `config` is the checkout's
switch table (lab.services.checkout.switches). Both are filled in here from those same
sources, never written by hand. What the schema cannot express (a switch's value rules,
the windows' arithmetic) stays the loader's: `lab check` remains the judge.
"""

from __future__ import annotations

import json
from typing import Any

from lab.faults.registry import FAULT_KINDS
from lab.scenario.expectations import BOUND_PATTERN
from lab.scenario.models import Scenario
from lab.services.checkout.switches import SWITCHES, Switch

#: A `while:` condition: a metric name, then a bound (lab.scenario.expectations.Condition).
CONDITION_PATTERN = r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*" + BOUND_PATTERN.removeprefix("^")
SCHEMA_ID = "https://chaoslab.invalid/schema/scenario.schema.json"
#: Where the committed copy lives, relative to the repository root (`make schema`).
SCHEMA_PATH = "schema/scenario.schema.json"


def scenario_schema() -> dict[str, Any]:
    """The schema as a JSON-ready dict (draft 2020-12, as pydantic writes it)."""
    schema = Scenario.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    _fault_kinds(defs)
    _switches(schema, defs)
    _expectations(defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}


def _fault_kinds(defs: dict[str, Any]) -> None:
    fault = defs["FaultSpec"]
    fault["properties"]["kind"] = {"enum": sorted(FAULT_KINDS),
                                   "description": "what is injected (lab.faults)"}
    cases = []
    for kind, cls in sorted(FAULT_KINDS.items()):
        params = cls.Params.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        name = cls.Params.__name__
        defs[name] = params
        cases.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                      "then": {"properties": {"params": {"$ref": f"#/$defs/{name}"}}}})
    fault["allOf"] = cases


def _switches(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """A variant's (and the stack's) `config`: against the sample shop, the switches it
    reads (`SampleSwitches`); against the user's own service (`stack.service`), any
    variables of theirs."""
    settable = {name: _switch_schema(s) for name, s in SWITCHES.items() if s.set_by_lab is None}
    defs["SampleSwitches"] = {
        "type": "object", "properties": settable, "additionalProperties": False,
        "description": "the checkout service's switches (docs/scenarios.md)"}
    switches = {"$ref": "#/$defs/SampleSwitches"}
    schema.setdefault("allOf", []).append({
        "if": {"required": ["stack"], "properties": {"stack": {"required": ["service"]}}},
        "else": {"properties": {
            "stack": {"properties": {"config": switches}},
            "variants": {"additionalProperties": {"properties": {"config": switches}}}}}})


def _expectations(defs: dict[str, Any]) -> None:
    """Bounds are written as text ('>= 30%', '== 0', '<= 500ms'), and a status may be a
    number (500) as well as a word ('2xx', 'dropped')."""
    defs["Bound"] = {"type": ["string", "number"], "pattern": BOUND_PATTERN,
                     "description": "a comparison such as '>= 10%', '== 0' or '<= 1500ms'"}
    for name, model in defs.items():
        if name.endswith("Expectation"):
            for field in ("status", "health"):
                prop = model.get("properties", {}).get(field)
                for option in [] if prop is None else [prop, *prop.get("anyOf", [])]:
                    if option.get("type") == "string":
                        option["type"] = ["string", "integer"]
    if "Condition" in defs:
        defs["Condition"] = {"type": "string", "pattern": CONDITION_PATTERN,
                             "description": "a sampled metric compared with a number, "
                                            "such as 'checkout_breaker_open >= 1'"}


def _switch_schema(switch: Switch) -> dict[str, Any]:
    default = "" if switch.default is None else f"; default {switch.default}"
    out: dict[str, Any] = {"type": ["string", "number", "boolean"],
                           "description": f"{switch.doc} ({switch.kind}{default})"}
    if switch.choices:
        out["enum"] = list(switch.choices)
    return out


def schema_text() -> str:
    """The schema as the committed file holds it: sorted keys, two-space indent."""
    return json.dumps(scenario_schema(), indent=2, sort_keys=True) + "\n"
