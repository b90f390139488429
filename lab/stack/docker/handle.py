"""The handle on a running containerised stack: what faults act on (start and stop a
checkout instance, its exit code, stderr and real environment, the router's and the
proxy's controls), whether the docker backend started the stack or a compose project
did (`DockerStackHandle.adopt`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import BackendError, FaultError
from lab.scenario.models import LoadSpec
from lab.stack import data_volume, haproxy
from lab.stack.base import DataVolume, ServiceInstance, Stack, StartedInstance
from lab.stack.controls import HttpProxyControl
from lab.stack.docker.containers import (
    address_on,
    exited,
    log_lines,
    published_port,
    run_container,
    stderr_lines,
)
from lab.stack.docker.locust import LocustContainer
from lab.stack.docker.specs import CHECKOUT_PORT, DATA_MOUNT, ContainerSpec, checkout_spec
from lab.stack.haproxy import HaproxyRouterControl
from lab.system.processes import process_environ

STOP_TIMEOUT_S = 5


@dataclass
class Checkout:
    """One checkout container and what the lab knows of it."""

    name: str
    container: Any
    instance: ServiceInstance


@dataclass
class DockerStackHandle:
    """A running containerised stack, made by `DockerBackend.up` or adopted from a
    running compose project (`adopt`); faults act on it through the `StackHandle`
    operations."""

    stack: Stack
    client: Any
    network: str
    #: Labels every container this handle starts carries (the run id, or the compose
    #: project's labels so `docker compose down` removes it too).
    labels: dict[str, str]
    #: Container name prefix of instances it starts.
    prefix: str
    #: What every instance runs with (the payment wiring included), before its own
    #: name, port and database.
    checkout_env: dict[str, str] = field(default_factory=dict)
    dsn: str = ""
    data_volume_bytes: int | None = None
    checkouts: dict[str, Checkout] = field(default_factory=dict)
    router_container: Any = None
    router_check: str = ""
    proxy_admin: str = ""
    #: stderr of instances already stopped and removed (their logs die with them).
    stopped_stderr: dict[str, list[str]] = field(default_factory=dict)
    stopped_exit: dict[str, int | None] = field(default_factory=dict)
    #: A label numbering the instances it starts (compose's container number), and the
    #: next number.
    number_label: str = ""
    next_number: int = 1
    #: What an instance of the user's own service runs (None: the sample's checkout), and
    #: the port it listens on in its container.
    instance_spec: Callable[[str, Mapping[str, str]], ContainerSpec] | None = None
    instance_port: int = CHECKOUT_PORT
    instance_health: str = "/health"
    _router: HaproxyRouterControl | None = None

    @classmethod
    def adopt(cls, stack: Stack, client: Any, network: str, labels: dict[str, str], *,
              prefix: str, checkouts: Sequence[Checkout], router_container: Any,
              router_check: str, proxy_admin: str, checkout_env: dict[str, str], dsn: str,
              data_volume_bytes: int | None, number_label: str) -> DockerStackHandle:
        """A handle on a stack already running (a compose project's), from what was found
        of it: its checkout containers (numbered by `number_label`; instances it starts
        continue the numbering), its router and proxy. `stack` lists the instances and
        services; their data volumes are checked and added here."""
        handle = cls(
            stack, client, network, labels, prefix, checkout_env=checkout_env, dsn=dsn,
            data_volume_bytes=data_volume_bytes, checkouts={c.name: c for c in checkouts},
            router_container=router_container, router_check=router_check,
            proxy_admin=proxy_admin, number_label=number_label,
            next_number=max(int(c.container.labels.get(number_label, 0))
                            for c in checkouts) + 1,
        )
        if data_volume_bytes is not None:
            stack.data_volumes = [handle.attached_volume(n) for n in handle.checkouts]
        return handle

    def service_stderr(self) -> list[str]:
        lines = [line for kept in self.stopped_stderr.values() for line in kept]
        for checkout in self.checkouts.values():
            lines += stderr_lines(checkout.container)
        return lines

    @property
    def router(self) -> HaproxyRouterControl:
        if self._router is None:  # one per stack: it keeps the log of additions/removals
            port = published_port(self.router_container, haproxy.RUNTIME_PORT)
            self._router = HaproxyRouterControl(
                "127.0.0.1", port, logs=lambda: log_lines(self.router_container),
                check=self.router_check, address=self._internal_address)
        return self._router

    @property
    def proxy(self) -> HttpProxyControl:
        return HttpProxyControl(self.proxy_admin)

    def _internal_address(self, name: str) -> str:
        """host:port of an instance on the stack's network, for HAProxy."""
        checkout = self._checkout(name)
        return f"{address_on(checkout.container, self.network)}:{self.instance_port}"

    def _checkout(self, name: str) -> Checkout:
        if name not in self.checkouts:
            raise FaultError(f"no instance named {name!r} in this stack")
        return self.checkouts[name]

    def launch_checkout(self, name: str, env: Mapping[str, str]) -> Checkout:
        spec = (self.instance_spec(name, env) if self.instance_spec is not None else
                checkout_spec(name, self.dsn, env, data_volume_bytes=self.data_volume_bytes))
        labels = dict(self.labels)
        if self.number_label:
            labels[self.number_label] = str(self.next_number)
            self.next_number += 1
        container = run_container(self.client, spec, f"{self.prefix}{name}", labels,
                         self.network, aliases=[name])
        port = published_port(container, self.instance_port)
        checkout = Checkout(name, container, ServiceInstance(
            name, f"http://127.0.0.1:{port}", health_path=self.instance_health))
        self.checkouts[name] = checkout
        return checkout

    def attached_volume(self, name: str) -> DataVolume:
        """The instance's tmpfs, reached from the host through its main process's root."""
        assert self.data_volume_bytes is not None
        container = self._checkout(name).container
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        volume = DataVolume(name, DATA_MOUNT, str(data_volume.host_path(pid, DATA_MOUNT)),
                            self.data_volume_bytes, f"{self.prefix}{name}:{DATA_MOUNT}")
        entry = data_volume.mountinfo_entry(pid, DATA_MOUNT)
        if entry is None or entry["fstype"] != "tmpfs":
            raise BackendError(f"{name}: no tmpfs at {DATA_MOUNT} (found {entry})")
        data_volume.check_size(volume.host_path, self.data_volume_bytes, name)
        return volume

    async def start_instance(self, name: str, *, env: Mapping[str, str] | None = None,
                             unset: Sequence[str] = ()) -> StartedInstance:
        if name in self.checkouts:
            raise FaultError(f"an instance named {name!r} exists already")
        wanted = {k: v for k, v in {**self.checkout_env, **(env or {})}.items()
                  if k not in set(unset)}
        # Not in a thread: a cancellation (Ctrl-C) must not let a container be created
        # after the stack's teardown looked for them.
        checkout = self.launch_checkout(name, wanted)
        checkout.container.reload()
        self.stack.instances = [*self.stack.instances, checkout.instance]
        return StartedInstance(name, checkout.instance.base_url,
                               checkout.container.attrs["State"].get("Pid"), time.time())

    def instance_exit(self, name: str) -> int | None:
        if name in self.stopped_exit:
            return self.stopped_exit[name]
        container = self._checkout(name).container
        if exited(container) is None:
            return None
        return int(container.attrs["State"].get("ExitCode", -1))

    def instance_stderr(self, name: str) -> list[str]:
        if name in self.stopped_stderr:
            return self.stopped_stderr[name]
        return stderr_lines(self._checkout(name).container)

    def instance_environ(self, name: str) -> dict[str, str] | None:
        """Read from the container's main process (/proc/<pid>/environ), not its config:
        what the service really runs with."""
        container = self._checkout(name).container
        if exited(container) is not None:
            return None
        return process_environ(int(container.attrs["State"]["Pid"]))

    async def stop_instance(self, name: str) -> int | None:
        """`docker stop` (SIGTERM, then SIGKILL after STOP_TIMEOUT_S), keep its stderr and
        exit code, remove the container."""
        checkout = self._checkout(name)

        def stop() -> int | None:
            container = checkout.container
            with contextlib.suppress(Exception):
                container.stop(timeout=STOP_TIMEOUT_S)
            code: int | None = None
            with contextlib.suppress(Exception):
                code = int(container.wait(timeout=STOP_TIMEOUT_S + 5)["StatusCode"])
            self.stopped_stderr[name] = stderr_lines(container)
            with contextlib.suppress(Exception):
                container.remove(force=True)
            return code

        code = await asyncio.to_thread(stop)
        self.stopped_exit[name] = code
        del self.checkouts[name]
        self.stack.instances = [i for i in self.stack.instances if i.name != name]
        return code

    def load_generator(self, spec: LoadSpec, *, carts: int, seed: int) -> LocustContainer:
        return LocustContainer(self.client, self.stack.run_id, self.network,
                               Path(self.stack.work_dir), f"http://{self.prefix}router:"
                               f"{haproxy.TRAFFIC_PORT}", spec, carts, seed)
