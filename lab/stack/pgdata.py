"""Seeded data sets, built once and copied for each run (the local backend).

Building a variant's database from nothing costs initdb, a start, the schema, the seed and
`VACUUM (ANALYZE)`: 2.5-3 s of every variant on 2 cores. The result depends only on the
server, the schema module and the data set's size, so it is built once into a cache entry
and each run starts its server on a copy of it (`cp -a`: 0.3-1.1 s here for the 500k-row
set, ~100 MB in 1,300 files). Whatever a run does to its database (a fault drops an index,
checkouts insert orders) touches only its copy.

An entry is `<cache root>/pgdata-<key>/`: `data/` (the data directory of a server that was
stopped cleanly right after `migrate`, so its statistics are saved with it and
autovacuum has nothing to do, exactly as after a fresh seed) and `dataset.json` (what it
was built from). It is built in `pgdata-<key>.<token>.<pid>.partial/` and renamed into
place only once complete and on disk, so a run sees a whole entry or none; an entry
without a matching `dataset.json` is never used (it is rebuilt). `lab cleanup` removes the
`.partial` directories of builds whose process is gone; `lab cleanup --cache` removes the
entries themselves.

Where each run's copy goes is decided in one place, `place_data_copy`: on a tmpfs
(/dev/shm, or CHAOSLAB_PGDATA_TMPFS) in `chaoslab-<run id>/pg` when it can take it, else
in the run directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import os
import pwd
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from lab.errors import BackendError
from lab.services.checkout import schema
from lab.stack.postgres import (
    INITDB_ARGS,
    SERVER_SETTINGS,
    PostgresServer,
    _bindir_reachable_by,
    _blocking_parent,
    _check_traversable,
    _server_user,
    find_bindir,
)
from lab.system import commands
from lab.system.processes import is_alive
from lab.system.run_dirs import CACHE_ENV as CACHE_ENV
from lab.system.run_dirs import TMPFS_ENV, TmpfsDir, tmpfs_root
from lab.system.run_dirs import cache_root as cache_root

ENTRY_PREFIX = "pgdata-"
PARTIAL_SUFFIX = ".partial"
MARKER = "dataset.json"
#: Bump when the way an entry is built changes in a way the key below cannot see.
FORMAT = 1
#: Only while building: with wal_level=minimal the tables `migrate` creates and fills in
#: one transaction write no WAL, so an entry carries ~17 MB of WAL instead of ~80 MB, and
#: every run copies it. A user's SQL fills tables another file created, which does write
#: WAL (161 MB of it for the example's 800 000 orders); with wal_recycle off the shutdown
#: checkpoint deletes the segments it no longer needs instead of keeping them renamed for
#: reuse, so no entry carries WAL a run would only copy. The data files are the same;
#: each run's server starts with the lab's usual settings (SERVER_SETTINGS).
BUILD_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0", "wal_recycle": "off",
                  "min_wal_size": "32MB"}


def dataset_key(server: str, server_user: str, carts: int, items_per_cart: int) -> str:
    """What an entry depends on, hashed: the server (version and binaries), the user that
    owns the files, the schema module's DDL, seed and `migrate` itself, the sizes, and how
    the server is made and run. Any change gives another entry; nothing is invalidated in
    place."""
    try:
        migrate_source = inspect.getsource(schema.migrate)
    except OSError:  # no source at hand: the bytecode still changes with the code
        migrate_source = schema.migrate.__code__.co_code.hex()
    parts: dict[str, Any] = {
        "format": FORMAT,
        "server": server,
        "server_user": server_user,
        "carts": carts,
        "items_per_cart": items_per_cart,
        "schema": schema.SCHEMA,
        "payments_schema": schema.PAYMENTS_SCHEMA,
        "seed": list(schema.SEED),
        "migrate": migrate_source,
        "initdb": list(INITDB_ARGS),
        "settings": SERVER_SETTINGS,
        "build_settings": BUILD_SETTINGS,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def own_dataset_key(server: str, server_user: str, sql_texts: Sequence[str]) -> str:
    """What a database set up from the user's SQL depends on, hashed as `dataset_key`:
    the files' contents (in order), the server, and how it is made and run."""
    parts = {"format": FORMAT, "kind": "own", "server": server, "server_user": server_user,
             "sql": list(sql_texts), "initdb": list(INITDB_ARGS), "settings": SERVER_SETTINGS,
             "build_settings": BUILD_SETTINGS}
    return "own-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def entry_path(root: Path, key: str) -> Path:
    return root / f"{ENTRY_PREFIX}{key}"


def valid_entry(entry: Path, key: str) -> bool:
    """A complete entry for `key`: its marker names the key and its data directory is
    there. A `.partial` directory is never an entry (it is not at the entry's path)."""
    if entry.name.endswith(PARTIAL_SUFFIX):
        return False
    try:
        doc = json.loads((entry / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("key") == key and (
        entry / "data" / "PG_VERSION").is_file()


_identities: dict[Path, str] = {}


def server_identity(bindir: Path) -> str:
    """`postgres --version` and where the binaries are (asked once per bindir)."""
    if bindir not in _identities:
        done = commands.run([str(bindir / "postgres"), "--version"],
                            what=f"{bindir / 'postgres'} --version")
        _identities[bindir] = f"{done.stdout.strip()} @ {bindir}"
    return _identities[bindir]


async def _cache_server() -> tuple[str, str | None, str]:
    """The server a cache entry is built with: its identity, the unprivileged user it runs
    as (None: this one), and who owns the entry's files."""
    bindir = find_bindir()
    user = _server_user()
    if user is not None:
        bindir = _bindir_reachable_by(bindir, user)
    identity = await asyncio.to_thread(server_identity, bindir)
    return identity, user, user or _user_name()


async def seeded_data_dir(carts: int, items_per_cart: int, *, run_id: str, log_dir: Path,
                          root: Path | None = None) -> Path:
    """The data directory of a stopped server holding the seeded lab database: from the
    cache, or built into it first (the build's server carries `run_id`, so `lab cleanup`
    finds it if the lab is killed meanwhile). Never start a server on it: copy it
    (PostgresServer.start(template=...))."""
    if carts < 1 or items_per_cart < 1:
        raise ValueError("carts and items_per_cart must be >= 1")
    root = root or cache_root()
    identity, user, owner = await _cache_server()
    key = dataset_key(identity, owner, carts, items_per_cart)
    entry = entry_path(root, key)
    if valid_entry(entry, key):
        return entry / "data"
    _make_root(root, user)

    async def build(partial: Path) -> None:
        await _build(partial, carts, items_per_cart, run_id, log_dir)

    facts = {"server": identity, "server_user": owner, "carts": carts,
             "items_per_cart": items_per_cart}
    return await ensure_entry(entry, key, build, facts) / "data"


def read_sql_files(sql_files: Sequence[str]) -> list[str]:
    """The user's SQL files' texts; one that cannot be read is named."""
    texts = []
    for name in sql_files:
        try:
            texts.append(Path(name).read_text(encoding="utf-8"))
        except OSError as exc:
            raise BackendError(f"stack.database.sql: cannot read {name}: {exc.strerror}") from None
    return texts


async def apply_sql(dsn: str, sql_files: Sequence[str], texts: Sequence[str]) -> None:
    """Run the user's SQL files in order on `dsn`; the one that fails is named."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, text in zip(sql_files, texts, strict=True):
            try:
                await conn.execute(text)
            except asyncpg.PostgresError as exc:
                raise BackendError(f"stack.database.sql: {name} failed: "
                                   f"{type(exc).__name__}: {exc}") from None
    finally:
        await conn.close()


async def own_data_dir(sql_files: Sequence[str], *, run_id: str, log_dir: Path,
                       root: Path | None = None) -> Path:
    """The data directory of a stopped server set up from the user's SQL files (run in
    order on a fresh database): from the cache, keyed by the files' contents, or built into
    it first. Copy it, as `seeded_data_dir`'s."""
    root = root or cache_root()
    identity, user, owner = await _cache_server()
    texts = read_sql_files(sql_files)
    key = own_dataset_key(identity, owner, texts)
    entry = entry_path(root, key)
    if valid_entry(entry, key):
        return entry / "data"
    _make_root(root, user)

    async def build(partial: Path) -> None:
        server = PostgresServer(partial, run_id, log_dir, name="postgres-dataset-build",
                                settings={**SERVER_SETTINGS, **BUILD_SETTINGS})
        try:
            await server.start()
            await apply_sql(server.dsn, sql_files, texts)
        except BaseException:
            server.stop()
            raise
        if server.stop() != 0:
            raise BackendError("the server that built your database did not stop cleanly; "
                               "not caching it")

    facts = {"server": identity, "server_user": owner, "sql": list(sql_files)}
    return await ensure_entry(entry, key, build, facts) / "data"


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return str(os.geteuid())


def _make_root(root: Path, user: str | None) -> None:
    try:
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            root.chmod(0o755)  # the unprivileged server builds in it
    except OSError as exc:
        raise BackendError(f"cannot make the data set cache {root}: {exc}; put it elsewhere "
                           f"with {CACHE_ENV}") from exc
    if user is not None:
        _check_traversable(root, user, CACHE_ENV, "the data set cache")


async def ensure_entry(entry: Path, key: str, build: Callable[[Path], Awaitable[None]],
                       facts: dict[str, Any]) -> Path:
    """`entry` when it is valid for `key`; otherwise `build(partial)` fills a fresh
    `.partial` directory, which gets its marker, is flushed to disk and renamed to `entry`
    in one step. A failed or interrupted build leaves nothing behind. When another process
    finished the same entry first, its entry is used and this build dropped."""
    if valid_entry(entry, key):
        return entry
    # The builder's pid last (lab cleanup reads it); a token for two builds in one process.
    partial = entry.with_name(
        f"{entry.name}.{secrets.token_hex(3)}.{os.getpid()}{PARTIAL_SUFFIX}")
    partial.mkdir(mode=0o755)
    placed = False
    try:
        started = time.monotonic()
        await build(partial)
        doc = {"key": key, **facts, "built_at": time.time(),
               "build_s": round(time.monotonic() - started, 3)}
        (partial / MARKER).write_text(json.dumps(doc, indent=2) + "\n")
        await asyncio.to_thread(_flush_tree, partial)  # on disk before it is visible
        if entry.exists() and not valid_entry(entry, key):
            _discard(entry)  # damaged (not by the lab: its entries appear whole)
        try:
            partial.rename(entry)
            placed = True
        except OSError as exc:
            if not valid_entry(entry, key):
                raise BackendError(f"cannot put the data set in place at {entry}: {exc}") from exc
        _flush_dir(entry.parent)
    finally:
        if not placed:
            shutil.rmtree(partial, ignore_errors=True)
    return entry


async def _build(partial: Path, carts: int, items_per_cart: int, run_id: str,
                 log_dir: Path) -> None:
    """initdb, start, create the database, migrate (schema, seed, VACUUM ANALYZE), and a
    clean fast shutdown, which writes the statistics autovacuum decides by."""
    server = PostgresServer(partial, run_id, log_dir, name="postgres-dataset-build",
                            settings={**SERVER_SETTINGS, **BUILD_SETTINGS})
    try:
        await server.start()
        await schema.migrate(server.dsn, carts, items_per_cart)
    except BaseException:
        server.stop()
        raise
    code = server.stop()
    if code != 0:
        raise BackendError(f"the server that built the data set did not stop cleanly (exit "
                           f"{code}); not caching it:\n"
                           f"{server.process.stderr_tail() if server.process else ''}")


def _flush_tree(root: Path) -> None:
    """fsync every file and directory under `root` (the server ran with fsync off)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _flush_dir(Path(dirpath))


def _flush_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    """Out of sight in one step (a rename), then removed."""
    aside = path.with_name(f"{path.name}.{os.getpid()}.discarded{PARTIAL_SUFFIX}")
    try:
        path.rename(aside)
    except OSError:
        return  # gone already
    shutil.rmtree(aside, ignore_errors=True)


def _builder_pid(path: Path) -> int | None:
    """The pid of the process that made `pgdata-<key>.<token>.<pid>.partial` (or, for a
    partial that is being discarded, of the process discarding it), or None."""
    for part in reversed(path.name.removesuffix(PARTIAL_SUFFIX).split(".")[1:]):
        if part.isdigit():
            return int(part)
    return None


def stale_partials(root: Path | None = None) -> list[Path]:
    """`.partial` directories whose building process is gone (a killed run's)."""
    root = root or cache_root()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob(f"{ENTRY_PREFIX}*{PARTIAL_SUFFIX}")):
        pid = _builder_pid(path)
        if pid is None or not is_alive(pid):
            found.append(path)
    return found


def cache_entries(root: Path | None = None) -> list[Path]:
    """The complete entries (whatever their key), for `lab cleanup --cache`."""
    root = root or cache_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{ENTRY_PREFIX}*")
                  if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX))


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def remove_entry(path: Path) -> None:
    """Remove an entry or a stale partial (renamed aside first: never half-visible)."""
    _discard(path)


#: Room a run's copy needs on a tmpfs beyond its own size: as much again for what the run
#: writes (WAL, orders, an index a fault rebuilds, temporary files), and this much for
#: everything else that lives in memory.
TMPFS_HEADROOM_BYTES = 256 * 2**20


@dataclass(frozen=True)
class DataCopyPlace:
    """Where a run's server lives (`PostgresServer.directory`: its `data/` and socket)."""

    directory: Path
    #: The run's directory on a tmpfs holding `directory`; None: it is in the run directory.
    tmpfs: TmpfsDir | None
    #: Where it went and, when not on a tmpfs, why not.
    why: str

    def remove(self) -> None:
        """The tmpfs directory, if any (the run directory goes with the run)."""
        if self.tmpfs is not None:
            self.tmpfs.remove()


def place_data_copy(template: Path, run_dir: Path, run_id: str) -> DataCopyPlace:
    """Decide where a run's copy of `template` (a cached data set) goes, and make its
    directory there: `<tmpfs>/chaoslab-<run id>/pg` when the tmpfs can take it, else
    `<run dir>/pg`. The one place this is decided.

    Why a tmpfs: the copy is ~1,300 files and this disk is slow at creating files (`cp -a`
    0.3-1.1 s per variant into the run directory, ~0.13 s onto /dev/shm), and a run's
    database is thrown away when the run ends, so it needs no disk. Why the run directory
    otherwise: the tmpfs is off (CHAOSLAB_PGDATA_TMPFS=off) or missing; it has too little
    room (free bytes, or available memory, since a tmpfs lives in it, below twice the
    copy plus TMPFS_HEADROOM_BYTES: a run that fills it would fail for the wrong reason);
    it is not writable; or the unprivileged user that runs Postgres as root cannot
    traverse it. The tmpfs directory is named by the run id and has the run's manifest, so
    `lab cleanup` finds it if the run is killed; the caller removes it (`remove`) on every
    way out, after the server has stopped."""
    in_run_dir = run_dir / "pg"
    root = tmpfs_root()
    if root is None:
        return DataCopyPlace(in_run_dir, None, f"in the run directory ({TMPFS_ENV}=off)")

    def fallback(reason: str) -> DataCopyPlace:
        return DataCopyPlace(in_run_dir, None, f"in the run directory: {root} {reason} "
                                               f"(set {TMPFS_ENV} to another tmpfs)")

    if not root.is_dir():
        return fallback("is not a directory")
    need = 2 * tree_bytes(template) + TMPFS_HEADROOM_BYTES
    room = _room(root)
    if room < need:
        return fallback(f"has {room / 2**20:.0f} MiB free, the copy needs "
                        f"{need / 2**20:.0f} MiB with headroom")
    user = _server_user()
    if user is not None and (blocked := _blocking_parent(root, user)) is not None:
        return fallback(f"is not traversable by the '{user}' user that runs Postgres "
                        f"({blocked} is mode {oct(blocked.stat().st_mode & 0o777)})")
    try:
        made = TmpfsDir.create(run_id, root)
    except OSError as exc:
        return fallback(f"is not writable ({exc})")
    return DataCopyPlace(made.path / "pg", made, f"on {root}")


def _room(root: Path) -> int:
    """Free bytes on `root`'s filesystem, but no more than the memory available."""
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return min(free, int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return free
