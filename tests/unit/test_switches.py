"""One table of checkout switches drives the service's start-up check and the scenario
loader: they must refuse the same values with the same words, and docs/scenarios.md must
list every switch with the default the table gives it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lab.services.checkout.config import CheckoutConfig, ConfigError
from lab.services.checkout.switches import SWITCHES, USER_SWITCHES, Switch, markdown_table
from tests.unit.scenario_docs import problems_if_any

SCENARIO_DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"
SERVICE_ENV = {"CHECKOUT_PORT": "8080", "DATABASE_URL": "postgresql://lab@127.0.0.1:5432/shop"}


def bad_values(s: Switch) -> list[str]:
    """Values the switch's kind and bounds rule out."""
    if s.kind == "integer":
        return ["ten", "1.5", str(int(s.minimum) - 1), str(int(s.maximum) + 1)]
    if s.kind == "number":
        return ["x", "nan", f"{s.minimum - 1:g}", f"{s.maximum * 2:g}"]
    if s.kind == "boolean":
        return ["maybe", "on"]
    if s.kind == "choice":
        return ["nope"]
    return []  # a directory's existence depends on where the service runs: checked there


CASES = [(name, value) for name in USER_SWITCHES for value in bad_values(SWITCHES[name])]


def loader_problems(tmp_path: Path, config: dict[str, str]) -> list[str]:
    doc: dict[str, Any] = {
        "name": "demo", "title": "t", "description": "d",
        "load": {"users": 1, "spawn_rate": 1, "duration": "20s",
                 "endpoints": [{"request": "checkout"}]},
        "fault": {"kind": "drop-index", "at": "5s", "until": "10s"},
        "variants": {"baseline": {"expect": [{"window": "fault", "status": 500, "count": 0}]},
                     "mitigation": {"config": config,
                                    "expect": [{"window": "fault", "status": 500, "count": 0}]}},
    }
    return problems_if_any(tmp_path, doc)


def test_every_user_switch_has_bad_values_to_try() -> None:
    untested = {n for n in USER_SWITCHES if not bad_values(SWITCHES[n])}
    assert untested == {"DATA_DIR"}
    assert len(CASES) > 60


@pytest.mark.parametrize(("name", "value"), CASES)
def test_a_value_the_service_refuses_the_loader_refuses_in_the_same_words(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        CheckoutConfig.from_env({**SERVICE_ENV, name: value})
    assert refused.value.var == name
    assert loader_problems(tmp_path, {name: value}) == [
        f"variants.mitigation.config.{name}: {refused.value.detail}"]


@pytest.mark.parametrize("config", [
    {"DB_POOL_MAX": "10", "DB_POOL_MIN": "11"},
    {"PAYMENT_FALLBACK": "true", "PAYMENT_SWALLOW_ERRORS": "yes"},
])
def test_rules_between_switches_agree(tmp_path: Path, config: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        CheckoutConfig.from_env({**SERVICE_ENV, **config})
    assert loader_problems(tmp_path, config) == [
        f"variants.mitigation.config.{refused.value.var}: {refused.value.detail}"]


def test_defaults_and_bounds_are_accepted_by_both(tmp_path: Path) -> None:
    config = {}
    for name in USER_SWITCHES:
        s = SWITCHES[name]
        if s.kind in ("integer", "number") and name != "DB_POOL_MIN":
            config[name] = str(int(s.maximum) if s.kind == "integer" else s.maximum)
        elif s.default is not None and name != "PAYMENT_SWALLOW_ERRORS":
            config[name] = str(s.default).lower()
    c = CheckoutConfig.from_env({**SERVICE_ENV, **config})
    assert loader_problems(tmp_path, config) == []
    assert c.db_pool_max == 1000 and c.catalog_xfetch_beta == 100.0


def docs_switch_rows() -> dict[str, str]:
    """name → its default cell, from docs/scenarios.md's table of the checkout's switches."""
    text = SCENARIO_DOCS.read_text()
    section = text.split("### The checkout service's switches", 1)[1].split("\n#", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, default_cell = (c.strip() for c in line.strip("|").split("|")[:2])
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", names_cell)
        defaults = [d.strip() for d in default_cell.split(" / ")]
        assert len(names) == len(defaults), line
        rows.update(zip(names, defaults, strict=True))
    return rows


def test_the_docs_list_every_switch_with_its_default() -> None:
    rows = docs_switch_rows()
    assert set(USER_SWITCHES) <= set(rows), \
        "add the missing switches to docs/scenarios.md's table"
    assert set(rows) <= set(SWITCHES), \
        "docs/scenarios.md lists a variable the service does not read"
    for name, cell in rows.items():
        default, shown = SWITCHES[name].default, cell.split(" ")[0]
        if default is None:
            assert shown in ("unset", "—"), name
        elif isinstance(default, bool | str):
            assert shown == str(default).lower(), name
        else:
            assert float(shown) == default, name


def test_the_docs_table_is_the_one_rendered_from_the_switch_table() -> None:
    section = SCENARIO_DOCS.read_text().split("### The checkout service's switches", 1)[1]
    lines = [line for line in section.split("\n#", 1)[0].splitlines() if line.startswith("|")]
    assert "\n".join(lines) + "\n" == markdown_table(), (
        "docs/scenarios.md's table of the checkout's switches differs from SWITCHES: run "
        "`python -m lab.services.checkout.switches --markdown` and paste its output over "
        "the table")


def test_public_config_lists_every_kept_switch_from_the_table() -> None:
    c = CheckoutConfig.from_env({**SERVICE_ENV, "DATABASE_URL": "postgresql://lab:pw@h/shop"})
    kept = [name for name, s in SWITCHES.items() if s.field]
    assert list(c.public()) == [*kept, "MISSING_REQUIRED"]
    assert c.public()["DATABASE_URL"] == "postgresql://lab:***@h/shop"
