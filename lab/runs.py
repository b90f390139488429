"""Run ids and run directories, and cleanup of what a killed run left behind.

Everything a run makes on disk lives under one directory named by its run id, next to
a manifest naming the process that owns it. A run removes its directory when it ends;
`lab cleanup` removes directories (and processes) whose owner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lab.processes import kill_pids, pids_with_run_id


def runs_root() -> Path:
    """Where run directories live; CHAOSLAB_RUNS_ROOT moves them (tests isolate runs so)."""
    return Path(os.environ.get("CHAOSLAB_RUNS_ROOT", "/tmp/chaoslab"))


MANIFEST = "run.json"


def new_run_id() -> str:
    return f"cl-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class RunDir:
    run_id: str
    path: Path
    #: This run made the runs root, so it removes the root too when it is left empty.
    made_root: bool = False

    @classmethod
    def create(cls, run_id: str, root: Path | None = None) -> RunDir:
        root = root or runs_root()
        path = root / run_id
        for _attempt in range(3):  # another run may remove the root it made in between
            made_root = not root.exists()
            try:
                root.mkdir(parents=True, exist_ok=True)
                os.chmod(root, 0o755)  # unprivileged Postgres must traverse it
                path.mkdir(mode=0o755)
                break
            except FileNotFoundError:
                continue
        else:
            raise FileNotFoundError(f"{root} keeps disappearing")
        (path / MANIFEST).write_text(
            json.dumps({"run_id": run_id, "owner_pid": os.getpid(), "created": time.time()})
        )
        return cls(run_id, path, made_root)

    def subdir(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.made_root:
            # Only when empty: a run started meanwhile keeps it (and its own dir in it).
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()


@dataclass(frozen=True)
class Leftover:
    run_id: str
    pids: list[int]
    directory: Path | None


def _owner_alive(run_dir: Path) -> bool:
    try:
        owner = int(json.loads((run_dir / MANIFEST).read_text())["owner_pid"])
    except (OSError, ValueError, KeyError):
        return False
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{owner}/cmdline")
    try:
        return b"lab" in cmdline.read_bytes() or b"pytest" in cmdline.read_bytes()
    except OSError:
        return False


def run_is_active(run_id: str, root: Path | None = None) -> bool:
    """A run whose directory exists and whose owning process is alive."""
    directory = (root or runs_root()) / run_id
    return directory.is_dir() and _owner_alive(directory)


def find_leftovers(root: Path | None = None, include_active: bool = False) -> list[Leftover]:
    """Runs whose owner is gone (or all runs with include_active)."""
    root = root or runs_root()
    by_run: dict[str, list[int]] = {}
    for pid, run_id in pids_with_run_id():
        if pid != os.getpid():
            by_run.setdefault(run_id, []).append(pid)
    dirs = {p.name: p for p in root.glob("cl-*") if p.is_dir()} if root.exists() else {}
    leftovers = []
    for run_id in sorted(set(by_run) | set(dirs)):
        directory = dirs.get(run_id)
        if not include_active and directory is not None and _owner_alive(directory):
            continue
        if not include_active and directory is None and _any_owner_alive(by_run[run_id]):
            continue
        leftovers.append(Leftover(run_id, by_run.get(run_id, []), directory))
    return leftovers


def _any_owner_alive(pids: list[int]) -> bool:
    # Processes of a run with no directory: only leftovers if no lab process owns them.
    # Children die with their parent (PDEATHSIG), so a live parent means an active run.
    for pid in pids:
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid != 1:
            return True
    return False


def remove_leftover(leftover: Leftover) -> None:
    kill_pids(leftover.pids)
    if leftover.directory is not None:
        shutil.rmtree(leftover.directory, ignore_errors=True)
