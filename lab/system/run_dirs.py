"""Run ids and run directories, and cleanup of what a killed run left behind.

Everything a run makes on disk lives under one directory named by its run id, next to
a manifest naming the process that owns it; a local run's Postgres data may live on a
tmpfs instead, in `<tmpfs>/chaoslab-<run id>` with a manifest of its own (lab.stack.pgdata
decides). A run removes its directories when it ends; `lab cleanup` removes directories
(and processes) whose owner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from lab.system.processes import kill_pids, pids_with_run_id


def runs_root() -> Path:
    """Where run directories live; CHAOSLAB_RUNS_ROOT moves them (tests isolate runs so)."""
    return Path(os.environ.get("CHAOSLAB_RUNS_ROOT", "/tmp/chaoslab"))


#: Where what the lab keeps between runs lives (seeded data sets, the load generator's
#: measured ceiling).
CACHE_ENV = "CHAOSLAB_CACHE_DIR"


def cache_root() -> Path:
    """CHAOSLAB_CACHE_DIR; else /var/cache/chaoslab as root (beside the copies of server
    binaries); else the user's cache directory."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/cache/chaoslab")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "chaoslab"


MANIFEST = "run.json"
#: Where a local run's Postgres data goes when it can (lab.stack.pgdata.place_data_copy): a
#: directory, or `off` to keep it in the run directory. Unset: DEFAULT_TMPFS.
TMPFS_ENV = "CHAOSLAB_PGDATA_TMPFS"
DEFAULT_TMPFS = Path("/dev/shm")
TMPFS_PREFIX = "chaoslab-"


def tmpfs_root() -> Path | None:
    """The tmpfs for runs' Postgres data (CHAOSLAB_PGDATA_TMPFS), or None when it is off."""
    value = os.environ.get(TMPFS_ENV, "").strip()
    if value.lower() == "off":
        return None
    return Path(value) if value else DEFAULT_TMPFS


def _write_manifest(path: Path, run_id: str) -> None:
    (path / MANIFEST).write_text(
        json.dumps({"run_id": run_id, "owner_pid": os.getpid(), "created": time.time()}))


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
        _write_manifest(path, run_id)
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


@dataclass
class TmpfsDir:
    """A run's directory on a tmpfs, `<root>/chaoslab-<run id>`, with a manifest naming
    its owner as in the run directory: `lab cleanup` finds it if the run is killed. The
    root (/dev/shm) is shared and never touched."""

    run_id: str
    path: Path

    @classmethod
    def create(cls, run_id: str, root: Path) -> TmpfsDir:
        """Raises OSError when it cannot be made (FileExistsError: the name is taken)."""
        path = root / f"{TMPFS_PREFIX}{run_id}"
        path.mkdir(mode=0o755)
        try:
            path.chmod(0o755)  # whatever the umask: unprivileged Postgres must traverse it
            _write_manifest(path, run_id)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(run_id, path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass(frozen=True)
class Leftover:
    run_id: str
    pids: list[int]
    directory: Path | None
    #: Its Postgres data on a tmpfs (TmpfsDir), if it had any there.
    tmpfs_directory: Path | None = None

    @property
    def directories(self) -> list[Path]:
        return [d for d in (self.directory, self.tmpfs_directory) if d is not None]


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


def tmpfs_roots() -> list[Path]:
    """Where `lab cleanup` looks for runs' tmpfs directories: the configured tmpfs and the
    default one (a run made before CHAOSLAB_PGDATA_TMPFS was set, or set off)."""
    configured = tmpfs_root()
    return list(dict.fromkeys(r for r in (configured, DEFAULT_TMPFS) if r is not None))


def tmpfs_dirs(roots: list[Path] | None = None) -> dict[str, Path]:
    """Run id -> its directory on a tmpfs: `chaoslab-cl-*` directories of this user (the
    roots are shared, e.g. /dev/shm; never a link, never someone else's)."""
    found: dict[str, Path] = {}
    for root in tmpfs_roots() if roots is None else roots:
        if not root.is_dir():
            continue
        for path in sorted(root.glob(f"{TMPFS_PREFIX}cl-*")):
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
                found.setdefault(path.name.removeprefix(TMPFS_PREFIX), path)
    return found


def find_leftovers(root: Path | None = None, include_active: bool = False,
                   tmpfs: list[Path] | None = None) -> list[Leftover]:
    """Runs whose owner is gone (or all runs with include_active): their processes, their
    run directory under `root` and their directory on a tmpfs under `tmpfs` (default:
    tmpfs_roots()). A run is active while the owner named by either manifest lives."""
    root = root or runs_root()
    by_run: dict[str, list[int]] = {}
    for pid, run_id in pids_with_run_id():
        if pid != os.getpid():
            by_run.setdefault(run_id, []).append(pid)
    dirs = {p.name: p for p in root.glob("cl-*") if p.is_dir()} if root.exists() else {}
    on_tmpfs = tmpfs_dirs(tmpfs)
    leftovers = []
    for run_id in sorted(set(by_run) | set(dirs) | set(on_tmpfs)):
        directory, tmpfs_directory = dirs.get(run_id), on_tmpfs.get(run_id)
        owned = [d for d in (directory, tmpfs_directory) if d is not None]
        if not include_active and owned and any(_owner_alive(d) for d in owned):
            continue
        if not include_active and not owned and _any_owner_alive(by_run[run_id]):
            continue
        leftovers.append(Leftover(run_id, by_run.get(run_id, []), directory, tmpfs_directory))
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
    for directory in leftover.directories:
        shutil.rmtree(directory, ignore_errors=True)
