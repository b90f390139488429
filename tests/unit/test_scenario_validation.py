"""Validation before anything starts: rates, checkout switches, duplicate keys, `lab check`.

Every mistake here used to pass the loader and fail later — a rate no run can meet, a
misspelt switch the service ignored (the variant ran without its mitigation), a value the
service refused only after Postgres had started, a key YAML silently overwrote.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.cli import main
from lab.scenario.loader import load_scenario_file, scenario_paths
from tests.unit.scenario_docs import problems_of, write

REPO = Path(__file__).resolve().parents[2]

DOC: dict[str, Any] = {
    "name": "demo",
    "title": "a demo",
    "description": "what happened",
    "stack": {"config": {"DB_POOL_MAX": 10}},
    "load": {"users": 5, "spawn_rate": 5, "duration": "20s",
             "endpoints": [{"request": "checkout"}]},
    "fault": {"kind": "drop-index", "at": "5s", "until": "10s"},
    "variants": {
        "baseline": {"expect": [{"window": "fault", "status": 500, "rate": ">= 10%"}]},
        "bigger-pool": {"config": {"DB_POOL_MAX": 50},
                        "expect": [{"window": "fault", "status": 500, "count": "== 0"}]},
    },
}




def with_config(where: str, **config: Any) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(DOC))
    node = doc["stack"] if where == "stack" else doc["variants"][where]
    node["config"] = {**node.get("config", {}), **config}
    return doc


@pytest.mark.parametrize("rate", [">= 200%", "<= 101%", ">= -5%", "-0.5"])
def test_a_rate_outside_0_to_100_percent_is_refused(tmp_path: Path, rate: str) -> None:
    doc = yaml.safe_load(yaml.safe_dump(DOC))
    doc["variants"]["baseline"]["expect"][0]["rate"] = rate
    assert problems_of(tmp_path, doc) == [
        f"variants.baseline.expect.0.rate: a rate is a share from 0% to 100%, got {rate!r}; "
        "expected '>= 10%' or '<= 1%'"
    ]


def test_a_misspelt_switch_is_refused_by_lab_check_with_the_nearest_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = with_config("bigger-pool", DB_POOL_MAXX=10)
    path = write(tmp_path, doc)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert ("variants.bigger-pool.config.DB_POOL_MAXX: unknown checkout variable (the service "
            "would ignore it); did you mean DB_POOL_MAX?") in err


def test_a_value_the_service_would_refuse_is_refused_at_load_time(tmp_path: Path) -> None:
    assert problems_of(tmp_path, with_config("bigger-pool", DB_POOL_MAX="ten")) == [
        "variants.bigger-pool.config.DB_POOL_MAX: expected an integer in 1..1000, got 'ten'"
    ]


def test_variables_the_lab_sets_are_not_switches(tmp_path: Path) -> None:
    assert problems_of(tmp_path, with_config("stack", DATABASE_URL="postgresql://x/y")) == [
        "stack.config.DATABASE_URL: not a switch (the backend sets it on every checkout "
        "instance); remove it"
    ]


def test_rules_between_switches_name_where_each_side_was_set(tmp_path: Path) -> None:
    doc = with_config("stack", DB_POOL_MIN=20)  # above baseline's 10; bigger-pool has 50
    assert problems_of(tmp_path, doc) == [
        "stack.config.DB_POOL_MIN: expected an integer in 0..10, got '20' (in variant baseline)"
    ]
    doc = with_config("bigger-pool", PAYMENT_FALLBACK=True, PAYMENT_SWALLOW_ERRORS=True)
    assert problems_of(tmp_path, doc) == [
        "variants.bigger-pool.config.PAYMENT_SWALLOW_ERRORS: expected false when "
        "PAYMENT_FALLBACK is on (one failure policy), got 'true'"
    ]


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    lines = yaml.safe_dump(DOC, sort_keys=False).splitlines()
    first = lines.index("      DB_POOL_MAX: 50") + 1  # bigger-pool's config
    lines.insert(first, "      DB_POOL_MAX: 5")
    assert problems_of(tmp_path, "\n".join(lines)) == [
        f"line {first + 1}, column 7: duplicate key 'DB_POOL_MAX' (first at line {first}); "
        "YAML would keep only the last"
    ]


def test_a_duplicate_key_at_the_top_level_is_refused_too(tmp_path: Path) -> None:
    text = yaml.safe_dump(DOC, sort_keys=False) + "seed: 2\nseed: 3\n"
    [problem] = problems_of(tmp_path, text)
    assert "duplicate key 'seed'" in problem


def test_a_misspelt_variable_for_the_deploy_fault_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(DOC))
    doc["fault"] = {"kind": "rolling-deploy", "at": "5s", "until": "10s",
                    "params": {"unset": ["PAYMENT_APIKEY"]}}
    assert problems_of(tmp_path, doc) == [
        "fault.params.unset: PAYMENT_APIKEY: unknown checkout variable (the service would "
        "ignore it); did you mean PAYMENT_API_KEY?"
    ]
    doc["fault"]["params"] = {"unset": ["PAYMENT_API_KEY", "DATABASE_URL"],
                              "env": {"DB_POOL_MAX": "ten"}}  # a bad deploy is a fault
    assert load_scenario_file(write(tmp_path, doc)).fault.kind == "rolling-deploy"


def test_lab_check_passes_every_shipped_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [Path(line.split(":")[0]).name for line in out] == [
        p.name for p in scenario_paths()]
    assert len(out) >= 5 and all(": ok (" in line for line in out)


def test_lab_check_imports_neither_aiohttp_nor_asyncpg() -> None:
    """It must answer in well under a second and never need the run machinery."""
    code = ("import sys\nfrom lab.cli import main\nrc = main(['check'])\n"
            "print(sorted(m for m in ('aiohttp', 'asyncpg') if m in sys.modules))\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def _physics_doc(longest_wait: str, p99: str, shows_problem: bool = False) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(DOC))
    doc["physics"] = {"slow_path": "cart-lookup", "fault_demand": 2.5,
                      "longest_wait": longest_wait}
    doc["load"] = {"rate": "calibrated", "duration": "20s",
                   "endpoints": [{"request": "checkout"}]}
    variant = doc["variants"]["bigger-pool"]
    variant["expect"] = [{"window": "fault", "p99": p99}]
    if shows_problem:
        variant["shows_problem"] = True
    return doc


def test_a_latency_claim_longer_than_the_in_flight_cap_holds_is_refused(tmp_path: Path) -> None:
    """The cap holds longest_wait ÷ fault_demand seconds of arrivals: a mitigation that
    answers within 1 s at 2.5× the capacity needs a 2.5 s longest_wait, or honest answers
    would be dropped at the lab's own cap and fail it (what failed CI at 1.5 s)."""
    [problem] = problems_of(tmp_path, _physics_doc("1.5s", "<= 1000ms"))
    assert "variants.bigger-pool.expect.0: claims answers <= 1000 ms in the fault window" in problem
    assert "the in-flight cap holds 0.6s of arrivals" in problem
    assert "expected physics.longest_wait of at least 2.5s" in problem
    for fits in (_physics_doc("2.5s", "<= 1000ms"), _physics_doc("1.5s", "<= 600ms"),
                 # A control shows a problem: its latency claims are no mitigation's promise.
                 _physics_doc("1.5s", "<= 1000ms", shows_problem=True)):
        assert load_scenario_file(write(tmp_path, fits)).name == "demo"
