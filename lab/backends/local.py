"""The local backend: the stack as processes on this machine, bound to 127.0.0.1.

Postgres, then the schema and seed; then, started together, the payment gateway stub,
the fault proxy in front of it, the checkout instances (calling the gateway through the
proxy) and the router in front of them — load always enters through the router. Torn
down in reverse order on every way out of the `up()` context, and the run directory
removed.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab.backends import data_volume
from lab.backends.base import (
    DataVolume,
    ServiceInstance,
    Stack,
    StackRequest,
    StartedInstance,
    wait_http_ok,
)
from lab.backends.controls import HttpProxyControl, HttpRouterControl
from lab.errors import BackendError, FaultError
from lab.load.locust_process import LocustProcess
from lab.postgres import PostgresServer, free_port
from lab.processes import REPO_ROOT, ManagedProcess, process_environ, python_env
from lab.runs import RunDir
from lab.scenario import LoadSpec
from lab.services.checkout.schema import migrate

# How long the stack may take to answer once its processes are launched (imports are
# slow on a loaded 2-core machine).
SERVICE_START_TIMEOUT_S = 20.0


@dataclass
class LocalStackHandle:
    stack: Stack
    run_id: str = ""
    logs: Path = Path()
    checkout_env: dict[str, str] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    router_admin: str = ""
    proxy_admin: str = ""
    #: Each checkout instance's data directory on a tmpfs of this size (disk-full).
    data_volume_bytes: int | None = None
    run_dir: Path = Path()

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

    @property
    def router(self) -> HttpRouterControl:
        return HttpRouterControl(self.router_admin)

    @property
    def proxy(self) -> HttpProxyControl:
        return HttpProxyControl(self.proxy_admin)

    def _process(self, name: str) -> ManagedProcess:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise FaultError(f"no instance named {name!r} in this stack")

    def launch_checkout(self, name: str, env: Mapping[str, str]) -> ServiceInstance:
        port = free_port()
        full = python_env({**env, "CHECKOUT_HOST": "127.0.0.1", "CHECKOUT_PORT": str(port),
                           "CHECKOUT_INSTANCE": name})
        argv = [sys.executable, "-m", "lab.services.checkout", "serve"]
        if self.data_volume_bytes is not None:
            # Its own mount namespace with a size-limited tmpfs at DATA_DIR.
            mount_point = str(self._data_dir(name))
            full["DATA_DIR"] = mount_point
            argv = data_volume.wrap_argv(argv, mount_point, self.data_volume_bytes,
                                         _volume_source(self.run_id, name))
        self.processes.append(ManagedProcess(
            name, argv, env=full, run_id=self.run_id, log_dir=self.logs, cwd=REPO_ROOT,
        ))
        return ServiceInstance(name, f"http://127.0.0.1:{port}")

    def _data_dir(self, name: str) -> Path:
        path = self.run_dir / f"{name}-data"
        path.mkdir(exist_ok=True)
        return path

    def attached_volume(self, name: str) -> DataVolume:
        assert self.data_volume_bytes is not None
        return _attached_volume(self._process(name), name, str(self._data_dir(name)),
                                self.data_volume_bytes, _volume_source(self.run_id, name))

    async def start_instance(
        self, name: str, *, env: Mapping[str, str] | None = None, unset: Sequence[str] = ()
    ) -> StartedInstance:
        if any(p.name == name for p in self.processes):
            raise FaultError(f"an instance named {name!r} exists already")
        wanted = {k: v for k, v in {**self.checkout_env, **(env or {})}.items()
                  if k not in set(unset)}
        inst = self.launch_checkout(name, wanted)
        proc = self._process(name)
        self.stack.instances = [*self.stack.instances, inst]
        return StartedInstance(name, inst.base_url, proc.pid, time.time())

    def instance_exit(self, name: str) -> int | None:
        return self._process(name).poll()

    def instance_stderr(self, name: str) -> list[str]:
        try:
            return self._process(name).stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def instance_environ(self, name: str) -> dict[str, str] | None:
        proc = self._process(name)
        if proc.poll() is not None:
            return None
        return process_environ(proc.pid)

    async def stop_instance(self, name: str) -> int | None:
        proc = self._process(name)
        code = await asyncio.to_thread(proc.stop)
        self.stack.instances = [i for i in self.stack.instances if i.name != name]
        return code


async def wait_in_rotation(router: HttpRouterControl, names: Sequence[str],
                           timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        try:
            state = await router.backends()
        except FaultError:
            state = []
        if {str(b["name"]) for b in state if b.get("in_rotation")} >= set(names):
            return
        await asyncio.sleep(0.1)
    raise BackendError(f"the router did not put {', '.join(names)} in rotation within "
                       f"{timeout:g}s: {state}")


class LocalBackend:
    name = "local"

    def unsupported(self, request: StackRequest) -> str | None:
        if request.data_volume_bytes is not None:
            return data_volume.unsupported_reason()
        return None

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[LocalStackHandle]:
        if (reason := self.unsupported(request)) is not None:
            raise BackendError(reason)  # before anything is made: nothing to clean up
        started = time.monotonic()
        run_dir = RunDir.create(request.run_id)
        logs = run_dir.subdir("logs")
        postgres = PostgresServer(run_dir.path / "pg", request.run_id, logs)
        handle: LocalStackHandle | None = None
        try:
            await postgres.start()
            try:
                await migrate(postgres.dsn, request.seed_carts, request.seed_items_per_cart)
            except Exception as exc:
                raise BackendError(f"schema migration and seed failed: {exc}") from exc
            handle = LocalStackHandle(
                Stack(backend=self.name, run_id=request.run_id, entry_url="",
                      db_dsn=postgres.dsn, instances=[], work_dir=str(run_dir.path)),
                run_id=request.run_id, logs=logs,
                data_volume_bytes=request.data_volume_bytes, run_dir=run_dir.path,
            )
            waits = self._launch(handle, request, postgres.dsn)
            for url, proc, what in waits:
                await wait_http_ok(url, SERVICE_START_TIMEOUT_S, what, proc.exit_reason)
            await wait_in_rotation(handle.router, [i.name for i in handle.stack.instances],
                                   SERVICE_START_TIMEOUT_S)
            if request.data_volume_bytes is not None:
                for inst in handle.stack.instances:
                    handle.stack.data_volumes.append(handle.attached_volume(inst.name))
            handle.stack.started_in_s = time.monotonic() - started
            yield handle
        finally:
            if handle is not None:
                for proc in reversed(handle.processes):
                    proc.stop()
            postgres.stop()
            run_dir.remove()

    def _launch(self, handle: LocalStackHandle, request: StackRequest,
                dsn: str) -> list[tuple[str, ManagedProcess, str]]:
        """Start gateway, proxy, checkouts and router at once (their imports overlap);
        return what to wait for."""
        def spawn(name: str, module: str, env: dict[str, str]) -> ManagedProcess:
            proc = ManagedProcess(name, [sys.executable, "-m", module], env=python_env(env),
                                  run_id=request.run_id, log_dir=handle.logs, cwd=REPO_ROOT)
            handle.processes.append(proc)
            return proc

        api_key = f"sk_lab_{secrets.token_hex(12)}"
        pay_port, proxy_port, proxy_admin, router_port, router_admin = (
            free_port() for _ in range(5))
        payments = spawn("payments", "lab.services.payments",
                         {"PAYMENTS_PORT": str(pay_port), "PAYMENTS_API_KEY": api_key})
        proxy = spawn("proxy", "lab.services.proxy", {
            "PROXY_LISTEN_PORT": str(proxy_port), "PROXY_ADMIN_PORT": str(proxy_admin),
            "PROXY_UPSTREAM": f"127.0.0.1:{pay_port}", "PROXY_SEED": str(request.seed)})
        handle.checkout_env = {
            "PAYMENT_URL": f"http://127.0.0.1:{proxy_port}", "PAYMENT_API_KEY": api_key,
            **request.checkout_env, "DATABASE_URL": dsn,
        }
        instances = [handle.launch_checkout(f"checkout-{i}", handle.checkout_env)
                     for i in range(1, request.instances + 1)]
        r = request.router
        router = spawn("router", "lab.services.router", {
            "ROUTER_PORT": str(router_port), "ROUTER_ADMIN_PORT": str(router_admin),
            "ROUTER_BACKENDS": ",".join(f"{i.name}={i.base_url}" for i in instances),
            "ROUTER_HEALTH_PATH": r.health_path, "ROUTER_INTER_MS": str(round(r.inter_s * 1000)),
            "ROUTER_FALL": str(r.fall), "ROUTER_RISE": str(r.rise),
            "ROUTER_RETRY_AFTER_S": request.checkout_env.get("RETRY_AFTER_S", "1"),
        })
        handle.router_admin = f"http://127.0.0.1:{router_admin}"
        handle.proxy_admin = f"http://127.0.0.1:{proxy_admin}"
        stack = handle.stack
        stack.instances = instances
        stack.entry_url = f"http://127.0.0.1:{router_port}"
        stack.services = [
            ServiceInstance("router", handle.router_admin, "router"),
            ServiceInstance("proxy", handle.proxy_admin, "proxy"),
            ServiceInstance("payments", f"http://127.0.0.1:{pay_port}", "payments"),
        ]
        waits = [(f"http://127.0.0.1:{pay_port}/health", payments, "payment gateway"),
                 (f"{handle.proxy_admin}/health", proxy, "fault proxy")]
        waits += [(f"{i.base_url}/livez", handle._process(i.name), i.name) for i in instances]
        waits.append((f"{handle.router_admin}/health", router, "router"))
        return waits

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
    data_volume.check_size(str(path), size, instance)
    return DataVolume(instance, mount_point, str(path), size, source)
