"""The Docker images the docker backend runs, built offline from a local Debian base.

No registry is assumed: the base is `debian:bookworm-slim` made locally (`make
base-image`: debootstrap + `docker import`), Python packages are downloaded as wheels on
the host and installed in the build without an index. Each image carries the hash of the
sources it was built from, so a run never uses images older than the code.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import BackendError
from lab.system import commands
from lab.system.processes import REPO_ROOT

BASE_IMAGE = "debian:bookworm-slim"
IMAGES = {
    "lab": "chaoslab/lab:dev",
    "postgres": "chaoslab/postgres:dev",
    "haproxy": "chaoslab/haproxy:dev",
}
HASH_LABEL = "org.chaoslab.source-hash"
IMAGE_DIR = REPO_ROOT / "compose" / "images"
WHEEL_CACHE = Path.home() / ".cache" / "chaoslab" / "wheels"


def source_hash() -> str:
    """Hash of everything that goes into the images: sources, packaging, Dockerfile."""
    digest = hashlib.sha256()
    files = sorted([REPO_ROOT / "pyproject.toml", *IMAGE_DIR.glob("*"),
                    *(REPO_ROOT / "lab").rglob("*.py")])
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def check_images(client: Any) -> None:
    """Every image exists and was built from the current sources."""
    import docker

    want = source_hash()
    for role, tag in IMAGES.items():
        try:
            image = client.images.get(tag)
        except docker.errors.ImageNotFound:
            raise BackendError(f"image {tag} ({role}) is missing: run `make images`") from None
        got = (image.labels or {}).get(HASH_LABEL)
        if got != want:
            raise BackendError(
                f"image {tag} was built from other sources ({got}, now {want}): "
                "run `make images`"
            )


def _dependencies() -> list[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def _wheels(context: Path, progress: Callable[[str], None]) -> None:
    """Dependency wheels (cached by the dependency list) and the lab's own wheel."""
    deps = _dependencies()
    key = hashlib.sha256("\n".join(sorted(deps)).encode()).hexdigest()[:16]
    cache = WHEEL_CACHE / key
    if not cache.exists():
        progress(f"downloading {len(deps)} dependencies as wheels (cached in {cache})")
        tmp = cache.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        _pip(["wheel", "-q", "--wheel-dir", str(tmp), *deps])
        tmp.rename(cache)
    shutil.copytree(cache, context / "wheels" / "deps")
    progress("building the lab's wheel")
    _pip(["wheel", "-q", "--no-deps", "--wheel-dir", str(context / "wheels" / "lab"),
          str(REPO_ROOT)])


def _pip(args: list[str]) -> None:
    commands.run([sys.executable, "-m", "pip", *args], what=f"pip {args[0]}")


def build_images(client: Any, progress: Callable[[str], None]) -> dict[str, float]:
    """Build every image; returns seconds per image (plus the wheel step)."""
    import docker

    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        raise BackendError(
            f"no {BASE_IMAGE} image: run `make base-image` (debootstrap + docker import; root)"
        ) from None
    timings: dict[str, float] = {}
    digest = source_hash()
    with tempfile.TemporaryDirectory(prefix="chaoslab-build-") as tmp:
        context = Path(tmp)
        for item in IMAGE_DIR.iterdir():
            shutil.copy(item, context / item.name)
        began = time.monotonic()
        _wheels(context, progress)
        timings["wheels"] = round(time.monotonic() - began, 1)
        for role, tag in IMAGES.items():
            progress(f"building {tag}")
            began = time.monotonic()
            try:
                client.images.build(path=str(context), target=role, tag=tag, rm=True,
                                    buildargs={"SOURCE_HASH": digest})
            except docker.errors.BuildError as exc:
                log = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log)
                raise BackendError(f"building {tag} failed: {exc}\n{log[-2000:]}") from None
            timings[role] = round(time.monotonic() - began, 1)
    return timings
