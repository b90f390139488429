"""How `lab inject`, `lab revert` and `lab drill ACTION` find the live stack to talk to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.live.client import LiveClient, find_live
from lab.live.files import LiveFile, live_stacks


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSLAB_RUNS_ROOT", str(tmp_path))
    return tmp_path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_file_is_ignored_and_cleanup_removes_it(root: Path) -> None:
    stale = LiveFile(dead_pid(), "http://127.0.0.1:1", "pool-exhaustion", "baseline",
                     "local", False)
    stale.save()
    assert live_stacks() == [] and find_live() is None
    assert live_stacks(include_stale=True) == [stale]
    from lab.cli import main

    assert main(["cleanup"]) == 0
    assert not stale.path.exists()


def test_several_live_stacks_need_api(root: Path) -> None:
    parent = os.getppid()  # alive, and not this process
    LiveFile(parent, "http://127.0.0.1:1", "a", "baseline", "local", False).save()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        LiveFile(sleeper.pid, "http://127.0.0.1:2", None, None, "local", True).save()
        with pytest.raises(LabError, match="several live stacks"):
            find_live()
        assert find_live(drill=True) is not None and find_live(drill=True).api.endswith(":2")
        assert find_live(drill=False).scenario == "a"
        assert find_live("http://127.0.0.1:2/").pid == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stack_that_is_gone_is_a_clear_error() -> None:
    port = 9  # discard: nothing listens on 127.0.0.1:9 here
    with pytest.raises(LabError, match="no live stack answers"):
        LiveClient(f"http://127.0.0.1:{port}", timeout_s=2).get("/api/status")
