"""The user's own stack as local processes: their service, its database and dependencies,
in place of the sample shop (a scenario's `stack.service`).

The same parts as the sample's stack, wired from the declaration instead of from the
shop's known variables: Postgres on a copy of a data set built once from the user's SQL
files (lab.stack.pgdata.own_data_dir), each dependency started from its command (or
reached at its URL) with the lab's fault proxy in front of it, the service's instances
started from the user's command with the database's URL, the proxies' URLs and a port in
the variables the user named; the router in front of them is the local backend's. The
local backend's `up()` owns the teardown: everything started here is on the handle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from lab.errors import BackendError
from lab.stack.base import (
    OwnDependency,
    OwnProcess,
    OwnStack,
    ServiceInstance,
    Stack,
    StackRequest,
    wait_http_ok,
)
from lab.stack.local_proxy import start_proxy
from lab.stack.pgdata import DataCopyPlace, own_data_dir, place_data_copy
from lab.stack.postgres import PostgresServer
from lab.system.ports import free_port
from lab.system.processes import ManagedProcess

#: Instances of the user's service are `app-1`, `app-2`, … (the sample's are `checkout-N`).
INSTANCE_PREFIX = "app"
#: What of the lab's own environment a user's process keeps: enough to find its programs.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "VIRTUAL_ENV")


class OwnHandle(Protocol):
    """What of the local backend's handle this module fills in."""

    stack: Stack
    run_id: str
    logs: Path
    run_dir: Path
    processes: list[ManagedProcess]
    pg_place: DataCopyPlace | None
    postgres: PostgresServer | None
    proxy_admin: str
    checkout_env: dict[str, str]

    def process(self, name: str) -> ManagedProcess: ...


def user_env(extra: dict[str, str]) -> dict[str, str]:
    """A user's process sees the scenario's variables and little else of the lab's."""
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_process(handle: OwnHandle, name: str, spec: OwnProcess,
                  env: dict[str, str]) -> tuple[ManagedProcess, int]:
    """Launch one of the user's processes on a port of its own; the process and port."""
    port = free_port()
    bound = {spec.port_env: str(port)}
    if spec.host_env:
        bound[spec.host_env] = "127.0.0.1"
    try:
        proc = ManagedProcess(name, list(spec.argv), env=user_env({**env, **bound}),
                              run_id=handle.run_id, log_dir=handle.logs, cwd=Path(spec.cwd))
    except OSError as exc:
        raise BackendError(f"{name}: {exc}") from None
    handle.processes.append(proc)
    return proc, port


def launch_instance(handle: OwnHandle, own: OwnStack, name: str,
                    env: dict[str, str]) -> ServiceInstance:
    """One instance of the user's service, with `env` (the stack's wiring and the
    variant's configuration) and its port and name in the variables declared."""
    extra = dict(env)
    if own.instance_env:
        extra[own.instance_env] = name
    _proc, port = start_process(handle, name, own.service, extra)
    return ServiceInstance(name, f"http://127.0.0.1:{port}", health_path=own.service.health)


async def wait_up(url: str, proc: ManagedProcess, what: str, timeout: float) -> None:
    """Until `url` answers 200; else a BackendError naming the command, with its output's
    last lines (stdout too: many services log there)."""
    try:
        await wait_http_ok(url, timeout, what, proc.exit_reason)
    except BackendError as exc:
        out = _tail(proc.stdout_path)
        raise BackendError(f"{exc}\n  command: {' '.join(proc.argv)}"
                           + (f"\n  its stdout ends:\n{out}" if out else "")
                           + ("" if proc.poll() is not None else
                              f"\n  its stderr ends:\n{proc.stderr_tail()}")) from None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _upstream(dep: OwnDependency, port: int | None) -> str:
    if port is not None:
        return f"127.0.0.1:{port}"
    assert dep.url is not None
    return dep.url.removeprefix("http://").rstrip("/")


async def bring_up(handle: OwnHandle, request: StackRequest, cache: Path | None) -> None:
    """Start the user's stack onto `handle` (its database, dependencies with their proxies,
    the service's instances) and wait until each answers; the router comes after."""
    own = request.own
    assert own is not None
    waits: list[tuple[str, ManagedProcess, str, float]] = []
    if own.db_url_env is not None:
        template = await own_data_dir(own.sql_files, run_id=request.run_id,
                                      log_dir=handle.logs, root=cache)
        handle.pg_place = place_data_copy(template, handle.run_dir, request.run_id)
        handle.postgres = PostgresServer(handle.pg_place.directory, request.run_id, handle.logs)
        await handle.postgres.prepare(template=template)
    wiring: dict[str, str] = {}
    for i, dep in enumerate(own.dependencies):
        port = None
        if dep.process is not None:
            proc, port = start_process(handle, f"dependency-{dep.name}", dep.process,
                                       dict(dep.process.env))
            waits.append((f"http://127.0.0.1:{port}{dep.process.health}", proc,
                          f"dependency {dep.name!r}", dep.process.ready_timeout_s))
        proxy = start_proxy(f"proxy-{dep.name}", _upstream(dep, port), seed=request.seed,
                            run_id=request.run_id, log_dir=handle.logs)
        handle.processes.append(proxy.process)
        admin = proxy.admin_url
        waits.append((f"{admin}/health", proxy.process, f"the fault proxy for {dep.name!r}",
                      20.0))
        wiring[dep.url_env] = proxy.url
        if i == 0:  # the one the dependency faults act on
            handle.proxy_admin = admin
        handle.stack.services = [*handle.stack.services,
                                 ServiceInstance(f"proxy-{dep.name}", admin, "proxy")]
    if handle.postgres is not None:
        await handle.postgres.run()
        handle.stack.db_dsn = handle.postgres.dsn
        assert own.db_url_env is not None
        wiring[own.db_url_env] = handle.postgres.dsn
    # The lab's wiring last: a variant cannot route the service around the fault proxy.
    handle.checkout_env = {**own.service.env, **request.checkout_env, **wiring}
    for url, proc, what, timeout in waits:  # dependencies first: the service may call them
        await wait_up(url, proc, what, timeout)
    handle.stack.instances = [
        launch_instance(handle, own, f"{INSTANCE_PREFIX}-{n}", handle.checkout_env)
        for n in range(1, request.instances + 1)]
    for inst in handle.stack.instances:
        await wait_up(f"{inst.base_url}{own.service.health}", handle.process(inst.name),
                      f"your service ({inst.name})", own.service.ready_timeout_s)

