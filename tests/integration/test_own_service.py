"""The lab against a service it did not write: examples/orders (Flask and psycopg, its own
schema and seed, a shipping-quote dependency of its own), on local processes, through
`lab run FILE` as a user types it.

Each scenario runs once (all its variants, module fixtures); each test asserts its own
variant's verdict and the figures behind it. Then the ways a user's stack can be wrong —
a service that never gets ready, a dependency variable it does not read, an index that is
not there — each with its clear error before any load, and nothing left running.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.lab_cli import run_lab

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "orders"


def user_processes() -> list[str]:
    """Command lines of the example's processes still running (none may outlive a run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if "orders_service.py" in line or "shipping_stub.py" in line:
            found.append(line)
    return found


def run_file(path: Path, *extra: str, timeout: float = 420) -> tuple[int, str, dict[str, Any]]:
    """`lab run PATH --json`: its exit code, output and the variants by name; asserts
    that nothing of the run is left, the user's own processes included."""
    root = Path(f"/tmp/chaoslab-test-{secrets.token_hex(4)}")
    out = root.with_suffix(".json")
    try:
        proc = run_lab(["run", str(path), *extra, "--json", str(out)], root, timeout=timeout)
        leftovers = sorted(p.name for p in root.iterdir()) if root.exists() else []
        assert leftovers == [], f"runs left behind: {leftovers}"
        assert user_processes() == []
        doc = json.loads(out.read_text()) if out.exists() else {"variants": []}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        out.unlink(missing_ok=True)
    return proc.returncode, proc.stdout + proc.stderr, {v["name"]: v for v in doc["variants"]}


@pytest.fixture(scope="module")
def outage() -> Iterator[dict[str, Any]]:
    code, output, variants = run_file(EXAMPLE / "scenarios" / "dependency-outage.yaml")
    assert code == 0, output
    yield variants


@pytest.fixture(scope="module")
def deploy() -> Iterator[dict[str, Any]]:
    code, output, variants = run_file(EXAMPLE / "scenarios" / "missing-variable.yaml")
    assert code == 0, output
    yield variants


@pytest.fixture(scope="module")
def index() -> Iterator[dict[str, Any]]:
    code, output, variants = run_file(EXAMPLE / "scenarios" / "index-dropped.yaml")
    assert code == 0, output
    yield variants


@pytest.fixture(scope="module")
def locked() -> Iterator[dict[str, Any]]:
    code, output, variants = run_file(EXAMPLE / "scenarios" / "table-locked.yaml")
    assert code == 0, output
    yield variants


def failed(v: dict[str, Any]) -> list[str]:
    return [f"{e['text']}: {e['measured']}" for e in v["expectations"] if not e["passed"]]


def test_a_dependency_outage_reproduces_as_500s(outage: dict[str, Any]) -> None:
    v = outage["baseline"]
    assert v["verdict"] == "PASS", failed(v)
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) >= 0.95 * fault["total"] and fault["total"] >= 50
    assert v["windows"]["before"]["by_class"] == {"2xx": v["windows"]["before"]["total"]}
    # The lab's proxy in front of the user's dependency answered those orders' calls.
    facts = v["evidence"]["facts"]
    assert facts["http_errors"] == {"500": fault["by_status"]["500"]}, facts
    assert {i for w in v["windows"].values() for i in w["by_instance"]} == {"app-1"}


def test_the_fallback_serves_every_order_during_the_outage(outage: dict[str, Any]) -> None:
    v = outage["fallback"]
    assert v["verdict"] == "PASS", failed(v)
    fault = v["windows"]["fault"]
    assert fault["by_class"] == {"2xx": fault["total"]}
    assert v["evidence"]["facts"]["toxic_hits"], v["evidence"]  # the outage did happen


def test_errors_as_503_answer_honestly_with_retry_after(outage: dict[str, Any]) -> None:
    v = outage["errors-as-503"]
    assert v["verdict"] == "PASS", failed(v)
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["retry_after"]["503"] == fault["by_status"]["503"] >= 0.95 * fault["total"]


def test_a_deploy_without_its_key_turns_orders_into_500s(deploy: dict[str, Any]) -> None:
    v = deploy["baseline"]
    assert v["verdict"] == "PASS", failed(v)
    facts = v["evidence"]["facts"]
    # The new instance really ran without the variable: read from its process.
    assert facts["environ_read_from_process"] is True and facts["variables_absent"] is True
    assert facts["deploy"] == "completed" and facts["rollback"] == "completed"
    # The service's own error lines, grouped by the scenario's `error_log.pattern`.
    top = v["signatures"][0]
    assert (top["exception"], top["frame"]) == ("KeyError", "POST /orders")
    assert top["count"] >= v["windows"]["fault"]["by_status"]["500"] // 2


def test_startup_validation_stops_the_roll_out(deploy: dict[str, Any]) -> None:
    v = deploy["startup-validation"]
    assert v["verdict"] == "PASS", failed(v)
    facts = v["evidence"]["facts"]
    assert facts["deploy"] == "failed" and facts["deploy_exit_code"] == 78
    assert facts["deploy_stderr_line"] == "STARTUP_FAILURE missing SHIPPING_API_KEY"
    assert facts["in_rotation_after_revert"] == ["app-1"]


def test_a_dropped_index_exhausts_the_pool_by_its_physics(index: dict[str, Any]) -> None:
    v = index["baseline"]
    assert v["verdict"] == "PASS", failed(v)
    c = v["calibration"]
    # The load was sized from the service's own query, timed here, and the declared pool.
    assert c["slow_path"] == "own" and c["pool"] == 5 and c["slow_share"] == 1.0
    assert c["slow_cost_ms"] > 10 * c["healthy_cost_ms"]  # a scan against an index lookup
    assert v["load"]["rate_per_s"] == pytest.approx(c["rate_per_s"], rel=0.01)
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) >= 0.3 * fault["total"]
    facts = v["evidence"]["facts"]
    assert facts["absent_during_fault"] is True and facts["present_after_revert"] is True


def test_pool_and_statement_timeouts_turn_the_500s_into_503s(index: dict[str, Any]) -> None:
    v = index["timeouts-503"]
    assert v["verdict"] == "PASS", failed(v)
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["retry_after"]["503"] == fault["by_status"]["503"] >= 1


def test_the_fixed_migration_keeps_every_order(index: dict[str, Any]) -> None:
    v = index["index-restored"]
    assert v["verdict"] == "PASS", failed(v)
    assert v["evidence"]["facts"]["absent_during_fault"] is False


def test_a_held_table_lock_drains_the_pool_into_500s(locked: dict[str, Any]) -> None:
    v = locked["baseline"]
    assert v["verdict"] == "PASS", failed(v)
    facts = v["evidence"]["facts"]
    # The lab's backend held the lock all through the window, orders waited behind it,
    # and nothing of the lab's held it after the revert (read from pg_locks).
    assert facts["held_during_fault"] is True and facts["released_after_revert"] is True
    assert facts["max_waiting"] >= 5  # at least the pool's 5 connections, each an order
    assert v["signatures"][0]["exception"] == "PoolTimeout"


def test_a_statement_timeout_turns_the_lock_into_503s(locked: dict[str, Any]) -> None:
    v = locked["statement-timeout-503"]
    assert v["verdict"] == "PASS", failed(v)
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["retry_after"]["503"] == fault["by_status"]["503"] >= 0.8 * fault["total"]


def test_a_readiness_check_takes_the_drained_instance_out(locked: dict[str, Any]) -> None:
    v = locked["readiness"]
    assert v["verdict"] == "PASS", failed(v)
    assert v["evidence"]["took_effect"] is True


def variant_of(tmp_path: Path, source: str, **changes: Any) -> Path:
    """A copy of one of the example's scenarios, changed, next to the example's files."""
    doc = yaml.safe_load((EXAMPLE / "scenarios" / source).read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    doc["variants"] = {"baseline": doc["variants"]["baseline"]}
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in ("orders_service.py", "shipping_stub.py", "schema.sql", "seed.sql",
                 "docker-compose.yml"):
        os.symlink(EXAMPLE / name, tmp_path / name)
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_service_that_never_gets_ready_is_named_with_its_output(tmp_path: Path) -> None:
    path = variant_of(tmp_path, "dependency-outage.yaml",
                      **{"stack.service.health": "/never", "stack.service.ready_timeout": "3s"})
    code, output, _ = run_file(path, timeout=180)
    assert code == 3, output
    assert "your service (app-1) did not answer http://127.0.0.1:" in output
    assert "/never within 3s" in output
    assert "command: " in output and "orders_service.py" in output
    assert "orders listening on 127.0.0.1:" in output  # the tail of its own output


def test_a_dependency_variable_the_service_does_not_read_is_said_before_the_load(
    tmp_path: Path,
) -> None:
    # The service reads SHIPPING_URL; the scenario hands the proxy's address in another
    # variable, so every call would bypass the fault proxy.
    path = variant_of(tmp_path, "dependency-outage.yaml", **{
        "stack.dependencies.0.url_env": "SHIPPING_ENDPOINT",
        "stack.service.env": {"SHIPPING_API_KEY": "sk-orders-example",
                              "SHIPPING_URL": "http://127.0.0.1:9"}})
    code, output, variants = run_file(path, timeout=180)
    assert code == 2, output
    assert ("stack.dependencies.shipping.url_env: your service made no request to shipping "
            "through SHIPPING_ENDPOINT") in output
    assert variants == {}  # no load ran, nothing was judged


def test_an_index_that_does_not_exist_is_said_before_the_load(tmp_path: Path) -> None:
    path = variant_of(tmp_path, "dependency-outage.yaml", **{
        "fault": {"kind": "drop-index", "at": "4s", "until": "9s",
                  "params": {"index": "idx_orders_by_customer"}}})
    code, output, variants = run_file(path, timeout=180)
    assert code == 3, output
    assert "drop-index: index 'idx_orders_by_customer' does not exist" in output
    assert "idx_orders_customer_id" in output  # the indexes it has, to pick from
    assert variants == {}
