"""The user's compose file, as the docker backend uses it: read and built by the machine's
own Compose (the v2 plugin, else v1.29's `docker-compose`), never written, never `up`.

The lab runs the services a scenario names from it (their image, command, entrypoint,
working directory, user and environment, as Compose resolves them) on a network of its
own, beside its own Postgres, fault proxies and router; the rest of the user's project
(its networks, volumes, ports, other services) is not started. What Compose resolves is
what the user's own `docker compose up` would run, interpolation and `.env` included.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.errors import BackendError, CommandFailed
from lab.system import commands

#: How long a build may take (a cold build downloads and installs the user's packages).
BUILD_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ComposeService:
    """One service of the user's compose project, as Compose resolved it."""

    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None


def compose_command() -> list[str]:
    """The machine's Compose: the v2 plugin if the engine's CLI has it, else v1.29."""
    if shutil.which("docker"):
        try:
            commands.run(["docker", "compose", "version"], timeout=20)
            return ["docker", "compose"]
        except CommandFailed:
            pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise BackendError("stack.compose: no Compose on this machine (neither `docker compose` "
                       "nor `docker-compose`); install one, or run on local processes")


def _argv(value: Any) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(a) for a in value]


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, list):  # ["KEY=value", "KEY"]
        pairs = [item.split("=", 1) for item in value if "=" in item]
        return {k: v for k, v in pairs}
    return {str(k): str(v) for k, v in (value or {}).items() if v is not None}


def default_project(file: Path) -> str:
    """Compose's default project name: the file's folder, lower-cased, [a-z0-9_-] kept."""
    return re.sub(r"[^a-z0-9_-]", "", file.resolve().parent.name.lower()) or "default"


class UserCompose:
    """The user's compose file and the Compose that reads it."""

    def __init__(self, file: str | Path) -> None:
        self.file = Path(file)
        if not self.file.is_file():
            raise BackendError(f"stack.compose.file: no file {self.file}")
        self.cli = compose_command()

    def _base(self) -> list[str]:
        return [*self.cli, "-f", str(self.file), "--project-directory", str(self.file.parent)]

    def config(self) -> dict[str, Any]:
        """The project as Compose resolves it (`config`); a file it refuses is an error
        naming the file, with Compose's own words."""
        try:
            out = commands.run([*self._base(), "config"], what="compose config",
                               timeout=60, cwd=self.file.parent).stdout
        except CommandFailed as exc:
            raise BackendError(f"stack.compose.file: {self.file} is not a compose file this "
                               f"machine's Compose ({' '.join(self.cli)}) accepts:\n"
                               f"{exc.stderr.strip()}") from None
        doc = yaml.safe_load(out) or {}
        if not isinstance(doc.get("services"), dict):
            raise BackendError(f"stack.compose.file: {self.file} declares no services")
        return dict(doc)

    def services(self, names: Sequence[str], image_exists: Callable[[str], bool],
                 progress: Callable[[str], None] = lambda _m: None) -> dict[str, ComposeService]:
        """The named services, with their images built by Compose where they have a
        `build:` (its layer cache makes a rebuild of unchanged sources take seconds)."""
        doc = self.config()
        declared = doc["services"]
        missing = [n for n in names if n not in declared]
        if missing:
            raise BackendError(f"stack.compose.file: {self.file} has no service "
                               f"{', '.join(map(repr, missing))} (it has: "
                               f"{', '.join(sorted(declared))})")
        to_build = sorted({n for n in names if declared[n].get("build")})
        if to_build:
            progress(f"building {', '.join(to_build)} with {' '.join(self.cli)}")
            try:
                commands.run([*self._base(), "build", *to_build], what="compose build",
                             timeout=BUILD_TIMEOUT_S, cwd=self.file.parent)
            except CommandFailed as exc:
                raise BackendError(f"stack.compose: building {', '.join(to_build)} from "
                                   f"{self.file} failed:\n{exc.stderr.strip()}") from None
        project = str(doc.get("name") or default_project(self.file))
        found = {}
        for name in names:
            spec = declared[name]
            image = self._image(name, spec, project, image_exists)
            found[name] = ComposeService(
                name, image, command=_argv(spec.get("command")),
                entrypoint=_argv(spec.get("entrypoint")),
                environment=_environment(spec.get("environment")),
                working_dir=spec.get("working_dir"), user=spec.get("user"))
        return found

    def _image(self, name: str, spec: dict[str, Any], project: str,
               image_exists: Callable[[str], bool]) -> str:
        """The image Compose runs the service from: its `image:`, else the name Compose
        gave its build (`project_service` in v1, `project-service` in v2)."""
        candidates = ([str(spec["image"])] if spec.get("image")
                      else [f"{project}_{name}", f"{project}-{name}"])
        for image in candidates:
            if image_exists(image):
                return image
        raise BackendError(f"stack.compose: no image for service {name!r} of {self.file} "
                           f"(looked for {', '.join(candidates)}); give it a `build:` or "
                           "build or pull its image first")
