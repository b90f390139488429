"""Run the lab's CLI as a user would, and read its `--json` results.

A child a test interrupts must take Ctrl-C as it would from a terminal: a shell that runs
a job in the background (`cmd &`, a CI runner's) starts it with SIGINT *ignored*, every
child inherits that, and Python leaves an ignored SIGINT ignored — so the test's SIGINT
would do nothing and the test would wait out its timeout. `popen_lab` gives each child
SIGINT's default explicitly. And a test that reads a child's output line by line does it
with a deadline of its own (`wait_for_line`), so a child that hangs without printing
fails the test instead of hanging it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]


def run_lab(
    args: list[str], runs_root: Path, timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def sigint_default() -> None:
    """In the child, before exec: SIGINT at its default, whatever the test process had
    (an ignored signal stays ignored across exec; a handler does not)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_lab(args: list[str], runs_root: Path, *, env: dict[str, str] | None = None,
              **popen: Any) -> subprocess.Popen[str]:
    """`python -m lab ARGS` in the repository, in text mode, with SIGINT at its default."""
    environ = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "lab", *args], cwd=REPO, env=environ,
                            text=True, preexec_fn=sigint_default, **popen)


def wait_for_line(stream: IO[str] | None, predicate: Callable[[str], bool],
                  timeout: float, what: str = "the expected line") -> list[str]:
    """Read `stream` line by line until a line satisfies `predicate`; the lines read. An
    AssertionError with what was read if none did within `timeout` s or the stream
    ended. The reading happens in a thread that is done when this returns, so the caller
    can go on reading the stream (communicate, read) itself."""
    assert stream is not None
    seen: list[str] = []
    found: list[bool] = []

    def read() -> None:
        for line in stream:
            seen.append(line)
            if predicate(line):
                found.append(True)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise AssertionError(f"no {what} within {timeout:g} s; read so far:\n" + "".join(seen))
    if not found:
        raise AssertionError(f"the output ended without {what}:\n" + "".join(seen))
    return seen


def stop(proc: subprocess.Popen[str], grace: float = 60) -> None:
    """End a child a failed test leaves running: SIGTERM (it tears its stack down), then
    SIGKILL if it is still there after `grace` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def variants(path: Path) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in json.loads(path.read_text())["variants"]}


def verdict(variant: dict[str, Any], starts: str) -> dict[str, Any]:
    """The one verdict whose text starts with `starts`."""
    [found] = [e for e in variant["expectations"] if e["text"].startswith(starts)]
    return found
