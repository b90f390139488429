"""The variants no other integration test runs: the controls that exist to show a problem
(a bigger pool is no rescue, retries without keys double-charge, a swallowed error is a
lying 200), the fallback, and the root fix. Each runs through `lab run` as a user types
it, with the shipped scenario file; its own expectations must hold, and the figure that
makes its point is asserted here too, so a change that empties the proof fails."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.lab_cli import run_lab, variants

Variants = dict[str, dict[str, Any]]


def _run(scenario: str, names: list[str], tmp: Path) -> Variants:
    # Not under pytest's tmp_path (0700): the unprivileged Postgres user must traverse it.
    runs_root = Path(f"/tmp/chaoslab-test-{secrets.token_hex(4)}")
    out = tmp / "results.json"
    args = ["run", scenario, "--json", str(out), "--quiet"]
    for name in names:
        args += ["--variant", name]
    proc = run_lab(args, runs_root, timeout=900)
    leftovers = list(runs_root.iterdir()) if runs_root.exists() else []
    shutil.rmtree(runs_root, ignore_errors=True)
    assert leftovers == []
    found = variants(out)
    failed = {n: [e for e in v["expectations"] if not e["passed"]]
              for n, v in found.items() if not v["passed"]}
    assert proc.returncode == 0 and not failed, (failed, proc.stdout[-3000:], proc.stderr)
    return found


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Variants:
    return _run("pool-exhaustion", ["bigger-pool", "index-restored"],
                tmp_path_factory.mktemp("pool"))


@pytest.fixture(scope="module")
def payments(tmp_path_factory: pytest.TempPathFactory) -> Variants:
    return _run("flaky-dependency", ["retries-without-keys", "fallback", "swallow-errors"],
                tmp_path_factory.mktemp("payments"))


def test_bigger_pool_is_no_rescue(pool: Variants) -> None:
    bigger = pool["bigger-pool"]["windows"]["fault"]
    fixed = pool["index-restored"]["windows"]["fault"]
    # The queue moves from the pool to two cores: latency stays an order of magnitude
    # above the root fix's, and the 5xx do not vanish.
    assert bigger["p50_ms"] >= 10 * fixed["p50_ms"]
    assert sum(n for s, n in bigger["by_status"].items() if s.startswith("5")) >= 1


def test_index_restored_serves_everything_fast(pool: Variants) -> None:
    fault = pool["index-restored"]["windows"]["fault"]
    assert fault["by_class"].get("2xx", 0) == fault["total"] > 0
    assert pool["index-restored"]["evidence"]["took_effect"] is True


def test_retries_without_keys_double_charge(payments: Variants) -> None:
    assert payments["retries-without-keys"]["ledger"]["double_charges"] >= 1


def test_fallback_queues_every_pending_payment(payments: Variants) -> None:
    v = payments["fallback"]
    fault = v["windows"]["fault"]
    assert fault["by_class"].get("fallback", 0) >= 100
    assert not any(s.startswith("5") for s in fault["by_status"])
    assert v["ledger"]["pending_orders"] >= fault["by_class"]["fallback"]
    assert v["ledger"]["pending_unaccounted"] == 0


def test_swallowed_errors_are_caught_as_lying_200s(payments: Variants) -> None:
    fault = payments["swallow-errors"]["windows"]["fault"]
    assert fault["by_class"].get("lying_200", 0) >= 1
    assert fault["by_class"].get("lying_200", 0) < fault["total"]
