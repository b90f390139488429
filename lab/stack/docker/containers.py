"""One container through the Docker SDK: start it on the run's network, and read back
its published ports, its address, why it exited and its logs. Blocking calls: async code
runs them in a thread (see lab.stack.docker.backend)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from lab.errors import BackendError
from lab.stack.docker.specs import ContainerSpec


def run_container(client: Any, spec: ContainerSpec, name: str, labels: Mapping[str, str],
                  network: str, *, aliases: Sequence[str] = (), **extra: Any) -> Any:
    """Create and start a container of `spec` on `network`, reachable there as `name`
    (and `aliases`); its ports published on 127.0.0.1 at ports the engine picks."""
    container = client.containers.create(
        spec.image, spec.command, name=name, labels=dict(labels),
        environment=spec.environment, tmpfs=spec.tmpfs or None,
        ports={f"{p}/tcp": ("127.0.0.1", None) for p in spec.ports},
        **{k: v for k, v in (("entrypoint", spec.entrypoint), ("working_dir", spec.working_dir),
                             ("user", spec.user)) if v is not None},
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


def published_port(container: Any, port: int) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", ""):
            return int(binding["HostPort"])
    raise BackendError(f"{container.name}: port {port} is not published")


def address_on(container: Any, network: str) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    address = (networks.get(network) or {}).get("IPAddress")
    if not address:
        raise BackendError(f"{container.name} has no address on {network}")
    return str(address)


def exited(container: Any) -> str | None:
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


def stderr_lines(container: Any) -> list[str]:
    try:
        raw: bytes = container.logs(stdout=False, stderr=True)
    except Exception:
        return []
    return raw.decode(errors="replace").splitlines()


def log_lines(container: Any) -> list[str]:
    try:
        raw: bytes = container.logs(timestamps=True)
    except Exception:
        return []
    return raw.decode(errors="replace").splitlines()
