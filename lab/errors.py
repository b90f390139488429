"""One error hierarchy for the lab.

The CLI maps each family to an exit code (lab.cli's epilog lists them), so library code
raises and never exits: ScenarioError (a scenario file) and UsageError (a flag or
argument, incl. NotFound for a file named on the command line and UnknownVariant for a
variant the scenario does not have) → 2 (bad input); BackendError, LoadError, FaultError
→ 3 (the stack, load or fault machinery could not run; a failed one-shot command is a
CommandFailed, one of them); StateError → 5 (nothing to act on); ExpectationFailed → 1.
Everything else that is a LabError is reported without a traceback; anything that is not
a LabError is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class LabError(Exception):
    """Root of every error the lab raises on purpose."""


class ScenarioError(LabError):
    """A scenario file is missing, unreadable or invalid.

    The message always names the file, the field path and what was expected.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: invalid scenario\n{lines}")


class UsageError(LabError):
    """Bad command-line input: a flag or an argument that does not parse or names nothing.

    `what` is the flag or argument as the user typed it (`--for`, `mitigate`), `expected`
    what it takes, with what was given: `--for: expected a duration like '30s', got 'soon'`.
    """

    def __init__(self, what: str, expected: str) -> None:
        self.what, self.expected = what, expected
        super().__init__(f"{what}: {expected}")


class NotFound(UsageError):
    """A file named on the command line does not exist: `missing.json: no such results
    file`."""

    def __init__(self, path: str, kind: str = "file") -> None:
        self.path = path
        super().__init__(path, f"no such {kind}")


class UnknownVariant(UsageError):
    """A variant asked for (`--variant`, a live session, a lookup by name) that the
    scenario does not have; Scenario.require_variants is the one place that raises it.
    `source` is the scenario file as the message shows it, `asked` the missing names,
    `known` the ones the file has."""

    def __init__(self, source: str, asked: list[str], known: list[str]) -> None:
        self.source, self.asked, self.known = source, asked, known
        super().__init__("--variant", f"no variant named {', '.join(map(repr, asked))} in "
                         f"{source} (known: {', '.join(known)})")


def shown_path(path: str | Path) -> str:
    """A file as a message names it: relative to here when it is below here, as the user
    would type it; otherwise as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class StateError(LabError):
    """Nothing to act on: the command is well formed, but what it acts on is not there (no
    drill runs, nothing is injected, no live stack answers at --api). Not a failure of
    the stack: start the thing first."""


class BackendError(LabError):
    """The stack (Postgres, services, load generator) could not be started or reached."""


class CommandFailed(BackendError):
    """A one-shot command the lab needed (lab.system.commands) could not run, timed out, or exited
    non-zero. Carries the command, its exit code (None when it never finished) and the
    tail of its stderr."""

    def __init__(self, what: str, argv: list[str], returncode: int | None, stderr: str,
                 reason: str = "") -> None:
        self.what, self.argv, self.returncode = what, argv, returncode
        self.stderr, self.reason = stderr, reason
        if returncode is None:
            message = f"{what} could not run: {reason}"
        else:
            message = f"{what} failed ({returncode})" + (f":\n{stderr}" if stderr else "")
        super().__init__(message)


class FaultError(LabError):
    """A fault could not be injected, or left no evidence that it took effect."""


class LoadError(LabError):
    """The load generator failed in a way that makes the run meaningless."""


class ExpectationFailed(LabError):
    """At least one expectation of a variant did not hold (raised only by callers that want it)."""


class Interrupted(LabError):
    """The run was stopped by Ctrl-C or SIGTERM after everything was cleaned up."""

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name
        super().__init__(f"interrupted by {signal_name}; the stack was torn down")
