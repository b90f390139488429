"""The disk-full incident end to end: real Postgres, the checkout in its own mount
namespace on a real 8 MiB tmpfs, Locust, and the shipped scenario file.

ENOSPC comes from the kernel: where this machine cannot mount a private tmpfs (not root
and no unprivileged user namespaces) every test here is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from lab.run.runner import run_variant
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.stack import data_volume
from lab.stack.base import StackRequest
from lab.stack.local import LocalBackend, LocalStackHandle
from lab.system.processes import pids_with_run_id
from lab.verdict.results import VariantResult
from tests.integration.lab_cli import popen_lab, stop, wait_for_line

REPO = Path(__file__).resolve().parents[2]
UNSUPPORTED = data_volume.unsupported_reason()
pytestmark = pytest.mark.skipif(UNSUPPORTED is not None, reason=UNSUPPORTED or "")
MiB = 1 << 20


class InspectingBackend(LocalBackend):
    """The local backend, looking at the volume and the service's log before teardown."""

    def __init__(self) -> None:
        self.journal_lines: list[str] = []
        self.service_events: list[dict[str, Any]] = []
        self.volume_sources: list[str] = []
        self.mounted_in_lab_namespace = True

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[LocalStackHandle]:
        async with super().up(request) as handle:
            try:
                yield handle
            finally:
                [volume] = handle.stack.data_volumes
                self.volume_sources.append(volume.source)
                journal = Path(volume.host_path) / "receipts.jsonl"
                self.journal_lines = journal.read_text().splitlines()
                own = Path("/proc/self/mountinfo").read_text()
                self.mounted_in_lab_namespace = volume.source in own
                for line in handle.service_stderr():
                    try:
                        self.service_events.append(json.loads(line))
                    except ValueError:
                        continue


def run(variant: str, backend: LocalBackend) -> VariantResult:
    scenario = load_scenario_file(find_scenario("disk-full"))
    return asyncio.run(run_variant(scenario, variant, backend))


def fault_seconds(v: VariantResult, metric: str) -> list[float]:
    return [m["checkout-1"][metric] for m in
            (s["metrics"] for s in v.timeline if s["phase"] == "fault") if "checkout-1" in m]


def test_baseline_enospc_on_receipts_answers_500(runs_root: Path) -> None:
    backend = InspectingBackend()
    v = run("baseline", backend)
    assert v.passed, [e.measured for e in v.expectations if not e.passed]
    before, fault, after = (v.windows[w] for w in ("before", "fault", "after"))
    # Nothing that completed before the injection failed. Windows are by send time: a
    # request sent ms before the ballast landed and served after it fails legitimately.
    assert before.completed_by_class is not None
    assert set(before.completed_by_class) == {"2xx"}
    assert fault.by_class["500"] / fault.total >= 0.8
    assert after.share("2xx") >= 0.9
    # A real chain: the kernel's ENOSPC from the receipt append, through the error handler.
    top = v.signatures[0]
    assert top.exception == "OSError"
    assert top.message == "[Errno 28] No space left on device"
    assert top.frame.startswith("lab/services/checkout/receipts.py:")
    assert top.count == sum(v.windows[w].by_class.get("500", 0) for w in v.windows)
    # The filesystem was really full during the window, and the space came back.
    facts = v.evidence["facts"]
    assert facts["volume_bytes"] == 8 * MiB
    assert facts["ballast_bytes"] > 6 * MiB
    assert facts["full_during_fault"] is True and facts["max_used_pct_during"] == 100.0
    during = [o for o in v.evidence["observations"] if o["phase"] == "during"]
    assert len(during) >= 8 and all(o["free_bytes"] == 0 for o in during)
    assert facts["ballast_removed"] is True
    assert facts["space_back_bytes"] >= facts["ballast_bytes"]
    # Sampled by the service itself each second (the last fault second may hold a sample
    # taken just after the revert).
    free = fault_seconds(v, "checkout_data_disk_free_bytes")
    assert len(free) >= 8 and free[:-1] == [0.0] * (len(free) - 1)
    # The unbounded log grew through the run (the baseline's half of the rotation story).
    log_bytes = [m["checkout-1"]["checkout_log_file_bytes"] for m in
                 (s["metrics"] for s in v.timeline) if "checkout-1" in m]
    assert log_bytes[-1] > 500_000 and log_bytes == sorted(log_bytes)
    # All or nothing: no torn receipt line, whatever the disk cut short.
    assert len(backend.journal_lines) >= before.total
    assert all(json.loads(line)["order_id"] > 0 for line in backend.journal_lines)
    # The tmpfs lived only in the service's namespace, and is gone with it.
    assert backend.mounted_in_lab_namespace is False
    assert list(data_volume.tagged_mounts(backend.volume_sources[0])) == []


def test_degrade_writes_answers_201_degraded_and_logs_once_per_interval(
    runs_root: Path,
) -> None:
    backend = InspectingBackend()
    v = run("degrade-writes", backend)
    assert v.passed, [e.measured for e in v.expectations if not e.passed]
    fault = v.windows["fault"]
    assert fault.by_class.get("500", 0) == 0
    assert fault.by_class["fallback"] / fault.total >= 0.8  # "degraded": true
    assert v.signatures == []
    assert v.evidence["facts"]["full_during_fault"] is True
    failures = max(fault_seconds(v, "checkout_data_write_failures_total"))
    lines = [e for e in backend.service_events if e["event"] == "data_write_failed"]
    # Hundreds of failed writes, a handful of lines: one per file per 10 s interval.
    assert failures >= 1000
    assert 1 <= len(lines) <= 2 * 3
    assert {(e["file"], e["reason"]) for e in lines} == {("receipt", "ENOSPC"), ("log", "ENOSPC")}


def test_readiness_reports_503_while_the_volume_is_full(runs_root: Path) -> None:
    v = run("readiness", LocalBackend())
    assert v.passed, [e.measured for e in v.expectations if not e.passed]
    # Judged by sample time (a timeline second can straddle the injection).
    shares = {e.text: e.value for e in v.expectations}
    assert shares["[before] /health answered 200 share >= 80%"] == 1.0
    assert shares["[fault] /health answered 503 share >= 80%"] >= 0.8  # type: ignore[operator]
    # The router acts on it: the clients get its 503s with Retry-After, not 500s.
    fault = v.windows["fault"]
    assert fault.by_class["503"] / fault.total >= 0.7
    assert fault.retry_after["503"] == fault.by_class["503"]
    assert shares["[fault+2s] 500 count == 0"] == 0


def test_log_rotation_keeps_the_volume_from_filling_where_unbounded_logs_do(
    runs_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "run", "disk-full", "--variant", "log-rotation",
         "--variant", "unrotated-logs", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    rotated, unrotated = doc["variants"]
    assert (rotated["name"], unrotated["name"]) == ("log-rotation", "unrotated-logs")
    # The same nearly-full volume (384 KiB left by the ballast)... With rotation, the
    # service may delete its oldest backup (under 64 KiB) while the ballast is being
    # written, after the ballast sized itself: seen once in CI, 60 KiB more free.
    for v, freed_meanwhile in ((rotated, 64 * 1024), (unrotated, 0)):
        assert v["evidence"]["facts"]["leave_free_bytes"] == 384 * 1024
        assert v["evidence"]["facts"]["free_bytes_at_injection"] <= 384 * 1024 + freed_meanwhile
    # ...survives with rotated logs and fills with unbounded ones.
    assert rotated["windows"]["fault"]["by_status"].get("500", 0) == 0
    assert rotated["evidence"]["facts"]["min_free_bytes_during"] >= 64 * 1024
    assert unrotated["evidence"]["facts"]["min_free_bytes_during"] == 0
    assert unrotated["windows"]["fault"]["by_status"].get("500", 0) >= 1
    log_bytes = [s["metrics"]["checkout-1"]["checkout_log_file_bytes"]
                 for s in rotated["timeline"] if "checkout-1" in s["metrics"]]
    assert max(log_bytes) <= 3 * 64 * 1024
    assert "log-rotation    PASS" in proc.stdout and "unrotated-logs  PASS" in proc.stdout


def _checkout_pid(run_id: str) -> int:
    for pid, _ in pids_with_run_id(run_id):
        try:
            if b"lab.services.checkout" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError("no checkout process for the run")


def test_sigterm_while_the_disk_is_full_leaves_no_ballast_mount_or_process(
    runs_root: Path,
) -> None:
    proc = popen_lab(["run", "disk-full", "--variant", "baseline", "--progress", "lines"],
                     runs_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_line(proc.stderr, lambda line: " fault " in line, 90, "fault phase")
    except AssertionError:
        stop(proc)
        raise
    time.sleep(1.5)
    [run_dir] = list(runs_root.iterdir())
    run_id = run_dir.name
    source = f"{data_volume.SOURCE_PREFIX}{run_id}-checkout-1"
    mount_point = str(run_dir / "checkout-1-data")
    pid = _checkout_pid(run_id)
    assert data_volume.mountinfo_entry(pid, mount_point) is not None
    # Hold the tmpfs open from here, to look inside it after everything else is gone.
    volume_fd = os.open(data_volume.host_path(pid, mount_point), os.O_RDONLY | os.O_DIRECTORY)
    try:
        ballast = f"chaoslab-ballast-{run_id}.bin"
        assert ballast in os.listdir(volume_fd)
        assert os.statvfs(volume_fd).f_bavail == 0  # full right now
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
        assert proc.returncode == 143, rest
        assert "interrupted" in rest and "Traceback" not in rest
        # The fault was reverted before the teardown: no ballast in the volume...
        assert ballast not in os.listdir(volume_fd)
        assert {"receipts.jsonl", "checkout.log"} <= set(os.listdir(volume_fd))
    finally:
        os.close(volume_fd)
    # ...no mount of it anywhere on the machine, no process, no run directory.
    assert list(data_volume.tagged_mounts(source)) == []
    assert list(pids_with_run_id(run_id)) == []
    assert not run_dir.exists()
