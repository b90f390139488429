"""The docker backend: every part of the stack in its own container, on a private network
made for the run, driven by the Docker SDK.

Services reach each other by container name on the run's network; the lab itself (the
sampler, faults, readiness checks) reaches them only through ports published on
127.0.0.1. Locust runs in a container on the same network and writes its per-request log
into the run directory, bind-mounted, so the host reads it live exactly as on the local
backend. Everything the run creates carries the label `org.chaoslab.run-id`, which is how
`lab cleanup` finds the leftovers of a killed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.backends.base import (
    ProxyControl,
    RouterControl,
    ServiceInstance,
    Stack,
    StackRequest,
    StartedInstance,
    wait_http_ok,
)
from lab.errors import BackendError, LoadError
from lab.images import IMAGES, check_images, engine
from lab.load.locust_process import locust_argv, locust_env
from lab.postgres import DATABASE, SERVER_SETTINGS, SUPERUSER, create_lab_database
from lab.runs import RunDir, run_is_active
from lab.scenario import LoadSpec

RUN_LABEL = "org.chaoslab.run-id"
#: Fault kinds whose machinery runs in containers so far. The router (HAProxy), payment
#: gateway and fault proxy are not containerised yet, so faults that act on them — and
#: the verdicts that depend on them — are refused before anything starts.
SUPPORTED_FAULTS = frozenset({"drop-index"})
CHECKOUT_PORT = 8080
LOCUSTFILE_IN_IMAGE = "/opt/lab/lib/python3.11/site-packages/lab/load/locustfile.py"
REQUEST_LOG_IN_CONTAINER = "/run-data/requests.jsonl"


@dataclass(frozen=True)
class ContainerSpec:
    """What one container of the stack runs. The compose files in compose/ must agree
    with these (a test checks it), so what an instructor starts by hand is what the lab
    runs."""

    role: str
    image: str
    command: list[str]
    environment: dict[str, str]
    ports: tuple[int, ...] = ()


def postgres_spec() -> ContainerSpec:
    command = [a for k, v in SERVER_SETTINGS.items() for a in ("-c", f"{k}={v}")]
    return ContainerSpec("postgres", IMAGES["postgres"], command, {}, (5432,))


def migrate_spec(dsn: str, carts: int, items_per_cart: int) -> ContainerSpec:
    return ContainerSpec(
        "migrate", IMAGES["lab"], ["python", "-m", "lab.services.checkout", "migrate"],
        {"DATABASE_URL": dsn, "SEED_CARTS": str(carts),
         "SEED_ITEMS_PER_CART": str(items_per_cart)},
    )


def checkout_spec(name: str, dsn: str, config: dict[str, str]) -> ContainerSpec:
    return ContainerSpec(
        "checkout", IMAGES["lab"], ["python", "-m", "lab.services.checkout", "serve"],
        {**config, "CHECKOUT_HOST": "0.0.0.0", "CHECKOUT_PORT": str(CHECKOUT_PORT),
         "CHECKOUT_INSTANCE": name, "DATABASE_URL": dsn},
        (CHECKOUT_PORT,),
    )


def _run(client: Any, spec: ContainerSpec, name: str, run_id: str, network: str) -> Any:
    return client.containers.run(
        spec.image, spec.command, name=name, detach=True, network=network,
        labels={RUN_LABEL: run_id}, environment=spec.environment,
        ports={f"{p}/tcp": ("127.0.0.1", None) for p in spec.ports},
    )


def _published_port(container: Any, port: str) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(port) or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", ""):
            return int(binding["HostPort"])
    raise BackendError(f"{container.name}: port {port} is not published")


def _exited(container: Any) -> str | None:
    """Why a container is no longer running, with its last log lines; None if running."""
    try:
        container.reload()
    except Exception as exc:
        return f"is gone ({exc})"
    if container.status in ("exited", "dead"):
        code = container.attrs["State"].get("ExitCode")
        tail = container.logs(tail=20).decode(errors="replace")
        return f"exited with {code}:\n{tail}"
    return None


class LocustContainer:
    """Locust in a container on the run's network; the log lands in the run directory."""

    def __init__(self, client: Any, run_id: str, network: str, work_dir: Path, target: str,
                 spec: LoadSpec, carts: int, seed: int) -> None:
        self.client, self.run_id, self.network = client, run_id, network
        self.work_dir, self.target, self.spec = work_dir, target, spec
        self.carts, self.seed = carts, seed
        self.request_log = work_dir / "requests.jsonl"
        self.container: Any = None
        self.started_at = 0.0

    def start(self) -> float:
        self.request_log.touch()
        self.started_at = time.time()
        try:
            self.container = self.client.containers.run(
                IMAGES["lab"],
                ["python", "-m", "locust", *locust_argv(self.spec, self.target,
                                                        LOCUSTFILE_IN_IMAGE)],
                name=f"{self.run_id}-locust", detach=True, network=self.network,
                labels={RUN_LABEL: self.run_id},
                environment=locust_env(self.spec, carts=self.carts, seed=self.seed,
                                       request_log=REQUEST_LOG_IN_CONTAINER),
                volumes={str(self.work_dir): {"bind": "/run-data", "mode": "rw"}},
            )
        except Exception as exc:
            raise LoadError(f"cannot start the Locust container: {exc}") from exc
        return self.started_at

    def check_alive(self) -> None:
        reason = _exited(self.container)
        if reason is not None and time.time() - self.started_at < self.spec.duration - 1:
            raise LoadError(f"the Locust container {reason}")

    def finished(self) -> bool:
        return self.container is not None and _exited(self.container) is not None

    def stop(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)


@dataclass
class DockerStackHandle:
    stack: Stack
    client: Any
    network: str
    checkouts: list[Any] = field(default_factory=list)

    def service_stderr(self) -> list[str]:
        lines: list[str] = []
        for container in self.checkouts:
            with contextlib.suppress(Exception):
                lines += container.logs(stdout=False, stderr=True).decode(
                    errors="replace").splitlines()
        return lines

    def _missing(self, what: str) -> BackendError:
        return BackendError(f"the docker backend does not run {what} yet")

    @property
    def router(self) -> RouterControl:
        raise self._missing("the router")

    @property
    def proxy(self) -> ProxyControl:
        raise self._missing("the fault proxy")

    async def start_instance(self, name: str, *, env: Mapping[str, str] | None = None,
                             unset: Sequence[str] = ()) -> StartedInstance:
        raise self._missing("extra checkout instances")

    def instance_exit(self, name: str) -> int | None:
        raise self._missing("extra checkout instances")

    def instance_stderr(self, name: str) -> list[str]:
        raise self._missing("extra checkout instances")

    def instance_environ(self, name: str) -> dict[str, str] | None:
        raise self._missing("extra checkout instances")

    async def stop_instance(self, name: str) -> int | None:
        raise self._missing("extra checkout instances")

    def load_generator(self, spec: LoadSpec, *, carts: int, seed: int) -> LocustContainer:
        return LocustContainer(self.client, self.stack.run_id, self.network,
                               Path(self.stack.work_dir), self.stack.entry_url, spec, carts,
                               seed)


class DockerBackend:
    name = "docker"

    def unsupported(self, request: StackRequest) -> str | None:
        if request.fault_kind not in SUPPORTED_FAULTS:
            return (f"the docker backend cannot run fault '{request.fault_kind}' yet (it runs: "
                    f"{', '.join(sorted(SUPPORTED_FAULTS))}); run it with --backend local")
        if request.data_volume_bytes is not None:
            return ("the docker backend gives no instance a size-limited data volume yet "
                    "(it would be `--tmpfs`); run this scenario with --backend local")
        return None

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[DockerStackHandle]:
        if (reason := self.unsupported(request)) is not None:
            raise BackendError(reason)
        started = time.monotonic()
        client = engine()
        check_images(client)
        run_id = request.run_id
        run_dir = RunDir.create(run_id)
        labels = {RUN_LABEL: run_id}
        network = f"chaoslab-{run_id}"
        try:
            client.networks.create(network, driver="bridge", labels=labels)
            postgres = _run(client, postgres_spec(), f"{run_id}-postgres", run_id, network)
            pg_port = _published_port(postgres, "5432/tcp")
            await create_lab_database(pg_port, 60, lambda: _exited(postgres))
            internal_dsn = f"postgresql://{SUPERUSER}@{run_id}-postgres:5432/{DATABASE}"
            await asyncio.to_thread(self._migrate, client, request, network, internal_dsn)
            handle = DockerStackHandle(
                Stack(backend=self.name, run_id=run_id, entry_url="",
                      db_dsn=f"postgresql://{SUPERUSER}@127.0.0.1:{pg_port}/{DATABASE}",
                      instances=[], work_dir=str(run_dir.path)),
                client, network,
            )
            instances = []
            for i in range(1, request.instances + 1):
                name = f"checkout-{i}"
                spec = checkout_spec(name, internal_dsn, request.checkout_env)
                container = _run(client, spec, f"{run_id}-{name}", run_id, network)
                handle.checkouts.append(container)
                port = _published_port(container, f"{CHECKOUT_PORT}/tcp")
                instances.append(ServiceInstance(name, f"http://127.0.0.1:{port}"))
            handle.stack.instances = instances
            handle.stack.entry_url = f"http://{run_id}-checkout-1:{CHECKOUT_PORT}"
            for container, inst in zip(handle.checkouts, instances, strict=True):
                await wait_http_ok(f"{inst.base_url}/livez", 30, inst.name,
                                   functools.partial(_exited, container))
            handle.stack.started_in_s = time.monotonic() - started
            yield handle
        finally:
            await asyncio.to_thread(remove_run_objects, client, run_id)
            run_dir.remove()

    @staticmethod
    def _migrate(client: Any, request: StackRequest, network: str, dsn: str) -> None:
        """Schema and seed as a one-off job container, like a migration job in a cluster."""
        spec = migrate_spec(dsn, request.seed_carts, request.seed_items_per_cart)
        job = _run(client, spec, f"{request.run_id}-migrate", request.run_id, network)
        try:
            code = job.wait(timeout=120)["StatusCode"]
            if code != 0:
                tail = job.logs(tail=20).decode(errors="replace")
                raise BackendError(f"schema migration and seed failed ({code}):\n{tail}")
        finally:
            with contextlib.suppress(Exception):
                job.remove(force=True)


def run_objects(client: Any, run_id: str | None = None) -> Iterator[tuple[str, str, Any]]:
    """(kind, run id, object) for every container, network and volume of lab runs."""
    selector = {"label": f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL}
    for c in client.containers.list(all=True, filters=selector):
        yield "container", c.labels.get(RUN_LABEL, ""), c
    for n in client.networks.list(filters=selector):
        yield "network", (n.attrs.get("Labels") or {}).get(RUN_LABEL, ""), n
    for v in client.volumes.list(filters=selector):
        yield "volume", (v.attrs.get("Labels") or {}).get(RUN_LABEL, ""), v


def leftover_runs(client: Any, include_active: bool) -> dict[str, set[str]]:
    """Run ids with Docker objects whose run is no longer active → kinds of objects."""
    runs: dict[str, set[str]] = {}
    for kind, run_id, _ in run_objects(client):
        if include_active or not run_is_active(run_id):
            runs.setdefault(run_id, set()).add(kind)
    return runs


def remove_run_objects(client: Any, run_id: str) -> int:
    """Remove every object of one run: containers first, then networks and volumes."""
    removed = 0
    objects = sorted(run_objects(client, run_id), key=lambda o: o[0] != "container")
    for kind, _, obj in objects:
        with contextlib.suppress(Exception):
            if kind == "container":
                obj.remove(force=True)
            else:
                obj.remove()
            removed += 1
    return removed
