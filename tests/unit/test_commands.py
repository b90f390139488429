"""lab.system.commands: one-shot commands fail the same way everywhere — a CommandFailed (a
BackendError, so the CLI's exit code is unchanged) with the command, its exit code and
the tail of its stderr."""

from __future__ import annotations

import asyncio
import sys

import pytest

from lab.errors import BackendError, CommandFailed
from lab.system import commands


def test_output_is_captured() -> None:
    done = commands.run([sys.executable, "-c", "print('hi')"])
    assert done.stdout == "hi\n"


def test_a_non_zero_exit_carries_command_code_and_stderr_tail() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('x' * 5000 + 'END'); sys.exit(3)"]
    with pytest.raises(CommandFailed) as caught:
        commands.run(argv, what="the probe")
    failed = caught.value
    assert isinstance(failed, BackendError)
    assert (failed.argv, failed.returncode) == (argv, 3)
    assert failed.stderr.endswith("END") and len(failed.stderr) == commands.STDERR_TAIL_CHARS
    assert str(failed).startswith("the probe failed (3):\nxxx")


def test_a_command_that_cannot_start_or_times_out_has_no_exit_code() -> None:
    with pytest.raises(CommandFailed) as caught:
        commands.run(["/no/such/program", "--flag"])
    assert caught.value.returncode is None
    assert str(caught.value).startswith("/no/such/program --flag could not run: ")
    with pytest.raises(CommandFailed) as caught:
        commands.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert caught.value.returncode is None and "timed out" in caught.value.reason


def test_the_async_form_is_the_same_call() -> None:
    done = asyncio.run(commands.run_async([sys.executable, "-c", "print(1)"]))
    assert done.stdout == "1\n"
    with pytest.raises(CommandFailed):
        asyncio.run(commands.run_async([sys.executable, "-c", "raise SystemExit(1)"]))
