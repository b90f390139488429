"""The user's own stack as containers: their service and its dependencies run from the
images of their compose file (lab.stack.docker.user_compose), beside the lab's Postgres
(set up from their SQL files), a fault proxy in front of each dependency and the lab's
router, all on the run's network.

Every container of the user's listens on OWN_PORT inside its container, on the address
in its `host_env` (0.0.0.0: reachable on the run's network, published on 127.0.0.1 only);
the variables the user named carry the proxies' and the database's addresses, as on
local processes. The docker backend's `up()` owns the teardown: every container here
carries the run's label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lab.errors import BackendError
from lab.stack.base import OwnProcess, OwnStack, ServiceInstance, Stack, StackRequest
from lab.stack.docker import dataset
from lab.stack.docker.containers import exited, published_port, run_container
from lab.stack.docker.handle import DockerStackHandle
from lab.stack.docker.specs import (
    PROXY_ADMIN_PORT,
    PROXY_PORT,
    ContainerSpec,
    postgres_spec,
    proxy_spec,
)
from lab.stack.docker.user_compose import ComposeService, UserCompose
from lab.stack.own_local import INSTANCE_PREFIX
from lab.stack.pgdata import apply_sql, own_dataset_key, read_sql_files
from lab.stack.postgres import DATABASE, SUPERUSER, create_lab_database
from lab.system.threads import off_loop

#: The port each of the user's containers listens on, inside its container.
OWN_PORT = 8080
#: A wait before the load: (URL that answers 200 once up, its container, what it is, seconds).
Wait = tuple[str, Any, str, float]


def docker_problems(own: OwnStack) -> list[str]:
    """What the docker backend needs of a declaration that local processes do not."""
    problems = []
    if own.compose_file is None:
        problems.append("stack.compose.file: on the docker backend your service runs from "
                        "your compose file: name it (and each service's `compose_service`)")
    if own.service.compose_service is None:
        problems.append("stack.service.compose_service: the service of your compose file "
                        "to run as the service under test")
    if own.service.host_env is None:
        problems.append("stack.service.host_env: the variable your service reads the address "
                        "to listen on from (the lab sets 0.0.0.0 in its container)")
    for dep in own.dependencies:
        where = f"stack.dependencies.{dep.name}"
        if dep.process is None:
            problems.append(f"{where}.url: a dependency reached at a URL on this machine is "
                            "out of the containers' reach; declare its `compose_service`")
        elif dep.process.compose_service is None:
            problems.append(f"{where}.compose_service: the service of your compose file "
                            "that runs it")
        elif dep.process.host_env is None:
            problems.append(f"{where}.host_env: the variable it reads the address to listen "
                            "on from")
    return problems


def container_spec(service: ComposeService, process: OwnProcess,
                   env: Mapping[str, str], role: str) -> ContainerSpec:
    """One container of the user's image with their compose service's command and `env`
    (whole: what a deploy unset stays unset), and its address and port."""
    assert process.host_env is not None
    environment = {**env, process.port_env: str(OWN_PORT), process.host_env: "0.0.0.0"}
    return ContainerSpec(role, service.image, service.command or [], environment,
                         (OWN_PORT,), entrypoint=service.entrypoint,
                         working_dir=service.working_dir, user=service.user)


def _image_exists(client: Any) -> Callable[[str], bool]:
    import docker

    def exists(tag: str) -> bool:
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            return False
        return True
    return exists


async def bring_up(client: Any, request: StackRequest, *, network: str,
                   labels: dict[str, str], prefix: str, work_dir: str,
                   progress: Callable[[str], None] = lambda _m: None,
                   ) -> tuple[DockerStackHandle, list[Wait]]:
    """Start the user's stack (database, dependencies with their proxies, the service's
    instances) on `network`; the handle and what to wait for before the router."""
    own = request.own
    assert own is not None
    problems = docker_problems(own)
    if problems:
        raise BackendError("your stack cannot run on the docker backend as declared:\n"
                           + "\n".join(f"  - {p}" for p in problems))
    assert own.compose_file is not None and own.service.compose_service is not None
    deps = [d for d in own.dependencies if d.process is not None]
    wanted = [own.service.compose_service,
              *(d.process.compose_service for d in deps if d.process and d.process.compose_service)]
    compose = await off_loop(UserCompose, own.compose_file)
    images = await off_loop(compose.services, wanted, _image_exists(client), progress)
    stack = Stack(backend="docker", run_id=request.run_id, entry_url="", db_dsn="", instances=[],
                  work_dir=work_dir, instance_prefix=INSTANCE_PREFIX)
    wiring: dict[str, str] = {}
    waits: list[Wait] = []
    if own.db_url_env is not None:
        texts = read_sql_files(own.sql_files)
        key = own_dataset_key(await off_loop(dataset.server_identity, client),
                              dataset.IMAGE_SERVER_USER, texts)

        async def load_sql(dsn: str) -> None:
            progress(f"setting up your database from {len(texts)} SQL file(s)")
            await apply_sql(dsn, own.sql_files, texts)

        data = await dataset.cached_volume(
            client, key, load_sql, run_id=request.run_id, network=network,
            facts={"sql": list(own.sql_files)}, progress=progress)
        postgres = await off_loop(run_container, client, postgres_spec(), f"{prefix}postgres",
                                  labels, network, volumes=dataset.cache_mount(data))
        pg_port = await off_loop(published_port, postgres, 5432)
        await create_lab_database(pg_port, 60, lambda: exited(postgres))
        stack.db_dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{pg_port}/{DATABASE}"
        wiring[own.db_url_env] = f"postgresql://{SUPERUSER}@{prefix}postgres:5432/{DATABASE}"
    proxy_admin = ""
    for dep in deps:
        process = dep.process
        assert process is not None and process.compose_service is not None
        image = images[process.compose_service]
        spec = container_spec(image, process, {**image.environment, **process.env}, "dependency")
        container = await off_loop(run_container, client, spec, f"{prefix}dep-{dep.name}",
                                   labels, network)
        port = await off_loop(published_port, container, OWN_PORT)
        waits.append((f"http://127.0.0.1:{port}{process.health}", container,
                      f"dependency {dep.name!r} ({process.compose_service})",
                      process.ready_timeout_s))
        proxy = await off_loop(run_container, client,
                               proxy_spec(f"{prefix}dep-{dep.name}", request.seed, OWN_PORT),
                               f"{prefix}proxy-{dep.name}", labels, network)
        admin = f"http://127.0.0.1:{await off_loop(published_port, proxy, PROXY_ADMIN_PORT)}"
        waits.append((f"{admin}/health", proxy, f"the fault proxy for {dep.name!r}", 30.0))
        proxy_admin = proxy_admin or admin  # the first: the one dependency faults act on
        wiring[dep.url_env] = f"http://{prefix}proxy-{dep.name}:{PROXY_PORT}"
        stack.services = [*stack.services, ServiceInstance(f"proxy-{dep.name}", admin, "proxy")]
    service = images[own.service.compose_service]

    def instance_spec(name: str, env: Mapping[str, str]) -> ContainerSpec:
        extra = dict(env)
        if own.instance_env:
            extra[own.instance_env] = name
        return container_spec(service, own.service, extra, "service")

    handle = DockerStackHandle(
        stack, client, network, labels, prefix,
        # The lab's wiring last: a variant cannot route the service around the fault proxy.
        checkout_env={**service.environment, **own.service.env, **request.checkout_env,
                      **wiring},
        proxy_admin=proxy_admin, instance_spec=instance_spec, instance_port=OWN_PORT,
        instance_health=own.service.health)
    for n in range(1, request.instances + 1):
        await off_loop(handle.launch_checkout, f"{INSTANCE_PREFIX}-{n}", handle.checkout_env)
    stack.instances = [c.instance for c in handle.checkouts.values()]
    waits += [(f"{c.instance.base_url}{own.service.health}", c.container,
               f"your service ({c.name}, {own.service.compose_service})",
               own.service.ready_timeout_s) for c in handle.checkouts.values()]
    return handle, waits
