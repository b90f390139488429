"""The user's own service on the docker backend, before any engine is involved: what the
loader says of a compose file and its service names, what the docker backend needs that
local processes do not (said with exit 2 before anything starts), how Compose's resolved
output is read, and what a container of the user's image is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli import main
from lab.errors import BackendError
from lab.scenario.loader import load_scenario_file
from lab.stack.docker.own import OWN_PORT, container_spec, docker_problems
from lab.stack.docker.user_compose import (
    ComposeService,
    UserCompose,
    _argv,
    _environment,
    default_project,
)
from lab.stack.wiring import own_stack
from tests.unit.test_own_service_scenario import EXAMPLE, own, problems


def test_the_examples_compose_declaration_resolves_to_its_file_and_services() -> None:
    stack = own_stack(load_scenario_file(EXAMPLE / "dependency-outage.yaml"))
    assert stack is not None
    assert stack.compose_file == str((EXAMPLE.parent / "docker-compose.yml").resolve())
    assert stack.service.compose_service == "orders"
    assert stack.service.host_env == "ORDERS_HOST"
    [dep] = stack.dependencies
    assert dep.process is not None and dep.process.compose_service == "shipping"
    assert docker_problems(stack) == []


def test_a_missing_compose_file_is_named(tmp_path: Path) -> None:
    path = own(tmp_path, **{"stack.compose": {"file": "../nope.yml"}})
    [line] = problems(path)
    assert line.startswith("stack.compose.file: no file ../nope.yml next to the scenario")


def test_a_service_the_compose_file_lacks_is_named_with_those_it_has(tmp_path: Path) -> None:
    path = own(tmp_path, **{"stack.service.compose_service": "order",
                            "stack.dependencies.0.compose_service": "shiping"})
    assert problems(path) == [
        "stack.service.compose_service: ../docker-compose.yml has no service 'order' "
        "(it has: orders, postgres, shipping)",
        "stack.dependencies.shipping.compose_service: ../docker-compose.yml has no service "
        "'shiping' (it has: orders, postgres, shipping)"]


def test_docker_needs_the_compose_names_and_the_address_variables(tmp_path: Path) -> None:
    path = own(tmp_path, **{"stack.compose": None, "stack.service.host_env": None,
                            "stack.dependencies.0.compose_service": None})
    stack = own_stack(load_scenario_file(path))  # fine for local processes
    assert stack is not None
    found = docker_problems(stack)
    assert [line.split(":")[0] for line in found] == [
        "stack.compose.file", "stack.service.host_env",
        "stack.dependencies.shipping.compose_service"]


def test_a_dependency_reached_at_a_url_cannot_be_reached_from_a_container(
        tmp_path: Path) -> None:
    dep = {"name": "shipping", "url_env": "SHIPPING_URL", "url": "http://127.0.0.1:9000"}
    stack = own_stack(load_scenario_file(own(tmp_path, **{"stack.dependencies": [dep]})))
    assert stack is not None
    [line] = docker_problems(stack)
    assert line.startswith("stack.dependencies.shipping.url: a dependency reached at a URL")


def test_lab_run_on_docker_says_what_is_missing_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = own(tmp_path, **{"stack.service.compose_service": None})
    assert main(["run", str(path), "--backend", "docker"]) == 2
    err = capsys.readouterr().err
    assert "invalid scenario" in err
    assert "stack.service.compose_service: the service of your compose file" in err


def test_composes_environment_and_commands_are_read_in_both_spellings() -> None:
    assert _environment({"A": "1", "B": None, "C": 3}) == {"A": "1", "C": "3"}
    assert _environment(["A=1", "B", "C=x=y"]) == {"A": "1", "C": "x=y"}
    assert _argv("python app.py --flag 'a b'") == ["python", "app.py", "--flag", "a b"]
    assert _argv(["python", 3]) == ["python", "3"]
    assert _argv(None) is None


def test_composes_default_project_name_is_the_folder_made_safe(tmp_path: Path) -> None:
    compose = tmp_path / "My Team.Orders" / "docker-compose.yml"
    compose.parent.mkdir()
    assert default_project(compose) == "myteamorders"


def test_the_image_is_composes_name_for_it_in_either_version(tmp_path: Path) -> None:
    compose = tmp_path / "shop" / "docker-compose.yml"
    compose.parent.mkdir()
    compose.write_text("services: {}\n")
    found = UserCompose.__new__(UserCompose)
    found.file = compose
    assert found._image("web", {"image": "team/web:1"}, "shop", lambda t: True) == "team/web:1"
    assert found._image("web", {"build": "."}, "shop", {"shop-web"}.__contains__) == "shop-web"
    assert found._image("web", {"build": "."}, "shop", {"shop_web"}.__contains__) == "shop_web"
    with pytest.raises(BackendError, match="looked for shop_web, shop-web"):
        found._image("web", {"build": "."}, "shop", lambda t: False)


def test_a_container_gets_the_environment_whole_with_its_address_and_port() -> None:
    stack = own_stack(load_scenario_file(EXAMPLE / "missing-variable.yaml"))
    assert stack is not None
    image = ComposeService("orders", "team/orders:1", command=["python", "orders_service.py"],
                           environment={"SHIPPING_API_KEY": "from-compose", "POOL_SIZE": "5"})
    # A deploy that unset the key hands the environment without it: it must stay unset,
    # not come back from the compose file's.
    spec = container_spec(image, stack.service, {"POOL_SIZE": "9"}, "service")
    assert "SHIPPING_API_KEY" not in spec.environment
    assert spec.environment == {"POOL_SIZE": "9", "ORDERS_PORT": str(OWN_PORT),
                                "ORDERS_HOST": "0.0.0.0"}
    assert spec.image == "team/orders:1" and spec.command == ["python", "orders_service.py"]
    assert spec.ports == (OWN_PORT,)


def test_gateway_names_the_dependency_it_acts_on(tmp_path: Path) -> None:
    schedule = [{"after": "0s", "type": "http_error", "status": 500}]
    path = own(tmp_path, **{"fault.params": {"schedule": schedule, "dependency": "tax"}})
    assert problems(path) == ["fault.params.dependency: no dependency named 'tax' "
                              "(declared: shipping)"]
    ok = own(tmp_path, **{"fault.params": {"schedule": schedule, "dependency": "shipping"}})
    assert load_scenario_file(ok).fault.params["dependency"] == "shipping"


def test_the_sample_shops_gateway_takes_no_dependency_name(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((EXAMPLE.parents[2] / "scenarios" / "flaky-dependency.yaml")
                         .read_text())
    doc["fault"]["params"]["dependency"] = "payments"
    path = tmp_path / "flaky-dependency.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert any(p.startswith("fault.params.dependency: names one of your own")
               for p in problems(path))


def test_the_gateway_fault_drives_the_proxy_of_the_dependency_it_names() -> None:
    from lab.errors import FaultError
    from lab.faults.gateway import GatewayFault, GatewayParams
    from lab.stack.base import ServiceInstance, Stack

    stack = Stack("local", "cl-t", "http://127.0.0.1:1", "", [], "/tmp", services=[
        ServiceInstance("router", "http://127.0.0.1:2", "router"),
        ServiceInstance("proxy-shipping", "http://127.0.0.1:3", "proxy"),
        ServiceInstance("proxy-tax", "http://127.0.0.1:4/", "proxy")])
    schedule = [{"after": "0s", "type": "http_error", "status": 500}]
    fault = GatewayFault(GatewayParams(schedule=schedule, dependency="tax"), stack, 1)
    assert fault.proxy.admin_url == "http://127.0.0.1:4"
    lost = GatewayFault(GatewayParams(schedule=schedule, dependency="billing"), stack, 1)
    with pytest.raises(FaultError, match="no dependency named 'billing'"):
        _ = lost.proxy


EXAMPLE_ERROR_LOG = r"unhandled (?P<exception>\w+) on (?P<frame>\S+ \S+): (?P<message>.*)"


def test_your_services_error_lines_are_grouped_by_the_pattern_you_declare() -> None:
    from lab.verdict.results import failure_signatures

    scenario = load_scenario_file(EXAMPLE / "missing-variable.yaml")
    assert scenario.error_log_pattern == EXAMPLE_ERROR_LOG
    lines = [  # as the example's Flask logger writes them, traceback lines between
        "2026-12-04 01:25:01,123 ERROR orders: unhandled KeyError on POST /orders: "
        "'SHIPPING_API_KEY'",
        "Traceback (most recent call last):",
        '  File "orders_service.py", line 394, in create_order',
        "2026-12-04 01:25:01,200 ERROR orders: unhandled KeyError on POST /orders: "
        "'SHIPPING_API_KEY'",
        "2026-12-04 01:25:02,001 ERROR orders: unhandled PoolTimeout on POST /orders: "
        "couldn't get a connection after 30.00 sec",
        '{"event": "unhandled_exception", "exception": "Sample"}',  # not this service's
    ]
    [key_error, pool] = failure_signatures(lines, scenario.error_log_pattern)
    assert (key_error.exception, key_error.frame, key_error.count) == \
        ("KeyError", "POST /orders", 2)
    assert key_error.message == "'SHIPPING_API_KEY'"
    assert (pool.exception, pool.count) == ("PoolTimeout", 1)
    # Without a declared pattern only the sample's JSON lines are read.
    assert [s.exception for s in failure_signatures(lines)] == ["Sample"]


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"unhandled (\w+)", "expected a named group (?P<exception>…)"),
    (r"unhandled (?P<exception>\w+", "not a regular expression"),
    (r"(?P<exception>\w+) (?P<where>\S+)", "unknown group(s) where"),
])
def test_an_error_log_pattern_that_cannot_name_the_error_is_refused(
        tmp_path: Path, pattern: str, expected: str) -> None:
    path = own(tmp_path, **{"stack.service.error_log": {"pattern": pattern}})
    [line] = problems(path)
    assert line.startswith("stack.service.error_log.pattern:") and expected in line


def test_lock_table_names_its_table_and_takes_postgres_lock_modes(tmp_path: Path) -> None:
    from lab.faults.lock_table import quoted

    path = own(tmp_path, **{"fault.kind": "lock-table", "fault.params": {}})
    assert problems(path) == ["fault.params.table: Field required"]
    path = own(tmp_path, **{"fault.kind": "lock-table",
                            "fault.params": {"table": "orders; DROP TABLE x",
                                             "mode": "EVERYTHING"}})
    found = problems(path)
    assert [p.split(":")[0] for p in found] == ["fault.params.table", "fault.params.mode"]
    ok = own(tmp_path, **{"fault.kind": "lock-table",
                          "fault.params": {"table": "public.orders", "mode": "SHARE"}})
    assert load_scenario_file(ok).fault.params == {"table": "public.orders", "mode": "SHARE"}
    assert quoted("public.orders") == '"public"."orders"'


def test_a_database_fault_without_a_database_is_refused(tmp_path: Path) -> None:
    path = own(tmp_path, **{"fault.kind": "lock-table", "fault.params": {"table": "orders"},
                            "stack.database": None})
    assert "fault.kind: 'lock-table' acts on your database: declare it under stack.database" \
        in problems(path)


def test_your_endpoints_rule_makes_a_2xx_that_admits_failure_a_lying_200(
        tmp_path: Path) -> None:
    import json

    from lab.load.classify import answer_outcome
    from lab.load.contracts import SuccessContract
    from lab.load.locust_process import endpoint_json

    path = own(tmp_path, **{"load.endpoints.0.request.lies_when":
                            {"state": ["rejected"], "accepted": [False]}})
    [endpoint] = load_scenario_file(path).load.endpoints
    contract = SuccessContract.from_json(json.loads(json.dumps(endpoint_json(endpoint)))
                                         ["contract"])  # as the locustfile gets it
    ctype = "application/json"

    def outcome(doc: dict[str, object]) -> tuple[str, str, str | None]:
        return answer_outcome(201, ctype, json.dumps(doc).encode(), contract)

    real = {"order_id": 7, "status": "confirmed"}
    assert outcome(real) == ("response", "ok", None)
    assert outcome({**real, "state": "rejected"}) == ("response", "lying_200", None)
    assert outcome({**real, "accepted": False}) == ("response", "lying_200", None)
    assert outcome({**real, "accepted": 0}) == ("response", "ok", None)  # not false
    assert outcome({"state": "rejected"})[1] == "lying_200"  # a lie, not a broken contract
