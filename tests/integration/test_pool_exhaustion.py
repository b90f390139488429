"""The pool-exhaustion incident end to end: real Postgres, the real checkout service,
Locust as a subprocess, the shipped scenario file with its own expectations."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lab.run.runner import run_variant
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.services.checkout.schema import CART_ITEMS_INDEX
from lab.stack.base import StackRequest
from lab.stack.local import LocalBackend, LocalStackHandle
from lab.system.processes import pids_with_run_id
from tests.doc_samples import block, sample_after, shape, table_head
from tests.integration.lab_cli import popen_lab, run_lab, stop, wait_for_line

REPO = Path(__file__).resolve().parents[2]


def variant_json(path: Path, name: str) -> dict[str, object]:
    doc = json.loads(path.read_text())
    [variant] = [v for v in doc["variants"] if v["name"] == name]
    return variant  # type: ignore[no-any-return]


def run_one(
    variant: str, runs_root: Path, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`lab run pool-exhaustion --variant VARIANT --json`, as a user types it; exit 0."""
    out = tmp_path / "results.json"
    proc = run_lab(
        ["run", "pool-exhaustion", "--variant", variant, "--json", str(out)], runs_root
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    v = variant_json(out, variant)
    # The windows begin when the load began: its schedule starts with the window, even
    # for a scenario's first variant, whose capacity probe ran a generator on the same log
    # just before (its start marker once made the windows 4.1-4.9 s early).
    assert v["load"]["generator_started_s"] < 0.2, v["load"]  # type: ignore[index]
    return proc, v


def test_baseline_reproduces_the_500s_from_the_realistic_chain(
    runs_root: Path, tmp_path: Path
) -> None:
    proc, v = run_one("baseline", runs_root, tmp_path)
    fault = v["windows"]["fault"]
    before = v["windows"]["before"]
    # The 500s are there during the fault and not before it: no request that completed
    # before the index was dropped failed (one sent just before, whose query then ran as
    # a sequential scan and outlived its session, is the fault's; windows are by send time).
    assert fault["by_status"].get("500", 0) / fault["total"] >= 0.10
    assert before["completed_by_class"].get("500", 0) == 0
    # ...and they come from the session expiring mid-request, not from a planted raise.
    top = v["signatures"][0]
    assert top["exception"] == "AttributeError"
    assert "handlers.py" in top["frame"] and "complete_checkout" in top["frame"]
    # The fault left evidence: the index absent during the window, back afterwards.
    evidence = v["evidence"]
    assert evidence["took_effect"] is True
    assert evidence["facts"]["absent_during_fault"] is True
    assert evidence["facts"]["present_after_revert"] is True
    # The service's own metrics show the cause: requests waiting for a pool connection.
    waiting = [m["checkout-1"]["checkout_db_pool_waiting"] for m in
               (s["metrics"] for s in v["timeline"] if s["phase"] == "fault")
               if "checkout-1" in m]
    assert max(waiting) >= 1
    # The table shows the verdict with the measured figure.
    assert "baseline  PASS" in proc.stdout
    assert "ok   [fault] 500 share >=" in proc.stdout
    # The docs' sample (docs/running.md, from a real run) has the shape printed today.
    sample = sample_after("docs/running.md", "the shape should not:")
    printed = proc.stdout.split("\n")
    printed = printed[next(i for i, line in enumerate(printed)
                           if line.startswith("pool-exhaustion:")):]
    assert table_head(sample, "pool-exhaustion:") == table_head(printed, "pool-exhaustion:")
    assert shape(block(sample, "baseline ")[0]) == shape(block(printed, "baseline ")[0])
    assert ([shape(line) for line in block(sample, "baseline — ")]
            == [shape(line) for line in block(printed, "baseline — ")])


def test_timeouts_turn_the_500s_into_503s_with_retry_after(
    runs_root: Path, tmp_path: Path
) -> None:
    _, v = run_one("timeouts", runs_root, tmp_path)
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["by_status"].get("503", 0) >= 1
    assert fault["retry_after"]["503"] == fault["by_status"]["503"]
    assert v["passed"] is True


def test_readiness_takes_the_instance_out_during_the_fault_and_only_then(
    runs_root: Path, tmp_path: Path
) -> None:
    _, v = run_one("readiness", runs_root, tmp_path)
    windows = v["windows"]
    # Steady-state bursts stay under the grace period: no 503 before the fault...
    assert windows["before"]["by_status"].get("503", 0) == 0
    # ...the router answers 503 + Retry-After itself while the pool stays drained...
    fault = windows["fault"]
    assert fault["by_instance"].get("router", 0) >= 100
    assert fault["retry_after"]["503"] == fault["by_status"]["503"]
    assert fault["by_status"].get("500", 0) / fault["total"] <= 0.40
    # ...because /metrics showed the pool under pressure past the 1 s grace.
    pressure = [s["metrics"]["checkout-1"]["checkout_db_pool_pressure_seconds"]
                for s in v["timeline"]
                if s["phase"] == "fault" and "checkout-1" in s["metrics"]]
    assert max(pressure) >= 1.0
    assert v["passed"] is True


class _IndexCheckingBackend(LocalBackend):
    """The local backend, but it looks at the database just before teardown."""

    index_present_at_teardown: bool | None = None

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[LocalStackHandle]:
        async with super().up(request) as handle:
            try:
                yield handle
            finally:
                conn = await asyncpg.connect(handle.stack.db_dsn)
                try:
                    n = await conn.fetchval(
                        "SELECT count(*) FROM pg_indexes WHERE indexname = $1", CART_ITEMS_INDEX)
                finally:
                    await conn.close()
                self.index_present_at_teardown = n == 1


def test_cancel_mid_fault_reverts_and_leaves_nothing(runs_root: Path) -> None:
    scenario = load_scenario_file(find_scenario("pool-exhaustion"))
    backend = _IndexCheckingBackend()
    phases: list[str] = []

    async def scenario_cancelled_in_fault() -> None:
        task = asyncio.create_task(
            run_variant(scenario, "baseline", backend, lambda p: phases.append(p.phase)))
        while "fault" not in phases:
            await asyncio.sleep(0.2)
            assert not task.done(), "the run ended before reaching the fault"
        await asyncio.sleep(2)
        run_ids = [p.name for p in runs_root.iterdir()]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(run_ids) == 1
        assert list(pids_with_run_id(run_ids[0])) == []

    asyncio.run(scenario_cancelled_in_fault())
    assert backend.index_present_at_teardown is True  # the fault was reverted first
    # runs_root's teardown asserts the run directory is gone.


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_fault_leaves_no_process_and_no_files(
    runs_root: Path, sig: signal.Signals, code: int
) -> None:
    proc = popen_lab(["run", "pool-exhaustion", "--variant", "baseline", "--progress", "lines"],
                     runs_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_line(proc.stderr, lambda line: " fault " in line, 90, "fault phase")
        time.sleep(1.5)
        [run_dir] = list(runs_root.iterdir())
        assert list(pids_with_run_id(run_dir.name)), "the stack should be running mid-fault"
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[1]
    finally:
        stop(proc)
    assert proc.returncode == code, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert list(pids_with_run_id(run_dir.name)) == []
    assert not run_dir.exists()


def test_cleanup_after_kill_9_removes_what_the_run_left(runs_root: Path) -> None:
    proc = popen_lab(["run", "pool-exhaustion", "--variant", "baseline", "--progress", "lines"],
                     runs_root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:  # " before ": the stack is up and the load has started
        wait_for_line(proc.stderr, lambda line: " before " in line, 90, "before phase")
    except AssertionError:
        stop(proc)
        raise
    [run_dir] = list(runs_root.iterdir())
    assert len(list(pids_with_run_id(run_dir.name))) >= 3  # postgres, checkout, locust
    proc.kill()  # no chance to clean up
    proc.wait(10)
    assert run_dir.exists()
    cleanup = run_lab(["cleanup"], runs_root, timeout=60)
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"{run_dir.name}: stopped" in cleanup.stdout
    assert list(pids_with_run_id(run_dir.name)) == []
    assert not run_dir.exists()
    again = run_lab(["cleanup"], runs_root, timeout=60)
    assert "nothing to clean up" in again.stdout
