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
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.backends import data_volume, haproxy
from lab.backends.base import (
    DataVolume,
    ServiceInstance,
    Stack,
    StackRequest,
    StartedInstance,
    wait_http_ok,
)
from lab.backends.controls import HttpProxyControl
from lab.backends.haproxy import HaproxyRouterControl
from lab.errors import BackendError, FaultError, LoadError
from lab.images import IMAGES, check_images, engine
from lab.load.locust_process import locust_argv, locust_env
from lab.postgres import DATABASE, SERVER_SETTINGS, SUPERUSER, create_lab_database
from lab.processes import process_environ
from lab.runs import RunDir, run_is_active
from lab.scenario import LoadSpec

RUN_LABEL = "org.chaoslab.run-id"
CHECKOUT_PORT = 8080
PAYMENTS_PORT = 8090
PROXY_PORT = 8091
PROXY_ADMIN_PORT = 8092
#: Where each checkout instance's size-limited data volume (a tmpfs) is mounted.
DATA_MOUNT = "/data"
#: The config file the router container reads (bind-mounted, read-only).
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
LOCUSTFILE_IN_IMAGE = "/opt/lab/lib/python3.11/site-packages/lab/load/locustfile.py"
REQUEST_LOG_IN_CONTAINER = "/run-data/requests.jsonl"
STOP_TIMEOUT_S = 5


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
    #: mount point → docker tmpfs options (`size=…,mode=…`)
    tmpfs: dict[str, str] = field(default_factory=dict)


def postgres_spec() -> ContainerSpec:
    command = [a for k, v in SERVER_SETTINGS.items() for a in ("-c", f"{k}={v}")]
    return ContainerSpec("postgres", IMAGES["postgres"], command, {}, (5432,))


def migrate_spec(dsn: str, carts: int, items_per_cart: int) -> ContainerSpec:
    return ContainerSpec(
        "migrate", IMAGES["lab"], ["python", "-m", "lab.services.checkout", "migrate"],
        {"DATABASE_URL": dsn, "SEED_CARTS": str(carts),
         "SEED_ITEMS_PER_CART": str(items_per_cart)},
    )


def payments_spec(api_key: str) -> ContainerSpec:
    return ContainerSpec(
        "payments", IMAGES["lab"], ["python", "-m", "lab.services.payments"],
        {"PAYMENTS_HOST": "0.0.0.0", "PAYMENTS_PORT": str(PAYMENTS_PORT),
         "PAYMENTS_API_KEY": api_key},
        (PAYMENTS_PORT,),
    )


def proxy_spec(payments_host: str, seed: int) -> ContainerSpec:
    """The fault proxy between the checkout and the gateway; only its admin port is
    published (the lab sets toxics there)."""
    return ContainerSpec(
        "proxy", IMAGES["lab"], ["python", "-m", "lab.services.proxy"],
        {"PROXY_HOST": "0.0.0.0", "PROXY_LISTEN_PORT": str(PROXY_PORT),
         "PROXY_ADMIN_PORT": str(PROXY_ADMIN_PORT),
         "PROXY_UPSTREAM": f"{payments_host}:{PAYMENTS_PORT}", "PROXY_SEED": str(seed)},
        (PROXY_ADMIN_PORT,),
    )


def payment_wiring(proxy_host: str, api_key: str) -> dict[str, str]:
    """How a checkout reaches the gateway: through the fault proxy, with the API key. Part
    of its environment like any other variable, so a deploy can lose the key."""
    return {"PAYMENT_URL": f"http://{proxy_host}:{PROXY_PORT}", "PAYMENT_API_KEY": api_key}


def checkout_spec(name: str, dsn: str, config: Mapping[str, str], *,
                  data_volume_bytes: int | None = None) -> ContainerSpec:
    env = {**config, "CHECKOUT_HOST": "0.0.0.0", "CHECKOUT_PORT": str(CHECKOUT_PORT),
           "CHECKOUT_INSTANCE": name, "DATABASE_URL": dsn}
    tmpfs = {}
    if data_volume_bytes is not None:
        env["DATA_DIR"] = DATA_MOUNT
        tmpfs[DATA_MOUNT] = f"size={data_volume_bytes},mode=0755"
    return ContainerSpec("checkout", IMAGES["lab"],
                         ["python", "-m", "lab.services.checkout", "serve"], env,
                         (CHECKOUT_PORT,), tmpfs)


def router_spec() -> ContainerSpec:
    """HAProxy in the foreground (`-db`), master-worker so it can reload; its config is
    rendered by lab.backends.haproxy and mounted at HAPROXY_CFG."""
    return ContainerSpec("router", IMAGES["haproxy"],
                         ["haproxy", "-W", "-db", "-f", HAPROXY_CFG], {},
                         (haproxy.TRAFFIC_PORT, haproxy.ADMIN_PORT, haproxy.RUNTIME_PORT))


def _run(client: Any, spec: ContainerSpec, name: str, labels: Mapping[str, str],
         network: str, *, aliases: Sequence[str] = (), **extra: Any) -> Any:
    """Create and start a container of `spec` on `network`, reachable there as `name`
    (and `aliases`); its ports published on 127.0.0.1 at ports the engine picks."""
    container = client.containers.create(
        spec.image, spec.command, name=name, labels=dict(labels),
        environment=spec.environment, tmpfs=spec.tmpfs or None,
        ports={f"{p}/tcp": ("127.0.0.1", None) for p in spec.ports},
        **extra,
    )
    try:
        client.networks.get(network).connect(container, aliases=list(aliases) or None)
        with contextlib.suppress(Exception):  # a container starts on "bridge" too
            client.networks.get("bridge").disconnect(container)
        container.start()
    except Exception:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        raise
    return container


def _published_port(container: Any, port: int) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", ""):
            return int(binding["HostPort"])
    raise BackendError(f"{container.name}: port {port} is not published")


def _address_on(container: Any, network: str) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    address = (networks.get(network) or {}).get("IPAddress")
    if not address:
        raise BackendError(f"{container.name} has no address on {network}")
    return str(address)


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


def _stderr_lines(container: Any) -> list[str]:
    try:
        raw: bytes = container.logs(stdout=False, stderr=True)
    except Exception:
        return []
    return raw.decode(errors="replace").splitlines()


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
        spec = ContainerSpec(
            "locust", IMAGES["lab"],
            ["python", "-m", "locust", *locust_argv(self.spec, self.target,
                                                    LOCUSTFILE_IN_IMAGE)],
            locust_env(self.spec, carts=self.carts, seed=self.seed,
                       request_log=REQUEST_LOG_IN_CONTAINER),
        )
        try:
            self.container = _run(
                self.client, spec, f"{self.run_id}-locust", {RUN_LABEL: self.run_id},
                self.network, volumes={str(self.work_dir): {"bind": "/run-data", "mode": "rw"}})
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
class Checkout:
    """One checkout container and what the lab knows of it."""

    name: str
    container: Any
    instance: ServiceInstance


@dataclass
class DockerStackHandle:
    """A running containerised stack, made by `DockerBackend.up` or found by
    `attach_compose`; faults act on it through the `StackHandle` operations."""

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
    _router: HaproxyRouterControl | None = None

    def service_stderr(self) -> list[str]:
        lines = [line for kept in self.stopped_stderr.values() for line in kept]
        for checkout in self.checkouts.values():
            lines += _stderr_lines(checkout.container)
        return lines

    @property
    def router(self) -> HaproxyRouterControl:
        if self._router is None:  # one per stack: it keeps the log of additions/removals
            port = _published_port(self.router_container, haproxy.RUNTIME_PORT)
            self._router = HaproxyRouterControl(
                "127.0.0.1", port, logs=lambda: _log_lines(self.router_container),
                check=self.router_check, address=self._internal_address)
        return self._router

    @property
    def proxy(self) -> HttpProxyControl:
        return HttpProxyControl(self.proxy_admin)

    def _internal_address(self, name: str) -> str:
        """host:port of an instance on the stack's network, for HAProxy."""
        checkout = self._checkout(name)
        return f"{_address_on(checkout.container, self.network)}:{CHECKOUT_PORT}"

    def _checkout(self, name: str) -> Checkout:
        if name not in self.checkouts:
            raise FaultError(f"no instance named {name!r} in this stack")
        return self.checkouts[name]

    def launch_checkout(self, name: str, env: Mapping[str, str]) -> Checkout:
        spec = checkout_spec(name, self.dsn, env, data_volume_bytes=self.data_volume_bytes)
        labels = dict(self.labels)
        if self.number_label:
            labels[self.number_label] = str(self.next_number)
            self.next_number += 1
        container = _run(self.client, spec, f"{self.prefix}{name}", labels,
                         self.network, aliases=[name])
        port = _published_port(container, CHECKOUT_PORT)
        checkout = Checkout(name, container, ServiceInstance(name, f"http://127.0.0.1:{port}"))
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
        if _exited(container) is None:
            return None
        return int(container.attrs["State"].get("ExitCode", -1))

    def instance_stderr(self, name: str) -> list[str]:
        if name in self.stopped_stderr:
            return self.stopped_stderr[name]
        return _stderr_lines(self._checkout(name).container)

    def instance_environ(self, name: str) -> dict[str, str] | None:
        """Read from the container's main process (/proc/<pid>/environ), not its config:
        what the service really runs with."""
        container = self._checkout(name).container
        if _exited(container) is not None:
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
            self.stopped_stderr[name] = _stderr_lines(container)
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


def _log_lines(container: Any) -> list[str]:
    try:
        raw: bytes = container.logs(timestamps=True)
    except Exception:
        return []
    return raw.decode(errors="replace").splitlines()


def router_config(request: StackRequest, names: Sequence[str], host_prefix: str) -> str:
    return haproxy.render_config(
        [(n, f"{host_prefix}{n}:{CHECKOUT_PORT}") for n in names], request.router,
        int(request.checkout_env.get("RETRY_AFTER_S", "1")))


class DockerBackend:
    name = "docker"

    def unsupported(self, request: StackRequest) -> str | None:
        return None

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[DockerStackHandle]:
        started = time.monotonic()
        client = engine()
        check_images(client)
        run_id = request.run_id
        run_dir = RunDir.create(run_id)
        labels = {RUN_LABEL: run_id}
        network = f"chaoslab-{run_id}"
        prefix = f"{run_id}-"
        try:
            client.networks.create(network, driver="bridge", labels=labels)
            postgres = _run(client, postgres_spec(), f"{prefix}postgres", labels, network)
            pg_port = _published_port(postgres, 5432)
            api_key = f"sk_lab_{secrets.token_hex(12)}"
            payments = _run(client, payments_spec(api_key), f"{prefix}payments", labels,
                            network)
            proxy = _run(client, proxy_spec(f"{prefix}payments", request.seed),
                         f"{prefix}proxy", labels, network)
            await create_lab_database(pg_port, 60, lambda: _exited(postgres))
            internal_dsn = f"postgresql://{SUPERUSER}@{prefix}postgres:5432/{DATABASE}"
            await self._migrate(client, request, network, internal_dsn)
            proxy_admin = f"http://127.0.0.1:{_published_port(proxy, PROXY_ADMIN_PORT)}"
            pay_url = f"http://127.0.0.1:{_published_port(payments, PAYMENTS_PORT)}"
            handle = DockerStackHandle(
                Stack(backend=self.name, run_id=run_id, entry_url="",
                      db_dsn=f"postgresql://{SUPERUSER}@127.0.0.1:{pg_port}/{DATABASE}",
                      instances=[], work_dir=str(run_dir.path)),
                client, network, labels, prefix,
                checkout_env={**payment_wiring(f"{prefix}proxy", api_key),
                              **request.checkout_env},
                dsn=internal_dsn, data_volume_bytes=request.data_volume_bytes,
                proxy_admin=proxy_admin,
                router_check=haproxy.server_check(request.router),
            )
            names = [f"checkout-{i}" for i in range(1, request.instances + 1)]
            for name in names:
                handle.launch_checkout(name, handle.checkout_env)  # see start_instance
            handle.stack.instances = [c.instance for c in handle.checkouts.values()]
            waits = [(f"{pay_url}/health", payments, "payment gateway"),
                     (f"{proxy_admin}/health", proxy, "fault proxy")]
            waits += [(f"{c.instance.base_url}/livez", c.container, c.name)
                      for c in handle.checkouts.values()]
            for url, container, what in waits:
                await wait_http_ok(url, 30, what, functools.partial(_exited, container))
            cfg = run_dir.path / "haproxy.cfg"
            cfg.write_text(router_config(request, names, prefix))
            handle.router_container = _run(
                client, router_spec(), f"{prefix}router", labels, network,
                volumes={str(cfg): {"bind": HAPROXY_CFG, "mode": "ro"}})
            router_admin = ("http://127.0.0.1:"
                            f"{_published_port(handle.router_container, haproxy.ADMIN_PORT)}")
            await wait_http_ok(f"{router_admin}/health", 30, "router (HAProxy)",
                               functools.partial(_exited, handle.router_container))
            handle.stack.entry_url = ("http://127.0.0.1:"
                                      f"{_published_port(handle.router_container, 8080)}")
            handle.stack.services = [
                ServiceInstance("router", router_admin, "router"),
                ServiceInstance("proxy", proxy_admin, "proxy"),
                ServiceInstance("payments", pay_url, "payments"),
            ]
            if request.data_volume_bytes is not None:
                handle.stack.data_volumes = [handle.attached_volume(n) for n in names]
            handle.stack.started_in_s = time.monotonic() - started
            yield handle
        finally:
            await asyncio.to_thread(remove_run_objects, client, run_id)
            run_dir.remove()

    @staticmethod
    async def _migrate(client: Any, request: StackRequest, network: str, dsn: str) -> None:
        """Schema and seed as a one-off job container, like a migration job in a cluster.
        Created here, not in the waiting thread (see start_instance)."""
        spec = migrate_spec(dsn, request.seed_carts, request.seed_items_per_cart)
        job = _run(client, spec, f"{request.run_id}-migrate", {RUN_LABEL: request.run_id},
                   network)
        try:
            code = (await asyncio.to_thread(job.wait, timeout=120))["StatusCode"]
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
