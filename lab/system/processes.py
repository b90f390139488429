"""Child processes the lab starts, and how it makes sure they all end.

Every child gets the run id in its environment (CHAOSLAB_RUN_ID), its own session (so
a terminal's Ctrl-C reaches the lab first, which then stops children in order), and a
parent-death signal (so even a `kill -9` of the lab does not orphan it). `lab cleanup`
finds leftovers by the run id in /proc/<pid>/environ, never by name alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from lab.system.waiting import wait_until

RUN_ID_ENV = "CHAOSLAB_RUN_ID"
REPO_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM us if the lab dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class ManagedProcess:
    """A child process with its output in files and a stop that always finishes."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        run_id: str,
        log_dir: Path,
        user: str | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.stop_signal = stop_signal
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        full_env = {**env, RUN_ID_ENV: run_id}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    env=full_env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    cwd=cwd,
                    user=user,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise OSError(f"cannot start {name} ({self.argv[0]}): {exc}") from exc

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def exit_reason(self) -> str | None:
        """'exited with code N' and its last stderr lines, or None while it runs."""
        code = self.popen.poll()
        return None if code is None else f"exited with code {code}:\n{self.stderr_tail()}"

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> int | None:
        """Signal, wait, then SIGKILL the whole process group. Safe to call twice."""
        self.signal_stop()
        return self.finish_stop(time.monotonic() + timeout)

    def signal_stop(self) -> None:
        """The first half of `stop`: send the stop signal to the group, without waiting."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, self.stop_signal)

    def finish_stop(self, deadline: float) -> int | None:
        """The second half of `stop`: wait until `deadline` (monotonic), then SIGKILL the
        group; always reap what is left in it (e.g. forked workers)."""
        if self.popen.poll() is None:
            try:
                self.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 5.0) -> None:
    """Stop several processes at once: signal every one, then wait for them under one
    deadline (each still escalates to SIGKILL). Their shutdowns overlap, so this takes
    about as long as the slowest, not the sum."""
    for proc in processes:
        proc.signal_stop()
    deadline = time.monotonic() + timeout
    failed: BaseException | None = None
    for proc in processes:
        try:
            proc.finish_stop(deadline)
        except BaseException as exc:  # finish the others first, then say so
            failed = failed or exc
    if failed is not None:
        raise failed


def pids_with_run_id(run_id: str | None = None) -> Iterator[tuple[int, str]]:
    """(pid, run id) of live processes carrying a lab run id in their environment."""
    marker = f"{RUN_ID_ENV}=".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(marker):
                found = var[len(marker):].decode(errors="replace")
                if run_id is None or found == run_id:
                    yield int(entry.name), found
                break


def kill_pids(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM, wait up to `grace`, then SIGKILL whatever is still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(is_alive(p) for p in pids), grace, every=0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def process_environ(pid: int) -> dict[str, str] | None:
    """The environment a process really runs with (None when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1][:20]
    except (OSError, IndexError):
        return False


def python_env(extra: dict[str, str]) -> dict[str, str]:
    """Environment for a Python child: the lab importable, nothing of the caller's config
    leaking into the service (it must see exactly the scenario's variables)."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "VIRTUAL_ENV", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
