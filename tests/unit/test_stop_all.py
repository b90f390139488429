"""Teardown stops the stack's processes together: every one is signalled before any is
waited for, so one that takes its time does not hold up the others' stop signal."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lab.system.processes import ManagedProcess, stop_all

# On SIGTERM: write `mine`, then exit only once `other` exists (the other process got its
# SIGTERM too); give up after 20 s. Stopped one by one, the first would never see it.
WAITS_FOR_THE_OTHER = """
import os, signal, sys, time
mine, other = sys.argv[1], sys.argv[2]
def on_term(*_):
    open(mine, "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(other) and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(0 if os.path.exists(other) else 3)
signal.signal(signal.SIGTERM, on_term)
open(mine + ".ready", "w").close()
while True:
    time.sleep(0.1)
"""


def test_stop_all_signals_every_process_before_waiting(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    procs = [
        ManagedProcess(name, [sys.executable, "-c", WAITS_FOR_THE_OTHER, str(mine), str(other)],
                       env={}, run_id="test-stop-all", log_dir=tmp_path)
        for name, mine, other in (("a", a, b), ("b", b, a))
    ]
    try:
        deadline = time.monotonic() + 20
        while not all(Path(f"{p}.ready").exists() for p in (a, b)):
            assert time.monotonic() < deadline, "the test processes did not start"
            time.sleep(0.02)
        stop_all(procs, timeout=15)
        assert [p.poll() for p in procs] == [0, 0]  # both exited on their own, none killed
    finally:
        for proc in procs:
            proc.stop()
