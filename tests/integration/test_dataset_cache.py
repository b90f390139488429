"""The seeded data set is built once and every stack runs on its own copy of it, on the
tmpfs (/dev/shm) and gone with the stack: real Postgres, real services, through the local
backend."""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import lab.stack.pgdata
from lab.services.checkout.schema import CART_ITEMS_INDEX, DROP_CART_ITEMS_INDEX, migrate
from lab.stack.base import StackRequest
from lab.stack.local import LocalBackend
from lab.stack.postgres import PostgresServer, _server_user
from lab.system.processes import pids_with_run_id
from lab.system.run_dirs import TMPFS_ENV, RunDir, new_run_id

CARTS, ITEMS = 2000, 5


@pytest.fixture
def cache_root() -> Iterator[Path]:
    # Not under pytest's 0700 tmp: the unprivileged Postgres user builds the set in it.
    root = Path(f"/tmp/chaoslab-test-{secrets.token_hex(4)}-cache")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`: (size, mtime in ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


async def db_state(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        stats = await conn.fetchrow(
            "SELECT last_vacuum IS NOT NULL AS vacuumed, last_analyze IS NOT NULL AS analyzed,"
            " n_ins_since_vacuum, n_mod_since_analyze, n_dead_tup"
            " FROM pg_stat_user_tables WHERE relname = 'cart_items'")
        pages = await conn.fetchrow(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'cart_items'")
        return {
            "rows": await conn.fetchval("SELECT count(*) FROM cart_items"),
            "orders": await conn.fetchval("SELECT count(*) FROM orders"),
            "index": await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE indexname = $1", CART_ITEMS_INDEX),
            **dict(stats), **dict(pages),
        }
    finally:
        await conn.close()


async def seeded_in_place() -> dict[str, Any]:
    """The state a run's database had before the cache: initdb, start, migrate, in place."""
    run_dir = RunDir.create(new_run_id())
    server = PostgresServer(run_dir.path / "pg", run_dir.run_id, run_dir.path)
    try:
        await server.start()
        await migrate(server.dsn, CARTS, ITEMS)
        return await db_state(server.dsn)
    finally:
        server.stop()
        run_dir.remove()


async def change(dsn: str) -> None:
    """What a run does to its database: a fault drops the index, checkouts add orders."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(DROP_CART_ITEMS_INDEX)
        await conn.execute("INSERT INTO orders (cart_id, user_id, total_cents, status)"
                           " VALUES (1, 1, 100, 'confirmed')")
    finally:
        await conn.close()


async def data_directory(dsn: str) -> Path:
    conn = await asyncpg.connect(dsn)
    try:
        return Path(await conn.fetchval("SHOW data_directory"))
    finally:
        await conn.close()


def on_tmpfs(path: Path) -> bool:
    done = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                          text=True, check=True)
    return done.stdout.strip() == "tmpfs"


class Thrown(Exception):
    pass


def test_two_stacks_run_on_copies_of_one_data_set_built_once(
    runs_root: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []
    build = lab.stack.pgdata._build

    async def counted(partial: Path, *args: Any) -> None:
        builds.append(partial)
        await build(partial, *args)

    monkeypatch.setattr(lab.stack.pgdata, "_build", counted)
    monkeypatch.delenv(TMPFS_ENV, raising=False)  # the default: /dev/shm
    backend = LocalBackend(dataset_cache=cache_root)
    first, second = new_run_id(), new_run_id()

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with backend.up(StackRequest(first, 1, {}, CARTS, ITEMS)) as a:
            [entry] = list(cache_root.iterdir())
            seen["entry"] = entry
            seen["cached_before"] = snapshot(entry)
            seen["a_fresh"] = await db_state(a.stack.db_dsn)
            seen["a_place"] = a.pg_place
            seen["a_data"] = data_directory_facts(await data_directory(a.stack.db_dsn))
            await change(a.stack.db_dsn)
            seen["a_changed"] = await db_state(a.stack.db_dsn)
            # The second stack starts while the first still runs on its changed copy, and
            # is left by an exception: its tmpfs directory goes all the same.
            with pytest.raises(Thrown):
                async with backend.up(StackRequest(second, 1, {}, CARTS, ITEMS)) as b:
                    seen["b"] = await db_state(b.stack.db_dsn)
                    seen["builds_after_b"] = len(builds)
                    seen["b_data"] = await data_directory(b.stack.db_dsn)
                    raise Thrown
            seen["b_data_after_b"] = seen["b_data"].exists()
            seen["a_data_after_b"] = seen["a_data"]["path"].exists()
            seen["a_after_b"] = await db_state(a.stack.db_dsn)
        seen["cached_after"] = snapshot(entry)
        seen["in_place"] = await seeded_in_place()
        return seen

    seen = asyncio.run(scenario())
    fresh = {"rows": CARTS * ITEMS, "orders": 0, "index": 1, "vacuumed": True,
             "analyzed": True, "n_ins_since_vacuum": 0, "n_mod_since_analyze": 0,
             "n_dead_tup": 0}
    # The first stack built the set: seeded, vacuumed and analyzed, nothing for autovacuum
    # to do, page for page as a database seeded in place (the way before the cache).
    assert {k: seen["a_fresh"][k] for k in fresh} == fresh
    assert seen["a_fresh"] == seen["in_place"]
    assert seen["a_fresh"]["relpages"] > 0
    assert seen["a_changed"]["index"] == 0 and seen["a_changed"]["orders"] == 1
    # The second started from the cache without seeding again, and its copy is intact.
    assert len(builds) == seen["builds_after_b"] == 1
    assert seen["b"] == seen["in_place"]
    assert seen["a_after_b"]["index"] == 0  # each its own copy, both ways
    # The cache entry itself was never written to, and nothing half-built is left.
    entry: Path = seen["entry"]
    assert seen["cached_after"] == seen["cached_before"]
    pgdata = lab.stack.pgdata
    assert pgdata.valid_entry(entry, entry.name.removeprefix(pgdata.ENTRY_PREFIX))
    assert [p.name for p in cache_root.iterdir()] == [entry.name]
    assert (entry / "data").stat().st_mode & 0o777 == 0o700
    for run_id in (first, second):
        assert list(pids_with_run_id(run_id)) == []
    # Each stack's server ran on a copy on the tmpfs, in a directory named by its run id,
    # as the copy in the run directory did (0700, the server user's); gone with the stack.
    shm = Path("/dev/shm")
    assert seen["a_place"].tmpfs is not None, seen["a_place"].why
    a_data = seen["a_data"]
    assert a_data == {"path": shm / f"chaoslab-{first}" / "pg" / "data", "tmpfs": True,
                      "mode": 0o700, "owner": server_uid()}
    assert seen["b_data"] == shm / f"chaoslab-{second}" / "pg" / "data"
    assert seen["a_data_after_b"] and not seen["b_data_after_b"]
    for run_id in (first, second):
        assert not (shm / f"chaoslab-{run_id}").exists()


def data_directory_facts(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": path, "tmpfs": on_tmpfs(path), "mode": st.st_mode & 0o777,
            "owner": st.st_uid}


def server_uid() -> int:
    user = _server_user()
    return os.geteuid() if user is None else pwd.getpwnam(user).pw_uid


def test_a_stack_cancelled_while_starting_leaves_nothing_on_the_tmpfs(
    runs_root: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C and SIGTERM reach a stack as a cancellation (lab.cli.common.run_async); here it
    comes once the copy is on the tmpfs and Postgres is starting."""
    monkeypatch.delenv(TMPFS_ENV, raising=False)
    backend = LocalBackend(dataset_cache=cache_root)
    run_id = new_run_id()
    own = Path("/dev/shm") / f"chaoslab-{run_id}"

    async def scenario() -> bool:
        async def start() -> None:
            async with backend.up(StackRequest(run_id, 1, {}, CARTS, ITEMS)):
                raise AssertionError("the stack came up before it was cancelled")

        task = asyncio.create_task(start())
        while not (own / "pg" / "data" / "PG_VERSION").exists():
            assert not task.done(), task
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return True

    assert asyncio.run(asyncio.wait_for(scenario(), 60))
    assert not own.exists()
    assert list(pids_with_run_id(run_id)) == []
