"""Open-model load through the real Locust subprocess (lab/load/open_model.py, selected by
the locustfile), against the bare aiohttp app: no Postgres, nothing else to start.

The generator must achieve its target rate (arrivals keep coming on their schedule) and
every line it logs must be an answer or a drop at the cap — nothing else.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from lab.load.locust_process import LocustProcess
from lab.load.request_log import read_request_log
from lab.scenario.models import LoadSpec
from lab.stack.base import wait_http_ok
from lab.system.ports import free_port
from lab.system.processes import REPO_ROOT, ManagedProcess, python_env
from lab.system.run_dirs import RunDir, new_run_id
from lab.verdict.results import ArrivalAccount, Windows, load_summary

pytestmark = pytest.mark.integration

RATE = 50.0
MEASURED_S = 3.5  # from the first arrival: well inside Locust's 5 s run time


def test_open_model_achieves_its_rate_through_real_locust(runs_root: Path) -> None:
    spec = LoadSpec.model_validate({
        "rate": f"{RATE:g}/s", "arrivals": "even", "duration": "5s", "client_timeout": "1s",
        "endpoints": [{"request": "checkout"}],
    })
    run_dir = RunDir.create(new_run_id())
    try:
        port = free_port()
        bare = ManagedProcess(
            "bare", [sys.executable, "-m", "lab.services.bare"],
            env=python_env({"CHECKOUT_HOST": "127.0.0.1", "CHECKOUT_PORT": str(port)}),
            run_id=run_dir.run_id, log_dir=run_dir.path, cwd=REPO_ROOT,
        )
        try:
            asyncio.run(wait_http_ok(f"http://127.0.0.1:{port}/livez", 10, "bare app",
                                     bare.exit_reason))
            load = LocustProcess(spec, f"http://127.0.0.1:{port}", run_id=run_dir.run_id,
                                 work_dir=run_dir.path, env=python_env({}), carts=100, seed=1)
            started = load.start()
            try:
                while not load.finished() and time.time() - started < spec.duration + 10:
                    load.check_alive()
                    time.sleep(0.2)
            finally:
                load.stop()
                ended = time.time()  # Locust's run-time counts from its own start-up
        finally:
            bare.stop()
        records = read_request_log(load.request_log)
        stderr = (run_dir.path / "locust.err").read_text(errors="replace")[-2000:]
    finally:
        run_dir.remove()

    assert records, f"Locust logged nothing:\n{stderr}"
    first = min(r.start for r in records)
    # Arrivals go on past the window until Locust's run time ends (so the last judged
    # request is answered under the same load); only one sent after the window may
    # still be in flight when the load stops.
    judged = [r for r in records if r.start < first + spec.duration]
    assert {r.outcome for r in judged} <= {"response", "dropped"}, stderr
    assert {r.outcome for r in records} <= {"response", "dropped", "unfinished"}, stderr
    assert {r.status for r in judged if not r.dropped} == {201}  # the bare app's answer
    arrived = [r for r in records if first <= r.start < first + MEASURED_S]
    achieved = len(arrived) / MEASURED_S
    assert achieved == pytest.approx(RATE, rel=0.2), (achieved, stderr)
    summary = load_summary(spec, ArrivalAccount.of(
        records, Windows(started, started, started, ended), spec, seed=1))
    assert summary["model"] == "open"
    assert summary["sent"] + summary["dropped"] == len(records)
