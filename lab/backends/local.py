"""The local backend: the stack as processes on this machine, bound to 127.0.0.1.

Postgres, then the schema and seed, then the checkout instances; torn down in reverse
order on every way out of the `up()` context, and the run directory removed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from lab.backends import data_volume
from lab.backends.base import DataVolume, ServiceInstance, Stack, StackRequest
from lab.errors import BackendError
from lab.load.locust_process import LocustProcess
from lab.postgres import PostgresServer, free_port
from lab.processes import REPO_ROOT, ManagedProcess, python_env
from lab.runs import RunDir
from lab.scenario import LoadSpec
from lab.services.checkout.schema import migrate


@dataclass
class LocalStackHandle:
    stack: Stack
    processes: list[ManagedProcess] = field(default_factory=list)

    def load_generator(self, spec: LoadSpec, *, carts: int, seed: int) -> LocustProcess:
        return LocustProcess(spec, self.stack.entry_url, run_id=self.stack.run_id,
                             work_dir=Path(self.stack.work_dir), env=python_env({}),
                             carts=carts, seed=seed)

    def service_stderr(self) -> list[str]:
        lines: list[str] = []
        for proc in self.processes:
            if proc.name.startswith("checkout"):
                try:
                    lines += proc.stderr_path.read_text(errors="replace").splitlines()
                except OSError:
                    continue
        return lines


async def wait_http_ok(
    url: str, proc: ManagedProcess, timeout: float, what: str
) -> None:
    """Poll `url` until it answers 200; fail early with stderr if the process died."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise BackendError(f"{what} exited with code {code}:\n{proc.stderr_tail()}")
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.05)
    raise BackendError(f"{what} did not answer {url} within {timeout:g}s:\n{proc.stderr_tail()}")


class LocalBackend:
    name = "local"

    def unsupported(self, request: StackRequest) -> str | None:
        if request.data_volume_bytes is not None:
            return data_volume.unsupported_reason()
        return None

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[LocalStackHandle]:
        started = time.monotonic()
        run_dir = RunDir.create(request.run_id)
        logs = run_dir.subdir("logs")
        postgres = PostgresServer(run_dir.path / "pg", request.run_id, logs)
        handle: LocalStackHandle | None = None
        if (reason := self.unsupported(request)) is not None:
            raise BackendError(reason)
        try:
            await postgres.start()
            try:
                await migrate(postgres.dsn, request.seed_carts, request.seed_items_per_cart)
            except Exception as exc:
                raise BackendError(f"schema migration and seed failed: {exc}") from exc
            handle = LocalStackHandle(
                Stack(
                    backend=self.name,
                    run_id=request.run_id,
                    entry_url="",
                    db_dsn=postgres.dsn,
                    instances=[],
                    work_dir=str(run_dir.path),
                )
            )
            instances: list[ServiceInstance] = []
            for i in range(1, request.instances + 1):
                name = f"checkout-{i}"
                port = free_port()
                env = python_env({
                    **request.checkout_env,
                    "CHECKOUT_HOST": "127.0.0.1",
                    "CHECKOUT_PORT": str(port),
                    "CHECKOUT_INSTANCE": name,
                    "DATABASE_URL": postgres.dsn,
                })
                argv = [sys.executable, "-m", "lab.services.checkout", "serve"]
                mount_point = None
                if request.data_volume_bytes is not None:
                    mount_point = str(run_dir.subdir(f"{name}-data"))
                    env["DATA_DIR"] = mount_point
                    argv = data_volume.wrap_argv(
                        argv, mount_point, request.data_volume_bytes,
                        _volume_source(request.run_id, name),
                    )
                handle.processes.append(ManagedProcess(
                    name, argv, env=env, run_id=request.run_id, log_dir=logs, cwd=REPO_ROOT,
                ))
                instances.append(ServiceInstance(name, f"http://127.0.0.1:{port}"))
            handle.stack.instances = instances
            handle.stack.entry_url = instances[0].base_url
            for proc, inst in zip(handle.processes, instances, strict=True):
                await wait_http_ok(f"{inst.base_url}/livez", proc, 15, inst.name)
                if request.data_volume_bytes is not None:
                    handle.stack.data_volumes.append(_attached_volume(
                        proc, inst.name, str(run_dir.path / f"{inst.name}-data"),
                        request.data_volume_bytes, _volume_source(request.run_id, inst.name),
                    ))
            handle.stack.started_in_s = time.monotonic() - started
            yield handle
        finally:
            if handle is not None:
                for proc in reversed(handle.processes):
                    proc.stop()
            postgres.stop()
            run_dir.remove()


def _volume_source(run_id: str, instance: str) -> str:
    return f"{data_volume.SOURCE_PREFIX}{run_id}-{instance}"


def _attached_volume(
    proc: ManagedProcess, instance: str, mount_point: str, size: int, source: str
) -> DataVolume:
    """Check the instance really runs on its own tmpfs of the requested size."""
    entry = data_volume.mountinfo_entry(proc.pid, mount_point)
    if entry is None or entry["fstype"] != "tmpfs" or entry["source"] != source:
        raise BackendError(
            f"{instance}: no tmpfs at {mount_point} in its mount namespace (found {entry})"
        )
    path = data_volume.host_path(proc.pid, mount_point)
    st = os.statvfs(path)
    page = os.sysconf("SC_PAGE_SIZE")
    if st.f_blocks * st.f_frsize != -(-size // page) * page:  # tmpfs rounds up to pages
        raise BackendError(
            f"{instance}: its data volume holds {st.f_blocks * st.f_frsize} bytes, not {size}"
        )
    return DataVolume(instance, mount_point, str(path), size, source)
