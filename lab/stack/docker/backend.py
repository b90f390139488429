"""`DockerBackend`: brings one variant's stack up as containers on a private network made
for the run, and always takes it down again (by the run's label, see cleanup.py).

The Docker SDK blocks, so every SDK call of `up()` runs in a thread (`off_loop`, from
lab.system.threads); a cancellation (Ctrl-C, SIGTERM) waits for the call in flight before it
propagates, so nothing the call creates can outlive the teardown that looks for the
run's objects.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lab.services.checkout import schema
from lab.stack import haproxy
from lab.stack.base import ServiceInstance, Stack, StackRequest, wait_http_ok
from lab.stack.docker import dataset
from lab.stack.docker import own as own_docker
from lab.stack.docker.cleanup import remove_run_objects
from lab.stack.docker.containers import exited, published_port, run_container
from lab.stack.docker.handle import DockerStackHandle
from lab.stack.docker.sdk import engine
from lab.stack.docker.specs import (
    HAPROXY_CFG,
    PAYMENTS_PORT,
    PROXY_ADMIN_PORT,
    RUN_LABEL,
    payment_wiring,
    payments_spec,
    postgres_spec,
    proxy_spec,
    router_config,
    router_spec,
)
from lab.stack.images import check_images
from lab.stack.pgdata import dataset_key
from lab.stack.postgres import DATABASE, SUPERUSER, create_lab_database
from lab.system.run_dirs import RunDir
from lab.system.threads import off_loop


class DockerBackend:
    name = "docker"

    def unsupported(self, request: StackRequest) -> str | None:
        return None

    @asynccontextmanager
    async def up(self, request: StackRequest) -> AsyncIterator[DockerStackHandle]:
        started = time.monotonic()
        client = await off_loop(engine)
        await off_loop(check_images, client)
        run_id = request.run_id
        run_dir = RunDir.create(run_id)
        labels = {RUN_LABEL: run_id}
        network = f"chaoslab-{run_id}"
        prefix = f"{run_id}-"
        try:
            await off_loop(client.networks.create, network, driver="bridge", labels=labels)
            if request.own is not None:
                handle, waits = await own_docker.bring_up(
                    client, request, network=network, labels=labels, prefix=prefix,
                    work_dir=str(run_dir.path))
            else:
                handle, waits = await self._sample(client, request, network, labels, prefix,
                                                   str(run_dir.path))
            for url, container, what, timeout in waits:
                await wait_http_ok(url, timeout, what, functools.partial(exited, container))
            names = list(handle.checkouts)
            cfg = run_dir.path / "haproxy.cfg"
            cfg.write_text(router_config(request, names, prefix, handle.instance_port))
            handle.router_check = haproxy.server_check(request.router)
            router = handle.router_container = await off_loop(
                run_container, client, router_spec(), f"{prefix}router", labels, network,
                volumes={str(cfg): {"bind": HAPROXY_CFG, "mode": "ro"}})
            router_admin = ("http://127.0.0.1:"
                            f"{await off_loop(published_port, router, haproxy.ADMIN_PORT)}")
            await wait_http_ok(f"{router_admin}/health", 30, "router (HAProxy)",
                               functools.partial(exited, router))
            handle.stack.entry_url = ("http://127.0.0.1:"
                                      f"{await off_loop(published_port, router, 8080)}")
            handle.stack.services = [ServiceInstance("router", router_admin, "router"),
                                     *handle.stack.services]
            if request.data_volume_bytes is not None:
                handle.stack.data_volumes = [await off_loop(handle.attached_volume, n)
                                             for n in names]
            handle.stack.started_in_s = time.monotonic() - started
            yield handle
        finally:
            await asyncio.to_thread(remove_run_objects, client, run_id)
            run_dir.remove()

    async def _sample(self, client: Any, request: StackRequest, network: str,
                      labels: dict[str, str], prefix: str,
                      work_dir: str) -> tuple[DockerStackHandle, list[own_docker.Wait]]:
        """The sample shop's parts: Postgres with its seeded data, the payment gateway
        behind the fault proxy, the checkout instances; what to wait for."""
        carts, items = request.seed_carts, request.seed_items_per_cart
        key = dataset_key(await off_loop(dataset.server_identity, client),
                          dataset.IMAGE_SERVER_USER, carts, items)

        async def seed(dsn: str) -> None:
            await schema.migrate(dsn, carts, items)

        data = await dataset.cached_volume(
            client, key, seed, run_id=request.run_id, network=network,
            facts={"carts": carts, "items_per_cart": items}, progress=lambda _m: None)
        postgres = await off_loop(run_container, client, postgres_spec(),
                                  f"{prefix}postgres", labels, network,
                                  volumes=dataset.cache_mount(data))
        pg_port = await off_loop(published_port, postgres, 5432)
        api_key = f"sk_lab_{secrets.token_hex(12)}"
        payments = await off_loop(run_container, client, payments_spec(api_key),
                                  f"{prefix}payments", labels, network)
        proxy = await off_loop(run_container, client,
                               proxy_spec(f"{prefix}payments", request.seed),
                               f"{prefix}proxy", labels, network)
        await create_lab_database(pg_port, 60, lambda: exited(postgres))
        internal_dsn = f"postgresql://{SUPERUSER}@{prefix}postgres:5432/{DATABASE}"
        proxy_port = await off_loop(published_port, proxy, PROXY_ADMIN_PORT)
        proxy_admin = f"http://127.0.0.1:{proxy_port}"
        pay_url = f"http://127.0.0.1:{await off_loop(published_port, payments, PAYMENTS_PORT)}"
        handle = DockerStackHandle(
            Stack(backend=self.name, run_id=request.run_id, entry_url="",
                  db_dsn=f"postgresql://{SUPERUSER}@127.0.0.1:{pg_port}/{DATABASE}",
                  instances=[], work_dir=work_dir,
                  services=[ServiceInstance("proxy", proxy_admin, "proxy"),
                            ServiceInstance("payments", pay_url, "payments")]),
            client, network, labels, prefix,
            checkout_env={**payment_wiring(f"{prefix}proxy", api_key),
                          **request.checkout_env},
            dsn=internal_dsn, data_volume_bytes=request.data_volume_bytes,
            proxy_admin=proxy_admin,
        )
        for i in range(1, request.instances + 1):
            await off_loop(handle.launch_checkout, f"checkout-{i}", handle.checkout_env)
        handle.stack.instances = [c.instance for c in handle.checkouts.values()]
        waits: list[own_docker.Wait] = [
            (f"{pay_url}/health", payments, "payment gateway", 30.0),
            (f"{proxy_admin}/health", proxy, "fault proxy", 30.0)]
        waits += [(f"{c.instance.base_url}/livez", c.container, c.name, 30.0)
                  for c in handle.checkouts.values()]
        return handle, waits
