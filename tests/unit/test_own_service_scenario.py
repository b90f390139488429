"""A scenario against the user's own service: what the loader accepts, what it refuses
before anything starts (each with the field and what was expected), how its requests
reach the load generator, and how a request is made unique."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import ScenarioError
from lab.load.locust_process import load_spec_json
from lab.load.own_requests import fill
from lab.scenario.loader import load_scenario_file
from lab.stack.wiring import stack_request

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "orders" / "scenarios"


def own(tmp_path: Path, **changes: Any) -> Path:
    """The example's dependency-outage scenario with `changes` (dotted keys), written
    next to copies of its files, so relative paths resolve as they do for the example."""
    doc = yaml.safe_load((EXAMPLE / "dependency-outage.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is None:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    for name in ("orders_service.py", "shipping_stub.py", "schema.sql", "seed.sql",
                 "docker-compose.yml"):
        (tmp_path / name).write_text((EXAMPLE.parent / name).read_text())
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(path)
    return info.value.problems


@pytest.mark.parametrize("name", ["dependency-outage", "missing-variable"])
def test_the_examples_scenarios_load(name: str) -> None:
    scenario = load_scenario_file(EXAMPLE / f"{name}.yaml")
    request = stack_request(scenario, "baseline", "cl-test")
    assert request.own is not None
    assert request.own.service.argv[1].endswith("orders_service.py")
    assert request.own.service.cwd == str(EXAMPLE)  # relative paths from the file's folder
    assert [Path(f).name for f in request.own.sql_files] == ["schema.sql", "seed.sql"]
    assert [d.url_env for d in request.own.dependencies] == ["SHIPPING_URL"]


def test_a_missing_sql_file_is_named(tmp_path: Path) -> None:
    path = own(tmp_path, **{"stack.database.sql": ["../schema.sql", "../missing.sql"]})
    [line] = problems(path)
    assert line.startswith("stack.database.sql.1: no file ../missing.sql")


def test_a_program_not_on_path_is_named(tmp_path: Path) -> None:
    path = own(tmp_path, **{"stack.service.command": ["no-such-server-xyz", "app.py"]})
    assert problems(path) == ["stack.service.command: no program 'no-such-server-xyz' on PATH"]


def test_the_sample_shops_requests_are_refused(tmp_path: Path) -> None:
    path = own(tmp_path, **{"load.endpoints": [{"request": "checkout"}]})
    [line] = problems(path)
    assert line.startswith("load.endpoints.0.request: 'checkout' is the sample shop's")


def test_a_fault_that_needs_the_sample_is_refused(tmp_path: Path) -> None:
    path = own(tmp_path, **{"fault.kind": "hot-key-expiry", "fault.params": {}})
    assert any(p.startswith("fault.kind: 'hot-key-expiry' acts on the sample shop only")
               for p in problems(path))


def test_a_deploy_without_a_variable_the_service_never_had_is_refused(tmp_path: Path) -> None:
    path = own(tmp_path, **{"fault.kind": "rolling-deploy",
                            "fault.params": {"unset": ["SHIPPING_KEY"]}})
    [line] = problems(path)
    assert line.startswith("fault.params.unset: SHIPPING_KEY is not given to the service")


def test_a_dependency_outside_this_machine_needs_allow_remote(tmp_path: Path) -> None:
    dep = {"name": "shipping", "url_env": "SHIPPING_URL", "url": "http://10.0.0.7:9000"}
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(own(tmp_path, **{"stack.dependencies": [dep]}))
    assert "10.0.0.7 is not this machine" in str(info.value)
    load_scenario_file(own(tmp_path, **{"stack.dependencies": [{**dep, "allow_remote": True}]}))


def test_own_requests_reach_the_load_generator_with_their_contract() -> None:
    scenario = load_scenario_file(EXAMPLE / "dependency-outage.yaml")
    doc = json.loads(load_spec_json(scenario.load, carts=1, seed=1))
    [endpoint] = doc["endpoints"]
    assert endpoint["request"] == "order"
    assert endpoint["contract"] == {"json": True, "requires": ["order_id", "status"]}
    assert endpoint["custom"]["method"] == "POST" and endpoint["custom"]["path"] == "/orders"


def test_fill_makes_each_request_unique() -> None:
    rng = random.Random(1)
    body = {"customer_id": "{int:1:20000}", "sku": "SKU-{int:1:9}", "key": "{uuid}",
            "items": [{"qty": "{int:2:2}"}], "note": "as written"}
    a, b = fill(body, rng), fill(body, rng)
    assert isinstance(a["customer_id"], int) and 1 <= a["customer_id"] <= 20000
    assert re.fullmatch(r"SKU-[1-9]", a["sku"])
    assert a["key"] != b["key"] and re.fullmatch(r"[0-9a-f]{32}", a["key"])
    assert a["items"] == [{"qty": 2}] and a["note"] == "as written"


def test_your_own_slow_path_sizes_the_load_from_your_query() -> None:
    from lab.scenario.physics import Measurement, calibration_text, size_load

    scenario = load_scenario_file(EXAMPLE / "index-dropped.yaml")
    assert scenario.physics is not None
    m = Measurement(probe="EXPLAIN ANALYZE, least of 5, index scans off",
                    slow_ms=[50.0, 47.0, 49.0], healthy_ms=[0.05, 0.04], cores=2, pool=5,
                    took_s=0.3)
    c = size_load(scenario.physics, m, share=1.0, default_max_in_flight=2000)
    # min(pool 5, 2 cores) at once, each for the least cost: 2 / 0.047 s = 42.6/s.
    assert c.capacity_per_s == pytest.approx(42.55, abs=0.01)
    assert c.rate_per_s == pytest.approx(2.5 * 42.55, abs=0.1)
    assert c.max_in_flight == 171  # capacity × longest_wait 4 s
    text = calibration_text(c.to_json())
    assert text.startswith("loyalty count without its index 47.0 ms")
    assert "0.04 ms with its index" in text


def test_the_sample_shops_slow_path_is_refused_for_your_service(tmp_path: Path) -> None:
    path = own(tmp_path, **{
        "physics": {"slow_path": "cart-lookup", "fault_demand": 2.5},
        "load.rate": "calibrated"})
    assert problems(path) == ["(top level): physics.slow_path: 'cart-lookup' is the sample "
                              "shop's; state your own (endpoint, query, args, pool)"]
