"""One error hierarchy for the lab.

The CLI maps each family to an exit code, so library code raises and never exits:
ScenarioError → 2 (bad input), BackendError → 3 (stack could not start; a failed
one-shot command is a CommandFailed, one of them),
ExpectationFailed → 1. Everything else that is a LabError is reported without a
traceback; anything that is not a LabError is a bug and keeps its traceback.
"""

from __future__ import annotations


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


class BackendError(LabError):
    """The stack (Postgres, services, load generator) could not be started or reached."""


class CommandFailed(BackendError):
    """A one-shot command the lab needed (lab.commands) could not run, timed out, or exited
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
