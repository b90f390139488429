"""The Docker engine the docker backend, `lab images`, `lab cleanup` and the workshop
commands talk to."""

from __future__ import annotations

from typing import Any

from lab.errors import BackendError


def engine() -> Any:
    """A client for the local engine, or a BackendError saying how to get one."""
    import docker  # the SDK; imported late so the local backend never needs an engine

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        raise BackendError(
            "no Docker engine answers (is dockerd running? `make docker-engine` installs "
            f"and starts one as root): {exc}"
        ) from None
    return client
