"""Helpers for the checkout service's integration tests: a real Postgres, a real service.

Plain context managers rather than fixtures so the test module decides their scope; each
one removes every process and directory it created on the way out, pass or fail.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.stack.postgres import PostgresServer
from lab.system.ports import free_port
from lab.system.processes import ManagedProcess, python_env


@contextmanager
def running_postgres(carts: int = 30_000, items_per_cart: int = 10) -> Iterator[PostgresServer]:
    """A throwaway server with the checkout schema migrated and seeded."""
    from lab.services.checkout.schema import migrate

    root = Path(tempfile.mkdtemp(prefix="chaoslab-checkout-pg-"))
    root.chmod(0o755)  # mkdtemp is 0700; the unprivileged server user must traverse it
    logs = root / "logs"
    logs.mkdir()
    server = PostgresServer(
        directory=root / "pg", run_id=f"test-{uuid.uuid4().hex[:8]}", log_dir=logs
    )
    try:
        asyncio.run(server.start())
        asyncio.run(migrate(server.dsn, carts, items_per_cart))
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request; non-2xx statuses are returned, not raised."""
    data = raw if raw is not None else None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Response(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, dict(err.headers.items()), err.read())


@dataclass
class ServiceProcess:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.process.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines the service wrote to stderr."""
        found = []
        for line in self.stderr().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found


CHECKOUT_ARGV = ("-m", "lab.services.checkout", "serve")
BARE_ARGV = ("-m", "lab.services.bare")


def start_service_process(
    env: dict[str, str], log_dir: Path, argv: tuple[str, ...] = CHECKOUT_ARGV
) -> ManagedProcess:
    """Start `python <argv>` with exactly `env` (plus PYTHONPATH); output goes to log_dir."""
    return ManagedProcess(
        "service",
        [sys.executable, *argv],
        env=python_env(env),
        run_id=f"test-{uuid.uuid4().hex[:8]}",
        log_dir=log_dir,
    )


@contextmanager
def running_service(
    dsn: str, service: str = "checkout", **overrides: str
) -> Iterator[ServiceProcess]:
    """The service (`checkout` or `bare`) on a free port, live before the block runs."""
    argv = BARE_ARGV if service == "bare" else CHECKOUT_ARGV
    port = free_port()
    env = {"CHECKOUT_PORT": str(port), "DATABASE_URL": dsn, **overrides}
    log_dir = Path(tempfile.mkdtemp(prefix="chaoslab-checkout-svc-"))
    process = start_service_process(env, log_dir, argv)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited {process.poll()}:\n{process.stderr_tail()}")
            try:
                if http("GET", f"http://127.0.0.1:{port}/livez", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not live in 15 s:\n{process.stderr_tail()}")
            time.sleep(0.05)
        yield ServiceProcess(process, port)
    finally:
        process.stop(timeout=10)
        shutil.rmtree(log_dir, ignore_errors=True)
