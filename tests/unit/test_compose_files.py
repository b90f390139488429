"""compose/ files: generated from the docker backend's container specs and the scenarios,
valid for Compose v1.29 (what Debian ships) and v2 (what users have), and merged by
Compose into exactly what the docker backend starts for each incident's baseline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.scenario.loader import load_scenario_file, scenario_paths
from lab.scenario.models import Scenario
from lab.stack import haproxy
from lab.stack.base import RouterSettings
from lab.stack.compose import API_KEY, BASE_FILE, COMPOSE_DIR, DSN, rendered_files
from lab.stack.docker.specs import (
    ContainerSpec,
    checkout_spec,
    migrate_spec,
    payment_wiring,
    postgres_spec,
    proxy_spec,
    router_spec,
)
from lab.stack.wiring import stack_request
from tests.conftest import under_ci

SCENARIOS = [load_scenario_file(p) for p in scenario_paths()]


def _compose_v1() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if under_ci():
            pytest.fail("CI installs Debian's docker-compose (make docker-engine)")
        pytest.skip("docker-compose (v1.29) is not installed")
    return binary


def test_the_files_in_compose_are_what_the_specs_render() -> None:
    stale = [str(path.relative_to(COMPOSE_DIR)) for path, text in rendered_files(SCENARIOS).items()
             if not path.exists() or path.read_text() != text]
    assert stale == [], "run `make compose-files`"


@pytest.mark.ci_may_skip("Debian bookworm ships only Compose v1.29 and no registry here has v2")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_parses_with_compose_v2_where_it_is_installed(scenario: Scenario) -> None:
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False,
                           ) if docker else None
    if probe is None or probe.returncode != 0:
        # Debian bookworm ships only v1.29 and this machine has no other source (see
        # ../shared/design.md): the Compose Specification parser below stands in for v2.
        pytest.skip("Compose v2 (`docker compose`) is not installed here")
    assert docker is not None
    proc = subprocess.run(
        [docker, "compose", "-f", str(BASE_FILE), "-f",
         str(COMPOSE_DIR / "incidents" / f"{scenario.name}.yml"), "config", "-q"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


_DEFAULTED = re.compile(r"\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}")


def _interpolated(text: str) -> str:
    """Compose's own first step: `${VAR:-default}` with the variable unset. The files use
    that form only, for host ports; any other form stays text, which the parser refuses
    where it expects a port or an address."""
    return _DEFAULTED.sub(lambda m: m.group(1), text)


@pytest.mark.parametrize("name", ["docker-compose.yml",
                                  *sorted(f"incidents/{s.name}.yml" for s in SCENARIOS)])
def test_parses_under_the_compose_specification(name: str) -> None:
    """Compose v2 reads the Compose Specification, not the v3 file format v1.29 reads. It
    is not installable here, so a strict parser of the specification (the compose_spec
    crate, through its Python bindings) reads every file: an unknown key, a bad port or a
    reference to an undefined network is an error there as it is in v2."""
    from compose_spec import PyCompose

    parsed = PyCompose.from_yaml(_interpolated((COMPOSE_DIR / name).read_text()))
    parsed.validate()
    raw = yaml.safe_load((COMPOSE_DIR / name).read_text())
    assert sorted(parsed.service_names()) == sorted(raw["services"])


def test_the_specification_parser_refuses_what_v2_refuses() -> None:
    """The check above can fail: the same parser rejects the mistakes v2 rejects."""
    from compose_spec import PyCompose

    base = _interpolated(BASE_FILE.read_text())
    for broken in (base.replace("    image: chaoslab/postgres:dev", "    imagee: x", 1),
                   base.replace("127.0.0.1:5432:5432", "127.0.0.1:99999:5432", 1)):
        assert broken != base
        with pytest.raises(ValueError):
            PyCompose.from_yaml(broken).validate()


def test_every_scenario_has_an_incident_file() -> None:
    incidents = {p.stem for p in (COMPOSE_DIR / "incidents").glob("*.yml")}
    assert incidents == {s.name for s in SCENARIOS}


def test_stays_within_what_both_compose_versions_accept() -> None:
    for path in [BASE_FILE, *(COMPOSE_DIR / "incidents").glob("*.yml")]:
        doc = yaml.safe_load(path.read_text())
        # v1.29 needs a 3.x version key; v2 ignores it. Neither needs anything newer.
        assert str(doc["version"]).startswith("3."), path
        assert set(doc) <= {"version", "services", "networks", "volumes"}, path
        for name, service in doc["services"].items():
            for port in service.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{path}: {name} beyond loopback"
            assert isinstance(service.get("depends_on", []), list)  # short form: both


def _merged(scenario: Scenario, env: dict[str, str] | None = None) -> dict[str, Any]:
    """What Compose v1.29 itself makes of base + incident file (its own merge rules)."""
    proc = subprocess.run(
        [_compose_v1(), "-f", str(BASE_FILE), "-f",
         str(COMPOSE_DIR / "incidents" / f"{scenario.name}.yml"), "config"],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert isinstance(doc, dict)
    return doc


def _ports(service: dict[str, Any]) -> set[tuple[str, int]]:
    """(published, target) pairs, from either syntax ("ip:host:target[/tcp]" or a map)."""
    out = set()
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.add((str(p.get("published", "")), int(p["target"])))
        else:
            _, host, target = str(p).split(":")
            out.add((host, int(target.split("/")[0])))
    return out


def _agrees(service: dict[str, Any], spec: ContainerSpec) -> None:
    assert service["image"] == spec.image
    assert service["command"] == spec.command
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    assert env == spec.environment
    assert {target for _, target in _ports(service)} == set(spec.ports)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_base_plus_incident_is_what_the_docker_backend_starts(scenario: Scenario) -> None:
    services = _merged(scenario)["services"]
    request = stack_request(scenario, "baseline", "compose")
    _agrees(services["postgres"], postgres_spec())
    _agrees(services["migrate"], migrate_spec(DSN, request.seed_carts,
                                              request.seed_items_per_cart))
    _agrees(services["proxy"], proxy_spec("payments", scenario.seed))
    checkout = checkout_spec("checkout-1", DSN,
                             {**payment_wiring("proxy", API_KEY), **request.checkout_env},
                             data_volume_bytes=request.data_volume_bytes)
    _agrees(services["checkout"], checkout)
    assert services["checkout"].get("tmpfs", []) == [
        f"{path}:{opts}" for path, opts in checkout.tmpfs.items()]
    _agrees(services["router"], router_spec())
    [volume] = services["router"]["volumes"]
    source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    config = Path(source).read_text()
    assert config == haproxy.render_config(
        [("checkout-1", "checkout:8080")], request.router,
        int(request.checkout_env.get("RETRY_AFTER_S", "1")))
    # The router's health check is the scenario's (missing-env-var's is shallow: /livez).
    assert f"option httpchk GET {request.router.health_path}" in config


def test_host_ports_move_with_their_variables() -> None:
    [scenario] = [s for s in SCENARIOS if s.name == "pool-exhaustion"]
    router = _merged(scenario, {"CHAOSLAB_ROUTER_PORT": "18080"})["services"]["router"]
    published = _ports(router)
    assert ("18080", 8080) in published and ("8404", 8404) in published


def test_the_healthy_shop_runs_on_service_defaults() -> None:
    base = yaml.safe_load(BASE_FILE.read_text())["services"]
    env = base["checkout"]["environment"]
    assert set(env) == {"PAYMENT_URL", "PAYMENT_API_KEY", "CHECKOUT_HOST", "CHECKOUT_PORT",
                        "CHECKOUT_INSTANCE", "DATABASE_URL"}
    assert (COMPOSE_DIR / "haproxy" / "default.cfg").read_text() == haproxy.render_config(
        [("checkout-1", "checkout:8080")], RouterSettings(), 1)
