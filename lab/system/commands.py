"""The one place one-shot commands run: `pip wheel`, the `unshare` probe, `initdb`,
`postgres --version`, … (long-lived children are lab.system.processes'). Output is captured; a
command that cannot start, times out or exits non-zero raises `CommandFailed` with the
command, its exit code and the tail of its stderr, so every caller reports a failure the
same way. `run_async` is the same call in a thread, for code on the event loop."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.errors import CommandFailed

#: How much of a failed command's stderr its error keeps.
STDERR_TAIL_CHARS = 2000


def run(argv: Sequence[str], *, what: str | None = None, timeout: float | None = None,
        user: str | None = None, env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion (as `user`, when given); its result when it exits 0.
    `what` names it in the error (default: the program and its first argument)."""
    argv = [str(a) for a in argv]
    what = what or " ".join(argv[:2])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              user=user, env=None if env is None else dict(env), cwd=cwd,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:  # not found, timed out, bad user
        partial = exc.stderr if isinstance(exc, subprocess.TimeoutExpired) else None
        stderr = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        raise CommandFailed(what, argv, None, (stderr or "")[-STDERR_TAIL_CHARS:],
                            str(exc)) from exc
    if done.returncode != 0:
        raise CommandFailed(what, argv, done.returncode, done.stderr[-STDERR_TAIL_CHARS:])
    return done


async def run_async(argv: Sequence[str], *, what: str | None = None,
                    timeout: float | None = None, user: str | None = None,
                    env: Mapping[str, str] | None = None,
                    cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """`run` in a thread, so the event loop keeps going while the command runs."""
    return await asyncio.to_thread(run, argv, what=what, timeout=timeout, user=user,
                                   env=env, cwd=cwd)
