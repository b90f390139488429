"""What every container of the stack runs: image, command, environment, ports, tmpfs.

Pure data, no engine: the docker backend starts these, and lab.stack.compose renders
the compose/ files from the same specs, so what an instructor starts by hand is what the
lab runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lab.stack import haproxy
from lab.stack.base import StackRequest
from lab.stack.images import IMAGES
from lab.stack.postgres import SERVER_SETTINGS

#: The label every object of a run carries: how `lab cleanup` finds a killed run's.
RUN_LABEL = "org.chaoslab.run-id"
CHECKOUT_PORT = 8080
PAYMENTS_PORT = 8090
PROXY_PORT = 8091
PROXY_ADMIN_PORT = 8092
#: Where each checkout instance's size-limited data volume (a tmpfs) is mounted.
DATA_MOUNT = "/data"
#: The config file the router container reads (bind-mounted, read-only).
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
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
    #: A user's image may override these (their compose service's); None: the image's.
    entrypoint: list[str] | None = None
    working_dir: str | None = None
    user: str | None = None


def postgres_spec(settings: Mapping[str, str] = SERVER_SETTINGS) -> ContainerSpec:
    command = [a for k, v in settings.items() for a in ("-c", f"{k}={v}")]
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


def proxy_spec(payments_host: str, seed: int, upstream_port: int = PAYMENTS_PORT) -> ContainerSpec:
    """The fault proxy between the checkout and the gateway (or a user's service and one
    of its dependencies); only its admin port is published (the lab sets toxics there)."""
    return ContainerSpec(
        "proxy", IMAGES["lab"], ["python", "-m", "lab.services.proxy"],
        {"PROXY_HOST": "0.0.0.0", "PROXY_LISTEN_PORT": str(PROXY_PORT),
         "PROXY_ADMIN_PORT": str(PROXY_ADMIN_PORT),
         "PROXY_UPSTREAM": f"{payments_host}:{upstream_port}", "PROXY_SEED": str(seed)},
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
    rendered by lab.stack.haproxy and mounted at HAPROXY_CFG."""
    return ContainerSpec("router", IMAGES["haproxy"],
                         ["haproxy", "-W", "-db", "-f", HAPROXY_CFG], {},
                         (haproxy.TRAFFIC_PORT, haproxy.ADMIN_PORT, haproxy.RUNTIME_PORT))


def router_config(request: StackRequest, names: Sequence[str], host_prefix: str,
                  port: int = CHECKOUT_PORT) -> str:
    return haproxy.render_config(
        [(n, f"{host_prefix}{n}:{port}") for n in names], request.router,
        int(request.checkout_env.get("RETRY_AFTER_S", "1")))
