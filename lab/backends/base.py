"""What a backend provides, whatever runs the stack (local processes or containers).

The runner only sees these types, so a scenario runs unchanged on any backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # scenario → faults → backends.base: a runtime import would be a cycle
    from lab.scenario import LoadSpec


@dataclass(frozen=True)
class StackRequest:
    """Everything a backend needs to bring one variant's stack up."""

    run_id: str
    instances: int
    checkout_env: dict[str, str]
    seed_carts: int
    seed_items_per_cart: int
    #: Give each checkout instance a data directory on a filesystem of this many bytes.
    data_volume_bytes: int | None = None


@dataclass(frozen=True)
class ServiceInstance:
    name: str
    base_url: str


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
    data_volumes: list[DataVolume] = field(default_factory=list)


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
        """Begin the load; return the wall-clock time it began."""

    def check_alive(self) -> None:
        """Raise LoadError if the load died before its time."""

    def finished(self) -> bool: ...

    def stop(self) -> None: ...


class StackHandle(Protocol):
    """The live side of a stack: the backend fills in logs when asked."""

    stack: Stack

    def service_stderr(self) -> list[str]:
        """Every stderr line the checkout instances wrote so far."""

    def load_generator(self, spec: LoadSpec, *, carts: int, seed: int) -> LoadGenerator:
        """Locust aimed at the stack's entry point, from inside the backend's network."""


class Backend(Protocol):
    name: str

    def unsupported(self, request: StackRequest) -> str | None:
        """Why this machine cannot run the stack asked for (the run is skipped), or None."""

    def up(self, request: StackRequest) -> AbstractAsyncContextManager[StackHandle]:
        """Start the stack; on exit tear all of it down, whatever happened inside."""
