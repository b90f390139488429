"""compose/ files: valid for Compose v1.29 (what Debian ships) and v2 (what users have),
and in agreement with what the docker backend starts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.backends.docker import (
    CHECKOUT_PORT,
    ContainerSpec,
    checkout_spec,
    migrate_spec,
    postgres_spec,
)
from lab.scenario import find_scenario, load_scenario_file

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"
DSN = "postgresql://lab@postgres:5432/shop"


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def test_parses_with_compose_v1() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs Debian's docker-compose (make docker-engine)")
        pytest.skip("docker-compose (v1.29) is not installed")
    proc = subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_stays_within_what_both_compose_versions_accept() -> None:
    doc = compose()
    # v1.29 needs a 3.x version key; v2 ignores it. Neither needs anything newer.
    assert str(doc["version"]).startswith("3.")
    assert set(doc) <= {"version", "services", "networks", "volumes"}
    for name, service in doc["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes beyond loopback"
        assert isinstance(service.get("depends_on", []), list)  # short form: valid in both


def _agrees(service: dict[str, Any], spec: ContainerSpec) -> None:
    assert service["image"] == spec.image
    assert service["command"] == spec.command
    env = {k: str(v) for k, v in service.get("environment", {}).items()}
    assert env == spec.environment
    published = {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}
    assert published == set(spec.ports)


def test_services_agree_with_the_docker_backend() -> None:
    services = compose()["services"]
    baseline = load_scenario_file(find_scenario("pool-exhaustion"))
    _agrees(services["postgres"], postgres_spec())
    _agrees(services["migrate"], migrate_spec(DSN, baseline.stack.seed.carts,
                                              baseline.stack.seed.items_per_cart))
    _agrees(services["checkout"], checkout_spec("checkout-1", DSN,
                                                baseline.variant_env("baseline")))
    assert f"{CHECKOUT_PORT}:{CHECKOUT_PORT}" in services["checkout"]["ports"][0]
