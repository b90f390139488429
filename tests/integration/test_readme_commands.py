"""The documented commands are the tested ones: every command line of every ```sh tested
block in README.md and docs/*.md, run exactly as written, from the repository root, in a
terminal (a pseudo-terminal, so `--progress auto` shows its live line as it would for a
user), with the defaults a user gets.

A command that runs until stopped (`lab up`, `lab drill`, `lab run`, `make demo`, `make
bench`) runs until it shows it is working — ready, or its first progress line — then the
lines after it in the block run while it does (as in a second terminal), and then it gets
Ctrl-C the way a terminal sends it (^C on the terminal: SIGINT to its process group). It
must stop, say so, and leave nothing behind (the runs root is empty, `lab cleanup` finds
nothing). Every other command must exit 0. So a default that does not parse (`--for 4h`)
can never ship again.

The one line not run: `make test`, which is what runs this test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shlex
import signal
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = {"make test": "it is the command that runs this test"}

#: How a long-running command shows it is working, by what it is.
READY = [
    (re.compile(r"^\.venv/bin/lab drill( --| *$)"), re.compile(r"drill ready in")),
    (re.compile(r"^\.venv/bin/lab up "), re.compile(r"ready in [0-9.]+ s")),
    (re.compile(r"^(\.venv/bin/lab run|make demo)\b"), re.compile(r"\] \S+/\S+ +before ")),
    (re.compile(r"^make bench\b"), re.compile(r"bench: ")),
]
#: Time to ready: a stack, its data set (cached), the calibration and the capacity probe;
#: docker starts containers.
READY_TIMEOUT_S = 180
#: Commands that act on a running one, or quick ones.
RUN_TIMEOUT_S = 120


@dataclass
class Block:
    source: str  # file:line
    heading: str
    lines: list[str]


def documented_blocks() -> list[Block]:
    blocks = []
    for doc in DOCS:
        heading, lines, inside, start = "", [], False, 0
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            if not inside and line.startswith("#"):
                heading = line.lstrip("#").strip()
            if not inside and line.strip() == "```sh tested":
                inside, lines, start = True, [], n
            elif inside and line.strip() == "```":
                inside = False
                blocks.append(Block(f"{doc.relative_to(REPO)}:{start}", heading, lines))
            elif inside:
                command = line.split(" #", 1)[0].strip()
                if command and not command.startswith("#"):
                    lines.append(command)
    return blocks


class Terminal:
    """One command on a pseudo-terminal of its own, as a shell in a terminal runs it."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.command = command
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x00\x28\x00\xc8\x00\x00\x00\x00")  # 40×200

        def in_the_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # A terminal's shell gives its commands SIGINT's default, whatever ours is.
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        self.proc = subprocess.Popen(shlex.split(command), cwd=REPO, env=env, stdin=slave,
                                     stdout=slave, stderr=slave, preexec_fn=in_the_terminal)
        os.close(slave)
        self.master = master
        self.output = ""

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            with contextlib.suppress(OSError):  # EIO: the other end closed
                self.output += os.read(self.master, 65536).decode(errors="replace")

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not pattern.search(self.output):
            if self.proc.poll() is not None:
                self.read(0.2)
                if pattern.search(self.output):
                    return
                raise AssertionError(f"`{self.command}` exited {self.proc.returncode} before "
                                     f"showing {pattern.pattern!r}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"`{self.command}` showed no {pattern.pattern!r} in "
                                     f"{timeout:.0f} s:\n{self.tail()}")
            self.read(0.5)

    def finish(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"`{self.command}` did not finish in {timeout:.0f} s:\n"
                                     f"{self.tail()}")
            self.read(0.5)
        self.read(0.2)
        os.close(self.master)
        return self.proc.returncode

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the terminal's INTR character: SIGINT to the group

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self) -> str:
        return self.output[-3000:]


def _ready_pattern(command: str) -> re.Pattern[str] | None:
    return next((ready for match, ready in READY if match.search(command)), None)


def _stop(term: Terminal) -> None:
    """Ctrl-C a long-running command: it stops, cleans up and says so."""
    term.ctrl_c()
    code = term.finish(90)
    if term.command.startswith("make"):
        # make passes the ^C on and dies of it (or exits 2); the lab under it said so.
        assert code in (2, -signal.SIGINT), f"`{term.command}` after ^C: exit {code}\n" \
                                            f"{term.tail()}"
        assert "Traceback" not in term.output, term.tail()
    else:
        assert code == 130, f"`{term.command}` after ^C: exit {code}\n{term.tail()}"
        assert "Traceback" not in term.output, term.tail()


BLOCKS = documented_blocks()


def test_the_docs_mark_the_commands_a_user_types() -> None:
    headings = {b.heading for b in BLOCKS}
    assert any("Quick start" in h for h in headings), headings
    everything = [line for b in BLOCKS for line in b.lines]
    assert ".venv/bin/lab up pool-exhaustion" in everything
    assert any(line.startswith(".venv/bin/lab drill --backend docker") for line in everything)


@pytest.fixture
def artefacts() -> Iterator[None]:
    """What the documented commands write into the checkout (results.json, report/,
    results/…) is removed afterwards when it was not there before."""
    candidates = [REPO / "results.json", REPO / "report", REPO / "results"]
    before = {p: p.exists() for p in candidates}
    drills = set((REPO / "results" / "drills").glob("*"))
    yield
    import shutil

    for path, existed in before.items():
        if not existed and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for new in set((REPO / "results" / "drills").glob("*")) - drills:
        shutil.rmtree(new, ignore_errors=True)


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.source} {b.heading}" for b in BLOCKS])
def test_a_documented_block_runs_as_written(block: Block, runs_root: Path, tmp_path: Path,
                                            artefacts: None) -> None:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root), "TERM": "xterm"}
    env.pop("CI", None)  # a user's terminal, not CI's conversions of skips
    running: Terminal | None = None
    try:
        for command in block.lines:
            if command in NOT_RUN:
                continue
            ready = _ready_pattern(command)
            if ready is not None and running is not None:
                _stop(running)
                running = None
            here = dict(env)
            if command.endswith("lab cleanup --cache"):
                # The machine's data set cache stays: the same command on a cache of its own.
                here["CHAOSLAB_CACHE_DIR"] = str(tmp_path / "cache")
            term = Terminal(command, here)
            if ready is not None:
                term.wait_for(ready, READY_TIMEOUT_S)
                running = term
                continue
            code = term.finish(RUN_TIMEOUT_S)
            assert code == 0, f"{block.source}: `{command}` exited {code}:\n{term.tail()}"
        if running is not None:
            _stop(running)
            running = None
    finally:
        if running is not None:
            running.kill()
    leftovers = subprocess.run([str(REPO / ".venv/bin/lab"), "cleanup"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60, check=False)
    assert leftovers.stdout.startswith("nothing to clean up"), leftovers.stdout
