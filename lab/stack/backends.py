"""The backends by the name a user gives (`--backend`, `--lab-backend`): imported only
when chosen, so the local path never needs the Docker SDK."""

from __future__ import annotations

from lab.stack.base import Backend

#: What `--backend` accepts; the first is the default.
NAMES = ("local", "docker")


def backend_named(name: str) -> Backend:
    if name == "docker":
        from lab.stack.docker import DockerBackend

        return DockerBackend()
    from lab.stack.local import LocalBackend

    return LocalBackend()
