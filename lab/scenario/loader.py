"""Reading a scenario file into lab.scenario.models's models: where scenarios are
(`SCENARIO_DIR`, `find_scenario`, `scenario_paths`), YAML that refuses a key given twice,
pydantic's errors as sentences naming the file and the field path, and the checks no
model can make alone: the fault's params against its kind (lab.faults.registry), the
checkout switches against their table, DATA_DIR under a data volume.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lab.errors import ScenarioError, shown_path
from lab.faults.registry import OWN_SERVICE_KINDS, params_problems, stack_problems
from lab.scenario.expectations import KINDS
from lab.scenario.models import PYTHON_PLACEHOLDER, Scenario
from lab.services.checkout.switches import SWITCHES, ConfigError, read_switches, unknown_variable


def _shipped_scenarios() -> Path:
    """The shipped scenarios: the checkout's `scenarios/`, or where a wheel installs them
    (its data files, `<prefix>/share/chaoslab/scenarios`, pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[2] / "scenarios"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "chaoslab" / "scenarios"


SCENARIO_DIR = _shipped_scenarios()

_KIND_TAGS = frozenset(k.kind for k in KINDS)


def _location(loc: tuple[int | str, ...]) -> str:
    """The field path as written: without the tag pydantic adds after `expect.<n>` for the
    expectation kind it chose, or after an endpoint's `request` for the sample's or the
    user's own (the file never names one)."""
    parts = [p for i, p in enumerate(loc)
             if not (p in _KIND_TAGS and i >= 2 and loc[i - 2] == "expect"
                     and isinstance(loc[i - 1], int))
             and not (p in ("sample", "own") and i >= 1 and loc[i - 1] == "request")]
    return ".".join(str(p) for p in parts) or "(top level)"


def _describe(error: Any) -> str:
    """One pydantic error → 'field.path: what was expected'."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg: str = error["msg"]
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see README 'Writing a scenario')"
    elif error["type"] == "missing":
        msg = "required field is missing"
    elif error["type"] == "literal_error":
        msg = f"expected {msg.removeprefix('Input should be ')}, got {error.get('input')!r}"
    return f"{_location(loc)}: {msg}"


def parse_scenario(data: Any, source: str) -> Scenario:
    """Validate already-parsed YAML data; `source` names the file in errors."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["(top level): expected a mapping of scenario fields"])
    try:
        return Scenario.model_validate(data, context={"source": source})
    except ValidationError as exc:
        raise ScenarioError(source, [_describe(e) for e in exc.errors()]) from None


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping: PyYAML silently keeps the
    last, so a variant with `DB_POOL_MAX` twice would run with whichever came second."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
            if first is not None:
                raise _DuplicateKey(None, None, f"duplicate key {key!r} (first at line "
                                    f"{first + 1}); YAML would keep only the last",
                                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_scenario_file(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(str(path), [f"{where}{exc.problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(str(path), [f"{where}not valid YAML ({problem})"]) from None
    scenario = parse_scenario(data, str(path))
    problems = []
    if scenario.name != path.stem:
        problems.append(f"name: expected {path.stem!r} (the file's name), got {scenario.name!r}")
    own = scenario.stack.service is not None
    problems += params_problems(scenario.fault.kind, scenario.fault.params, "fault.params",
                                own_service=own)
    problems += stack_problems(scenario.fault.kind, scenario.stack.data_volume is not None)
    problems += _data_dir_problems(scenario)
    problems += own_stack_problems(scenario, path.parent) if own else _switch_problems(scenario)
    if not own and scenario.fault.kind == "gateway" and any(
            params.get("dependency") is not None for _w, params in _fault_params(scenario)):
        problems.append("fault.params.dependency: names one of your own service's "
                        "dependencies; the sample shop's gateway fault acts on its one, the "
                        "payment gateway")
    if not own and scenario.physics is not None and not isinstance(
            scenario.physics.slow_path, str):
        problems.append("physics.slow_path: a query of your own is for your own service "
                        "(stack.service); the sample's are cart-lookup and catalog-aggregate")
    if not problems:
        for name in scenario.variants:
            problems += params_problems(
                scenario.fault.kind, scenario.variant_fault_params(name),
                f"variants.{name}.fault", own_service=own)
    if problems:
        raise ScenarioError(str(path), problems)
    return scenario


def own_stack_problems(scenario: Scenario, folder: Path) -> list[str]:
    """What must hold of a scenario against the user's own service before anything starts:
    its programs and SQL files exist, its load sends its own requests, its fault is one that
    acts on a stack the lab did not write, and a deploy's dropped variable is one the
    stack gives the service (a variable it never had would deploy an intact version)."""
    stack = scenario.stack
    assert stack.service is not None
    problems = []
    programs = [("stack.service.command", stack.service.command)] + [
        (f"stack.dependencies.{d.name}.command", d.command)
        for d in stack.dependencies if d.command]
    for where, argv in programs:
        problem = _program_problem(argv[0], folder)
        if problem:
            problems.append(f"{where}: {problem}")
    if stack.compose is not None:
        problems += _compose_problems(scenario, folder)
    for i, name in enumerate(stack.database.sql if stack.database else []):
        if not (folder / name).is_file():
            problems.append(f"stack.database.sql.{i}: no file {name} next to the scenario "
                            f"(looked in {shown_path(str(folder))})")
    for i, e in enumerate(scenario.load.endpoints):
        if isinstance(e.request, str):
            problems.append(f"load.endpoints.{i}.request: '{e.request}' is the sample shop's; "
                            "your service's requests are written out (method, path, json)")
    kind = scenario.fault.kind
    if kind not in OWN_SERVICE_KINDS:
        problems.append(f"fault.kind: '{kind}' acts on the sample shop only; against your own "
                        f"service: {', '.join(OWN_SERVICE_KINDS)}")
    elif kind == "gateway" and not stack.dependencies:
        problems.append("fault.kind: 'gateway' acts on a dependency through the fault proxy; "
                        "declare one under stack.dependencies")
    elif kind == "gateway":
        names = [d.name for d in stack.dependencies]
        for where, params in _fault_params(scenario):
            wanted = params.get("dependency")
            if wanted is not None and wanted not in names:
                problems.append(f"{where}.dependency: no dependency named {wanted!r} (declared: "
                                f"{', '.join(names)})")
    elif kind in ("drop-index", "lock-table") and stack.database is None:
        problems.append(f"fault.kind: '{kind}' acts on your database: declare it under "
                        "stack.database")
    elif kind == "drop-index" and "index" not in scenario.fault.params:
        problems.append("fault.params.index: name the index of your database the migration "
                        "drops")
    elif kind == "rolling-deploy":
        given = {*stack.service.env, *stack.config}
        for where, params in _fault_params(scenario):
            unset = params.get("unset")
            if not unset:
                problems.append(f"{where}.unset: name the variable the deploy loses (your "
                                "service's, e.g. its API key)")
                continue
            for var in unset:
                if var not in given:
                    problems.append(
                        f"{where}.unset: {var} is not given to the service (not in "
                        "stack.service.env or stack.config), so a deploy without it would "
                        "be the same version")
    return sorted(set(problems), key=problems.index)


def _fault_params(scenario: Scenario) -> list[tuple[str, dict[str, Any]]]:
    """The fault's parameters, and each variant's that changes them, with where they are."""
    return [("fault.params", scenario.fault.params)] + [
        (f"variants.{n}.fault", scenario.variant_fault_params(n))
        for n, v in scenario.variants.items() if v.fault]


def _compose_problems(scenario: Scenario, folder: Path) -> list[str]:
    """The compose file exists, is YAML with services, and has each service named. Only its
    service names are read here; the machine's Compose resolves the rest when the docker
    backend runs it."""
    stack = scenario.stack
    assert stack.compose is not None and stack.service is not None
    path = folder / stack.compose.file
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        return [f"stack.compose.file: no file {stack.compose.file} next to the scenario "
                f"(looked in {shown_path(str(folder))})"]
    except yaml.YAMLError as exc:
        return [f"stack.compose.file: {stack.compose.file} is not YAML: {exc}"]
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        return [f"stack.compose.file: {stack.compose.file} has no `services:`"]
    named = [("stack.service.compose_service", stack.service.compose_service)] + [
        (f"stack.dependencies.{d.name}.compose_service", d.compose_service)
        for d in stack.dependencies]
    return [f"{where}: {stack.compose.file} has no service {name!r} (it has: "
            f"{', '.join(sorted(services))})"
            for where, name in named if name is not None and name not in services]


def _program_problem(program: str, folder: Path) -> str | None:
    if program == PYTHON_PLACEHOLDER:
        return None
    if "/" in program:
        found = (folder / program).resolve()
        if not found.is_file():
            return f"no program {program} (looked in {shown_path(str(folder))})"
        if not os.access(found, os.X_OK):
            return f"{program} is not executable (chmod +x, or start it with {{python}})"
        return None
    if shutil.which(program) is None:
        return f"no program {program!r} on PATH"
    return None


def _switch_problems(scenario: Scenario) -> list[str]:
    """Every checkout switch a scenario sets must be one the service reads, with a value it
    accepts, judged by the service's own table: a misspelt mitigation would otherwise run
    as the baseline, and a bad value would surface only after Postgres had started."""
    configs = [("stack.config", scenario.stack.config)] + [
        (f"variants.{name}.config", v.config) for name, v in scenario.variants.items()
    ]
    problems = []
    for where, config in configs:
        for var, value in config.items():
            switch = SWITCHES.get(var)
            if switch is None:
                problems.append(f"{where}.{var}: {unknown_variable(var)}")
            elif switch.set_by_lab is not None:
                problems.append(f"{where}.{var}: not a switch ({switch.set_by_lab}); remove it")
            else:
                try:
                    switch.read({var: value}, on_host=False)
                except ConfigError as exc:
                    problems.append(f"{where}.{var}: {exc.detail}")
    if problems:
        return problems
    from_stack: dict[str, list[str]] = {}  # one line per stack-level problem, not per variant
    for name, variant in scenario.variants.items():  # the rules between switches
        try:
            read_switches(scenario.variant_env(name), on_host=False, user_only=True)
        except ConfigError as exc:
            if exc.var in variant.config:
                problems.append(f"variants.{name}.config.{exc.var}: {exc.detail}")
            else:
                from_stack.setdefault(f"stack.config.{exc.var}: {exc.detail}", []).append(name)
    problems += [f"{line} (in variant{'s' if len(names) > 1 else ''} {', '.join(names)})"
                 for line, names in from_stack.items()]
    return problems


def _data_dir_problems(scenario: Scenario) -> list[str]:
    """With a data volume the lab sets DATA_DIR itself; a config that also sets it is a
    mistake that would write outside the size-limited filesystem."""
    if scenario.stack.data_volume is None:
        return []
    configs = [("stack.config", scenario.stack.config)] + [
        (f"variants.{name}.config", v.config) for name, v in scenario.variants.items()
    ]
    return [
        f"{where}.DATA_DIR: set by stack.data_volume (the lab mounts the volume and points "
        "DATA_DIR at it); remove it"
        for where, config in configs
        if "DATA_DIR" in config
    ]


def scenario_paths(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def find_scenario(name_or_path: str, directory: Path = SCENARIO_DIR) -> Path:
    """A scenario by name (in scenarios/) or by path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.exists():
            raise ScenarioError(name_or_path, ["no such file"])
        return candidate
    path = directory / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in scenario_paths(directory)) or "none"
        raise ScenarioError(str(path), [f"no scenario named {name_or_path!r} (known: {known})"])
    return path
