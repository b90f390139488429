"""`lab bench --live`: what a live stack costs, measured on a real `lab up`.

Two figures the rehearsal mode promises: how long `lab up` takes until its URLs serve,
and what the dashboard costs the lab process at its 1 Hz refresh. The dashboard's cost
to the lab is the `/api/live` call it makes each second (the browser's own drawing is
the browser's), so the bench makes that call itself and reads the `lab up` process's own
CPU time from /proc (not its children: Postgres, the services and Locust are the stack).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from lab.errors import LabError
from lab.system.processes import REPO_ROOT

URL = re.compile(r"dashboard:\s+(http://127\.0\.0\.1:\d+)/")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def _cpu_share(pid: int, seconds: float, poll: str | None) -> tuple[float, int]:
    """The process's CPU seconds per wall second over `seconds`, while (if `poll`) one
    GET of it is made a second, never overlapping, as the dashboard does."""
    calls = 0
    began, cpu0 = time.monotonic(), cpu_seconds(pid)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while (now := time.monotonic()) < began + seconds:
            if poll is not None:
                async with http.get(poll) as resp:
                    await resp.read()
                calls += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    wall = time.monotonic() - began
    return (cpu_seconds(pid) - cpu0) / wall, calls


async def live_costs(scenario: str, window_s: float,
                     progress: Callable[[str], None]) -> dict[str, float]:
    """Start `lab up SCENARIO`, time it to ready, then the lab process's CPU share
    without and with a 1 Hz dashboard, before and during the fault; Ctrl-C it."""
    argv = [sys.executable, "-m", "lab", "up", scenario, "--port", "0",
            "--for", f"{int(window_s * 6 + 120)}s"]
    began = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    figures: dict[str, float] = {}
    try:
        api = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if (m := URL.search(line)):
                api = m.group(1)
                break
        if api is None:
            raise LabError(f"`lab up {scenario}` exited ({proc.wait()}) before it was ready")
        figures["up_to_ready_s"] = time.monotonic() - began
        progress(f"lab up ready in {figures['up_to_ready_s']:.1f} s; CPU of the lab "
                 f"process, {window_s:g} s each: idle, dashboard at 1 Hz, fault + dashboard")
        live = f"{api}/api/live"
        figures["cpu_share_idle"], _ = await _cpu_share(proc.pid, window_s, None)
        figures["cpu_share_dashboard"], calls = await _cpu_share(proc.pid, window_s, live)
        async with aiohttp.ClientSession() as http, http.post(f"{api}/api/inject") as resp:
            if resp.status != 200:
                raise LabError(f"inject answered {resp.status}: {await resp.text()}")
        figures["cpu_share_fault_dashboard"], _ = await _cpu_share(proc.pid, window_s, live)
        async with aiohttp.ClientSession() as http, http.post(f"{api}/api/revert") as resp:
            await resp.read()
        figures["dashboard_calls"] = calls
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return figures
