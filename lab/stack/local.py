"""The local backend: the stack as processes on this machine, bound to 127.0.0.1.

Postgres starts on a copy of the cached, seeded data set (lab.stack.pgdata: built once per
server, schema and size; the first run of a size builds it; the copy on a tmpfs when one
can take it, see lab.stack.pgdata.place_data_copy), while the payment gateway stub and the fault
proxy in front of it import. Then the checkout instances, which call the gateway through
the proxy; once they answer, the router in front of them (load always enters through it).
On every way out of the `up()` context the services are stopped together, Postgres last,
and the run's directories (the run directory, the tmpfs one) removed.
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

from lab.errors import BackendError, FaultError
from lab.load.locust_process import LocustProcess
from lab.scenario.models import LoadSpec
from lab.stack import data_volume, own_local
from lab.stack.base import (
    DataVolume,
    OwnStack,
    ServiceInstance,
    Stack,
    StackRequest,
    StartedInstance,
    wait_http_ok,
)
from lab.stack.controls import HttpProxyControl, HttpRouterControl
from lab.stack.local_proxy import start_proxy
from lab.stack.pgdata import DataCopyPlace, place_data_copy, seeded_data_dir
from lab.stack.postgres import PostgresServer
from lab.system.ports import free_port
from lab.system.processes import REPO_ROOT, ManagedProcess, process_environ, python_env, stop_all
from lab.system.run_dirs import RunDir
from lab.system.threads import off_loop

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
    #: Where Postgres runs (its `data/` and socket) and why there (place_data_copy).
    pg_place: DataCopyPlace | None = None
    postgres: PostgresServer | None = None
    #: The user's own stack (None: the sample shop).
    own: OwnStack | None = None

    def load_generator(self, spec: LoadSpec, *, carts: int, seed: int) -> LocustProcess:
        return LocustProcess(spec, self.stack.entry_url, run_id=self.stack.run_id,
                             work_dir=Path(self.stack.work_dir), env=python_env({}),
                             carts=carts, seed=seed)

    def service_stderr(self) -> list[str]:
        lines: list[str] = []
        prefix = "checkout" if self.own is None else own_local.INSTANCE_PREFIX
        for proc in self.processes:
            if proc.name.startswith(prefix):
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

    def process(self, name: str) -> ManagedProcess:
        return self._process(name)

    def _process(self, name: str) -> ManagedProcess:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise FaultError(f"no instance named {name!r} in this stack")

    def launch_checkout(self, name: str, env: Mapping[str, str]) -> ServiceInstance:
        if self.own is not None:
            return own_local.launch_instance(self, self.own, name, dict(env))
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
        code = await off_loop(proc.stop)
        self.stack.instances = [i for i in self.stack.instances if i.name != name]
        return code


async def wait_in_rotation(router: HttpRouterControl, names: Sequence[str],
                           timeout: float) -> None:
    """Until the router has every one of `names` in rotation *and* has seen it pass a
    health check (a backend given at start begins UP, before any check)."""
    deadline = time.monotonic() + timeout
    state: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        try:
            state = await router.backends()
        except FaultError:
            state = []
        proven = {str(b["name"]) for b in state if b.get("in_rotation")
                  and _count(b.get("checks")) > _count(b.get("failed_checks"))}
        if proven >= set(names):
            return
        await asyncio.sleep(0.1)
    raise BackendError(f"the router did not put {', '.join(names)} in rotation within "
                       f"{timeout:g}s: {state}")


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


class LocalBackend:
    name = "local"
    #: Where seeded data sets are cached; None: lab.stack.pgdata.cache_root(). (A class default
    #: too, for subclasses that do not call this __init__.)
    dataset_cache: Path | None = None

    def __init__(self, dataset_cache: Path | None = None) -> None:
        self.dataset_cache = dataset_cache

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
        handle = LocalStackHandle(
            Stack(backend=self.name, run_id=request.run_id, entry_url="", db_dsn="",
                  instances=[], work_dir=str(run_dir.path),
                  instance_prefix="checkout" if request.own is None
                  else own_local.INSTANCE_PREFIX),
            run_id=request.run_id, logs=logs,
            data_volume_bytes=request.data_volume_bytes, run_dir=run_dir.path, own=request.own,
        )
        try:
            if request.own is not None:
                await own_local.bring_up(handle, request, self.dataset_cache)
            else:
                await self._bring_up_sample(handle, request)
            # The router last, given instances that answer: they begin UP, as backends
            # given at start do (HAProxy's default), and its first checks pass. Started
            # with the others it failed `fall` checks against instances still importing,
            # took them DOWN and needed `rise` passes to bring them back (0.5-1 s more).
            url, router, what = self._launch_router(handle, request)
            await wait_http_ok(url, SERVICE_START_TIMEOUT_S, what, router.exit_reason)
            await wait_in_rotation(handle.router, [i.name for i in handle.stack.instances],
                                   SERVICE_START_TIMEOUT_S)
            if request.data_volume_bytes is not None:
                for inst in handle.stack.instances:
                    handle.stack.data_volumes.append(handle.attached_volume(inst.name))
            handle.stack.started_in_s = time.monotonic() - started
            yield handle
        finally:
            try:
                # All at once (their shutdowns overlap); Postgres after the services that
                # close their pools on it. Both off the loop (each may wait seconds); a
                # cancellation meanwhile waits for the stop in flight (lab.system.threads).
                await off_loop(stop_all, list(reversed(handle.processes)))
            finally:
                try:
                    if handle.postgres is not None:
                        await off_loop(handle.postgres.stop)
                finally:
                    if handle.pg_place is not None:
                        handle.pg_place.remove()
                    run_dir.remove()

    async def _bring_up_sample(self, handle: LocalStackHandle, request: StackRequest) -> None:
        """The sample shop: its data set, gateway stub and proxy, then its checkouts."""
        logs = handle.logs
        try:
            template = await seeded_data_dir(
                request.seed_carts, request.seed_items_per_cart, run_id=request.run_id,
                log_dir=logs, root=self.dataset_cache)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"schema migration and seed failed: {exc}") from exc
        # The copy first, on a CPU of its own: it heads the longest chain (copy,
        # Postgres, checkout). The gateway stub and the fault proxy import while
        # Postgres starts; the checkouts start once it answers.
        handle.pg_place = place_data_copy(template, handle.run_dir, request.run_id)
        postgres = handle.postgres = PostgresServer(handle.pg_place.directory, request.run_id,
                                                    logs)
        await postgres.prepare(template=template)
        waits = self._launch_gateway(handle, request)
        await postgres.run()
        handle.stack.db_dsn = postgres.dsn
        handle.checkout_env = {**handle.checkout_env, "DATABASE_URL": postgres.dsn}
        handle.stack.instances = [
            handle.launch_checkout(f"checkout-{i}", handle.checkout_env)
            for i in range(1, request.instances + 1)]
        waits += [(f"{i.base_url}/livez", handle._process(i.name), i.name)
                  for i in handle.stack.instances]
        for url, proc, what in waits:
            await wait_http_ok(url, SERVICE_START_TIMEOUT_S, what, proc.exit_reason)

    @staticmethod
    def _spawn(handle: LocalStackHandle, request: StackRequest, name: str, module: str,
               env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, [sys.executable, "-m", module], env=python_env(env),
                              run_id=request.run_id, log_dir=handle.logs, cwd=REPO_ROOT)
        handle.processes.append(proc)
        return proc

    def _launch_gateway(self, handle: LocalStackHandle,
                        request: StackRequest) -> list[tuple[str, ManagedProcess, str]]:
        """Start the gateway stub and the fault proxy in front of it (their imports
        overlap); set the checkouts' way to the gateway; return what to wait for."""
        api_key = f"sk_lab_{secrets.token_hex(12)}"
        pay_port = free_port()
        payments = self._spawn(handle, request, "payments", "lab.services.payments",
                               {"PAYMENTS_PORT": str(pay_port), "PAYMENTS_API_KEY": api_key})
        fault_proxy = start_proxy("proxy", f"127.0.0.1:{pay_port}", seed=request.seed,
                                  run_id=request.run_id, log_dir=handle.logs)
        proxy = fault_proxy.process
        handle.processes.append(proxy)
        handle.checkout_env = {
            "PAYMENT_URL": fault_proxy.url, "PAYMENT_API_KEY": api_key,
            **request.checkout_env,
        }
        handle.proxy_admin = fault_proxy.admin_url
        handle.stack.services = [
            ServiceInstance("proxy", handle.proxy_admin, "proxy"),
            ServiceInstance("payments", f"http://127.0.0.1:{pay_port}", "payments"),
        ]
        return [(f"http://127.0.0.1:{pay_port}/health", payments, "payment gateway"),
                (f"{handle.proxy_admin}/health", proxy, "fault proxy")]

    def _launch_router(self, handle: LocalStackHandle,
                       request: StackRequest) -> tuple[str, ManagedProcess, str]:
        """Start the router in front of the stack's checkout instances; return what to
        wait for."""
        router_port, router_admin = free_port(), free_port()
        r = request.router
        router = self._spawn(handle, request, "router", "lab.services.router", {
            "ROUTER_PORT": str(router_port), "ROUTER_ADMIN_PORT": str(router_admin),
            "ROUTER_BACKENDS": ",".join(f"{i.name}={i.base_url}"
                                        for i in handle.stack.instances),
            "ROUTER_HEALTH_PATH": r.health_path, "ROUTER_INTER_MS": str(round(r.inter_s * 1000)),
            "ROUTER_FALL": str(r.fall), "ROUTER_RISE": str(r.rise),
            "ROUTER_RETRY_AFTER_S": request.checkout_env.get("RETRY_AFTER_S", "1"),
        })
        handle.router_admin = f"http://127.0.0.1:{router_admin}"
        handle.stack.entry_url = f"http://127.0.0.1:{router_port}"
        handle.stack.services = [ServiceInstance("router", handle.router_admin, "router"),
                                 *handle.stack.services]
        return f"{handle.router_admin}/health", router, "router"


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
