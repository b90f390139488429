"""What every `lab` command shares: the exit codes (EXIT_CODES, shown by `lab --help`),
the one way to say an error, running a coroutine with SIGTERM as a cancellation, the
progress line, the backend by name, argument types, and the version."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lab.errors import Interrupted

if TYPE_CHECKING:  # the run machinery is imported by the commands that run (see cmd_run)
    from lab.run.events import Progress, Run

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STACK, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
EXIT_NOTHING_TO_ACT_ON = 5
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
#: The whole CLI's exit codes, as `lab --help` and the README's "Exit codes" show them.
EXIT_CODES = f"""exit codes:
  {EXIT_OK}    every expectation held (or the command did what it was asked)
  {EXIT_FAILED}    an expectation failed
  {EXIT_BAD_INPUT}    bad input: a scenario file, a flag or argument, a file that is not there
  {EXIT_STACK}    the stack, the load or the fault machinery could not run
  {EXIT_INCONCLUSIVE}    a verdict was INCONCLUSIVE: the experiment did not happen as designed
  {EXIT_NOTHING_TO_ACT_ON}    nothing to act on: no drill runs, nothing is injected, no live stack
       answers (or the fault is already in)
  {EXIT_SIGINT}/{EXIT_SIGTERM} interrupted by Ctrl-C / SIGTERM, after everything was torn down"""


def err(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, with SIGTERM treated like Ctrl-C: cancel, clean up, then raise."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        got: list[str] = []

        def on_term() -> None:
            got.append("SIGTERM")
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        try:
            return await coro
        except asyncio.CancelledError:
            if got:
                raise Interrupted("SIGTERM") from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        raise Interrupted("SIGINT (Ctrl-C)") from None


class ProgressPrinter:
    """`live`: one rewriting line (the default on a terminal); `lines`: a line per phase
    change (for CI logs that want a heartbeat); `off`: nothing (the default elsewhere)."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":
            mode = "live" if sys.stderr.isatty() else "off"
        self.mode = mode
        self.last = ("", "")  # (head, phase) of the last line printed in `lines` mode
        self.repetition = ""  # " run 3/10" while `--repeat` runs a variant again

    def started(self, run: Run) -> None:
        self.repetition = f" run {run.run}/{run.repeat}" if run.repeat > 1 else ""

    def __call__(self, p: Progress) -> None:
        if self.mode == "off":
            return
        mix = " ".join(f"{k} {v}" for k, v in sorted(p.last_second.items())) or "-"
        head = f"[{p.index}/{p.count}] {p.scenario}/{p.variant}{self.repetition}"
        if p.phase in ("before", "fault", "after"):
            line = (f"{head}  {p.phase:<6} t={p.elapsed_s:4.0f}s  {p.remaining_s:3.0f}s left  "
                    f"last second: {mix}  (requests: {p.total_requests})")
        else:
            line = f"{head}  {p.phase}"
        if self.mode == "live":
            print(f"\r\x1b[2K{line}", end="" if p.phase != "stopping" else "\n",
                  file=sys.stderr, flush=True)
        elif (head, p.phase) != self.last:
            print(line, file=sys.stderr, flush=True)
        self.last = (head, p.phase)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)


def _whole_number(text: str, least: int, noun: str, at_least: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number{noun}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {at_least}, got {value}")
    return value


def count_arg(text: str) -> int:
    """A whole number, 0 or more."""
    return _whole_number(text, 0, "", "0 or more")


def address_arg(text: str) -> str:
    """HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:5557, "
                                         f"got {text!r}")
    return text


def data_scale_arg(text: str) -> float:
    """--data-scale: a share of the scenario's carts, above 0 and at most 4."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.4, got {text!r}") from None
    if not 0 < value <= 4:
        raise argparse.ArgumentTypeError(f"expected a share above 0 and at most 4, got {value:g}")
    return value


def positive_int_arg(text: str) -> int:
    """--repeat: a whole number of runs, at least one (argparse turns a refusal into exit 2)."""
    return _whole_number(text, 1, " of runs", "at least 1 run")


def version() -> str:
    """The installed package's version; pyproject.toml's when run from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("chaoslab")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, ValueError, KeyError):
            return "unknown"
