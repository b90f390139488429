"""Where a run's copy of the data set goes (lab.stack.pgdata.place_data_copy: a tmpfs, or the
run directory when the tmpfs cannot take it), and how `lab cleanup` finds and removes the
tmpfs directory of a killed run. No server: the placement is decided before Postgres."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.stack import pgdata
from lab.system import run_dirs
from lab.system.run_dirs import MANIFEST, TMPFS_ENV, TmpfsDir, find_leftovers, remove_leftover

RUN_ID = "cl-20260101-000000-abcdef"


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in tmpfs, named by CHAOSLAB_PGDATA_TMPFS; the server runs as this user."""
    root = tmp_path / "shm"
    root.mkdir()
    monkeypatch.setenv(TMPFS_ENV, str(root))
    monkeypatch.setattr(pgdata, "_server_user", lambda: None)
    return root


@pytest.fixture
def template(tmp_path: Path) -> Path:
    data = tmp_path / "entry" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    (data / "base").write_bytes(b"x" * 100_000)
    return data


def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runs" / RUN_ID
    path.mkdir(parents=True)
    return path


def test_the_copy_goes_to_a_tmpfs_directory_named_by_the_run(
    shm: Path, template: Path, tmp_path: Path
) -> None:
    place = pgdata.place_data_copy(template, run_dir(tmp_path), RUN_ID)
    assert place.directory == shm / f"chaoslab-{RUN_ID}" / "pg"
    assert place.tmpfs is not None and place.why == f"on {shm}"
    own = place.directory.parent
    assert own.stat().st_mode & 0o777 == 0o755  # the unprivileged server traverses it
    manifest = json.loads((own / MANIFEST).read_text())
    assert manifest["run_id"] == RUN_ID and manifest["owner_pid"] == os.getpid()
    assert not place.directory.exists()  # PostgresServer.prepare makes it, as before
    place.remove()
    assert not own.exists() and shm.is_dir() and list(shm.iterdir()) == []


def test_off_keeps_it_in_the_run_directory(
    shm: Path, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TMPFS_ENV, "off")
    run = run_dir(tmp_path)
    place = pgdata.place_data_copy(template, run, RUN_ID)
    assert place.directory == run / "pg" and place.tmpfs is None
    assert "CHAOSLAB_PGDATA_TMPFS=off" in place.why
    place.remove()  # nothing to remove: the run directory goes with the run
    assert run.is_dir() and list(shm.iterdir()) == []


def test_unset_means_dev_shm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TMPFS_ENV, raising=False)
    assert run_dirs.tmpfs_root() == Path("/dev/shm")
    monkeypatch.setenv(TMPFS_ENV, "OFF")
    assert run_dirs.tmpfs_root() is None
    assert run_dirs.tmpfs_roots() == [Path("/dev/shm")]  # cleanup still looks there
    monkeypatch.setenv(TMPFS_ENV, "/mnt/ram")
    assert run_dirs.tmpfs_roots() == [Path("/mnt/ram"), Path("/dev/shm")]


def fallback(template: Path, tmp_path: Path, shm: Path) -> pgdata.DataCopyPlace:
    run = run_dir(tmp_path)
    place = pgdata.place_data_copy(template, run, RUN_ID)
    assert place.directory == run / "pg" and place.tmpfs is None
    assert not (shm / f"chaoslab-{RUN_ID}").exists()
    return place


def test_no_tmpfs_directory_falls_back(shm: Path, template: Path, tmp_path: Path) -> None:
    shm.rmdir()
    assert "is not a directory" in fallback(template, tmp_path, shm).why


def test_too_little_room_falls_back(
    shm: Path, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need = 2 * pgdata.tree_bytes(template) + pgdata.TMPFS_HEADROOM_BYTES
    monkeypatch.setattr(pgdata, "_room", lambda root: need - 1)
    assert "MiB free" in fallback(template, tmp_path, shm).why
    monkeypatch.setattr(pgdata, "_room", lambda root: need)
    place = pgdata.place_data_copy(template, tmp_path / "runs" / RUN_ID, RUN_ID)
    assert place.tmpfs is not None
    place.remove()


def test_room_is_free_bytes_but_no_more_than_available_memory(shm: Path) -> None:
    st = os.statvfs(shm)
    meminfo = Path("/proc/meminfo").read_text()
    available = next(int(line.split()[1]) * 1024 for line in meminfo.splitlines()
                     if line.startswith("MemAvailable:"))
    # Both move a little between the reads; the smaller one bounds the room.
    assert pgdata._room(shm) <= max(st.f_bavail * st.f_frsize, available) * 1.05
    assert pgdata._room(shm) >= min(st.f_bavail * st.f_frsize, available) * 0.5


def test_a_tmpfs_the_server_user_cannot_traverse_falls_back(
    shm: Path, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shm.chmod(0o700)  # owned by this user, not by `nobody`
    monkeypatch.setattr(pgdata, "_server_user", lambda: "nobody")
    assert "not traversable by the 'nobody' user" in fallback(template, tmp_path, shm).why


def test_a_tmpfs_that_is_not_writable_falls_back(
    shm: Path, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(run_id: str, root: Path) -> TmpfsDir:
        raise OSError(errno.EROFS, "Read-only file system", str(root))

    monkeypatch.setattr(pgdata.TmpfsDir, "create", read_only)
    assert "is not writable" in fallback(template, tmp_path, shm).why


def test_a_name_already_taken_falls_back_and_is_left_alone(
    shm: Path, template: Path, tmp_path: Path
) -> None:
    taken = shm / f"chaoslab-{RUN_ID}"
    taken.mkdir()
    (taken / "theirs").write_text("x")
    place = pgdata.place_data_copy(template, run_dir(tmp_path), RUN_ID)
    assert place.tmpfs is None and "is not writable" in place.why
    assert (taken / "theirs").read_text() == "x"


# --- lab cleanup: a killed run's tmpfs directory -------------------------------------

KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from lab.system.run_dirs import RunDir, TmpfsDir
run_id, runs_root, shm, with_run_dir = sys.argv[1:5]
if with_run_dir == "1":
    RunDir.create(run_id, Path(runs_root))
(TmpfsDir.create(run_id, Path(shm)).path / "pg").mkdir()
os.kill(os.getpid(), signal.SIGKILL)  # killed mid-run: nothing removed
"""


def killed_run(run_id: str, runs_root: Path, shm: Path, with_run_dir: bool = True) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, run_id, str(runs_root), str(shm),
                           "1" if with_run_dir else "0"], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr


def mine(leftovers: list[run_dirs.Leftover], *run_ids: str) -> list[run_dirs.Leftover]:
    """Only this test's runs (the machine may have others' real runs)."""
    return [lo for lo in leftovers if lo.run_id in run_ids]


def test_a_killed_runs_tmpfs_directory_is_found_and_removed(tmp_path: Path) -> None:
    runs_root, shm = tmp_path / "runs", tmp_path / "shm"
    shm.mkdir()
    killed, only_tmpfs = "cl-20260101-000000-dead01", "cl-20260101-000000-dead02"
    killed_run(killed, runs_root, shm)
    killed_run(only_tmpfs, runs_root, shm, with_run_dir=False)  # run dir removed first
    live = TmpfsDir.create("cl-20260101-000000-live01", shm)  # this process: running

    found = mine(find_leftovers(runs_root, tmpfs=[shm]), killed, only_tmpfs, live.run_id)
    assert [(lo.run_id, lo.directory, lo.tmpfs_directory) for lo in found] == [
        (killed, runs_root / killed, shm / f"chaoslab-{killed}"),
        (only_tmpfs, None, shm / f"chaoslab-{only_tmpfs}"),
    ]
    for lo in found:
        remove_leftover(lo)
    assert [p.name for p in shm.iterdir()] == [live.path.name]
    assert list(runs_root.iterdir()) == []

    # --all: the live run's too, as for run directories.
    [active] = mine(find_leftovers(runs_root, include_active=True, tmpfs=[shm]), live.run_id)
    assert active.directories == [live.path]
    remove_leftover(active)
    assert list(shm.iterdir()) == []


def test_only_this_users_directories_are_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (shm / "chaoslab-cl-20260101-000000-link01").symlink_to(elsewhere)
    (shm / "chaoslab-cl-20260101-000000-file01").write_text("")
    (shm / "PostgreSQL.1234").write_text("")  # a server's shared memory: not ours to judge
    made = TmpfsDir.create("cl-20260101-000000-dir001", shm)
    assert run_dirs.tmpfs_dirs([shm]) == {made.run_id: made.path}
    monkeypatch.setattr(run_dirs.os, "geteuid", lambda: os.getuid() + 1)  # someone else's
    assert run_dirs.tmpfs_dirs([shm]) == {}
    assert run_dirs.tmpfs_dirs([tmp_path / "absent"]) == {}


def test_lab_cleanup_reports_the_tmpfs_directory_it_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lab import cli
    from lab.cli import stack as cli_stack

    runs_root, shm = tmp_path / "runs", tmp_path / "shm"
    shm.mkdir()
    # Only this test's directories: no other processes, no /dev/shm, no containers.
    monkeypatch.setenv("CHAOSLAB_RUNS_ROOT", str(runs_root))
    monkeypatch.setenv(TMPFS_ENV, str(shm))
    monkeypatch.setattr(run_dirs, "DEFAULT_TMPFS", shm)
    monkeypatch.setattr(run_dirs, "pids_with_run_id", lambda: iter(()))
    monkeypatch.setenv(pgdata.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cli_stack, "docker_cleanup", lambda include_active, cached=False: 0)
    killed = "cl-20260101-000000-dead03"
    killed_run(killed, runs_root, shm)
    live = TmpfsDir.create("cl-20260101-000000-live02", shm)

    assert cli.main(["cleanup"]) == 0
    assert (f"{killed}: stopped 0 process(es), removed {runs_root / killed}, "
            f"removed {shm / f'chaoslab-{killed}'}") in capsys.readouterr().out
    assert [p.name for p in shm.iterdir()] == [live.path.name]

    assert cli.main(["cleanup"]) == 0
    assert f"{shm}/chaoslab-cl-*" in capsys.readouterr().out  # nothing, and where it looked

    assert cli.main(["cleanup", "--all"]) == 0
    assert f"removed {live.path}" in capsys.readouterr().out
    assert list(shm.iterdir()) == []


def test_a_cancelled_copy_stops_before_the_target_is_removed(tmp_path: Path) -> None:
    """Ctrl-C during the copy: nothing is written to the target once the copy's await has
    raised, so removing the run's directories right after leaves nothing behind."""
    from lab.stack.postgres import copy_data_dir

    source = tmp_path / "source"
    for d in range(20):
        (source / f"d{d}").mkdir(parents=True)
        for f in range(200):
            (source / f"d{d}" / f"f{f}").write_bytes(b"x" * 4096)
    target = tmp_path / "target"

    async def cancelled() -> None:
        task = asyncio.create_task(copy_data_dir(source, target))
        while not target.exists():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    copied = sum(1 for _ in target.rglob("*"))
    time.sleep(0.3)
    assert sum(1 for _ in target.rglob("*")) == copied < 20 * 201
