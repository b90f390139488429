"""What a backend provides, whatever runs the stack (local processes or containers).

The runner only sees these types, so a scenario runs unchanged on any backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lab.errors import BackendError

if TYPE_CHECKING:  # scenario → faults → backends.base: a runtime import would be a cycle
    from lab.scenario.models import LoadSpec


@dataclass(frozen=True)
class RouterSettings:
    """The router's health checks, with HAProxy's meaning (see lab.services.router.health):
    check `health_path` every `inter_s`; DOWN after `fall` failures in a row, UP after
    `rise` passes in a row."""

    health_path: str = "/health"
    inter_s: float = 0.5
    fall: int = 2
    rise: int = 2


@dataclass(frozen=True)
class OwnProcess:
    """A process of the user's own stack, as a backend starts it: `argv` run in `cwd`, its
    port given in `port_env`, up once `health` answers 200."""

    argv: tuple[str, ...]
    cwd: str
    port_env: str
    health: str
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 30.0
    #: The variable the backend sets to the address to listen on (None: not settable).
    host_env: str | None = None
    #: The service of the user's compose file the docker backend runs it from.
    compose_service: str | None = None


@dataclass(frozen=True)
class OwnDependency:
    """A dependency of the user's service: started by the lab (`process`) or reached at
    `url`; the service gets the fault proxy's URL in `url_env`."""

    name: str
    url_env: str
    process: OwnProcess | None = None
    url: str | None = None


@dataclass(frozen=True)
class OwnStack:
    """The user's own system under test, in place of the sample shop."""

    service: OwnProcess
    instance_env: str | None = None
    #: The variable the service reads its database URL from (None: no database).
    db_url_env: str | None = None
    sql_files: tuple[str, ...] = ()
    dependencies: tuple[OwnDependency, ...] = ()
    #: The user's compose file (absolute), for the docker backend.
    compose_file: str | None = None


@dataclass(frozen=True)
class StackRequest:
    """Everything a backend needs to bring one variant's stack up."""

    run_id: str
    instances: int
    checkout_env: dict[str, str]
    seed_carts: int
    seed_items_per_cart: int
    router: RouterSettings = field(default_factory=RouterSettings)
    #: The scenario's seed: the fault proxy's random choices derive from it.
    seed: int = 1
    #: Give each checkout instance a data directory on a filesystem of this many bytes.
    data_volume_bytes: int | None = None
    #: The fault the stack must be able to take (a backend may not support every kind).
    fault_kind: str = ""
    #: The user's own service, database and dependencies (None: the sample shop).
    own: OwnStack | None = None


@dataclass(frozen=True)
class ServiceInstance:
    name: str
    base_url: str
    #: What it is: `checkout`, or `router` / `proxy` / `payments` (sampled on their admin
    #: or own port: /health and /metrics).
    service: str = "checkout"
    #: Where it says whether it is up (the sampler's health reading).
    health_path: str = "/health"


@dataclass(frozen=True)
class StartedInstance:
    """A checkout instance a fault started (e.g. the new version of a rolling deploy)."""

    name: str
    base_url: str
    pid: int | None
    started_at: float  # epoch seconds


@dataclass
class Stack:
    """A running stack: where to send load, where the database is, what to sample."""

    backend: str
    run_id: str
    entry_url: str
    db_dsn: str
    instances: Sequence[ServiceInstance]
    work_dir: str
    started_in_s: float = 0.0
    #: The other parts the lab samples: router, fault proxy, payment gateway.
    services: Sequence[ServiceInstance] = field(default_factory=list)
    data_volumes: list[DataVolume] = field(default_factory=list)
    #: Instances of the service under test are named `<prefix>-N`.
    instance_prefix: str = "checkout"

    @property
    def own_service(self) -> bool:
        """The user's own service, not the sample shop's checkout."""
        return self.instance_prefix != "checkout"

    def service(self, kind: str) -> ServiceInstance | None:
        return next((s for s in self.services if s.service == kind), None)


class RouterControl(Protocol):
    """The router's runtime API, whatever implements it (our router, HAProxy)."""

    async def backends(self) -> list[dict[str, Any]]:
        """Each backend: name, url, state (up/down), in_rotation, in_flight, served."""

    async def add_backend(self, name: str, base_url: str) -> None:
        """Register a backend; it starts DOWN and enters rotation after `rise` passes."""

    async def remove_backend(self, name: str, drain_s: float = 10.0) -> dict[str, Any]:
        """Take it out of rotation at once; return when its in-flight requests ended."""

    async def events(self) -> list[dict[str, Any]]:
        """UP/DOWN transitions, additions and removals, timestamped."""


class ProxyControl(Protocol):
    """The fault proxy's runtime API (the same proxy on every backend)."""

    async def set_toxic(self, toxic: Mapping[str, Any]) -> None: ...

    async def remove_toxic(self, name: str) -> None: ...

    async def reset(self) -> None:
        """Remove every toxic."""

    async def stats(self) -> dict[str, Any]:
        """Counters, live toxics and the log of changes."""


@dataclass(frozen=True)
class DataVolume:
    """An instance's size-limited data directory, and how the lab reaches it."""

    instance: str
    mount_point: str  # DATA_DIR, as the service sees it
    host_path: str  # the same directory as the lab sees it (e.g. /proc/<pid>/root/...)
    size_bytes: int
    source: str  # the mount's name, unique to the run (finds leftovers anywhere)


class LoadGenerator(Protocol):
    """Locust, wherever the backend runs it; its per-request log is readable on the host."""

    request_log: Path

    def start(self) -> float:
        """Begin the load; return, once it has, the wall-clock time its first arrival was
        due (blocks for the generator's start-up: call it off the event loop)."""

    def check_alive(self) -> None:
        """Raise LoadError if the load died before its time."""

    def finished(self) -> bool: ...

    def stop(self) -> None: ...


class StackHandle(Protocol):
    """The live side of a stack: logs, and the operations faults perform on it."""

    stack: Stack

    def service_stderr(self) -> list[str]:
        """Every stderr line the checkout instances wrote so far."""

    def load_generator(self, spec: LoadSpec, *, carts: int, seed: int) -> LoadGenerator:
        """Locust aimed at the stack's entry point, from inside the backend's network."""

    @property
    def router(self) -> RouterControl: ...

    @property
    def proxy(self) -> ProxyControl: ...

    async def start_instance(
        self, name: str, *, env: Mapping[str, str] | None = None, unset: Sequence[str] = ()
    ) -> StartedInstance:
        """Start another checkout instance with the stack's checkout environment, plus
        `env`, minus the variables in `unset`; return as soon as it was launched (it may
        still fail: see `instance_exit`). It is not added to the router."""

    def instance_exit(self, name: str) -> int | None:
        """The instance's exit code, or None while it runs."""

    def instance_stderr(self, name: str) -> list[str]: ...

    def instance_environ(self, name: str) -> dict[str, str] | None:
        """The environment the instance really runs with (None once it has exited)."""

    async def stop_instance(self, name: str) -> int | None:
        """Stop it (SIGTERM, then SIGKILL) and forget it; its exit code."""


class Backend(Protocol):
    name: str

    def unsupported(self, request: StackRequest) -> str | None:
        """Why this machine cannot run the stack asked for (the run is skipped), or None."""

    def up(self, request: StackRequest) -> AbstractAsyncContextManager[StackHandle]:
        """Start the stack; on exit tear all of it down, whatever happened inside."""


async def wait_http_ok(
    url: str, timeout: float, what: str, died: Callable[[], str | None]
) -> None:
    """Poll `url` until it answers 200. `died` says why the service is gone (its exit code
    and last log lines), or None while it runs, so a crash fails at once, not at timeout."""
    import aiohttp  # only the waiting needs it; base.py is otherwise declarations

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while time.monotonic() < deadline:
            reason = died()
            if reason is not None:
                raise BackendError(f"{what} {reason}")
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.05)
    raise BackendError(f"{what} did not answer {url} within {timeout:g}s")
