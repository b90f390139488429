"""Integration fixtures: a real PostgreSQL server per test module, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    root = Path(f"/tmp/chaoslab-pg-{secrets.token_hex(4)}")
    root.mkdir(mode=0o755)
    logs = root / "logs"
    logs.mkdir()
    server = PostgresServer(root / "pg", run_id=f"test-{root.name}", log_dir=logs)
    try:
        asyncio.run(server.start())
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
