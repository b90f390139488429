"""Seeded data sets on the docker backend, built once into a volume and copied into each
run's Postgres container: the docker counterpart of lab.stack.pgdata.

Seeding a variant's database from nothing costs the sample shop's seed (2-3 s on 2 cores)
or the user's SQL (8-9 s for the example's 800 000 orders), in every variant. The result
depends only on the Postgres image and what was loaded, so it is built once: a server
container runs on a named volume (`chaoslab-pgdata-<key>`), the lab loads it from here,
and the server is stopped cleanly, which saves its statistics with it. Each run's server
then gets that volume mounted read-only at /var/lib/chaoslab-cache and its entrypoint
starts on a copy (`cp -a`, in the container's own layer): whatever the run does to its
database touches only its copy.

Docker volumes cannot be renamed, so "complete" is said on the host: a marker file
`<cache root>/docker-pgdata-<key>.json` naming the volume and the time the engine
created it, written only after the build's server exited 0. A volume without a matching
marker (a killed build's, or one recreated by hand) is never used: it is rebuilt. A lock
file beside the markers keeps two runs from building a volume at once. `lab
cleanup` removes the volumes of builds whose run is gone; `lab cleanup --cache` all of
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from lab.errors import BackendError
from lab.stack.docker.containers import exited, published_port, run_container
from lab.stack.docker.specs import RUN_LABEL, postgres_spec
from lab.stack.images import IMAGES
from lab.stack.pgdata import BUILD_SETTINGS
from lab.stack.postgres import DATABASE, SERVER_SETTINGS, SUPERUSER, create_lab_database
from lab.system.run_dirs import cache_root, run_is_active
from lab.system.threads import off_loop

#: Every cache volume carries it (the value: what the data set is, "pgdata").
CACHE_LABEL = "org.chaoslab.cache"
#: The run that built (or is building) a volume: a killed build's is found by it.
BUILT_BY_LABEL = "org.chaoslab.built-by-run"
VOLUME_PREFIX = "chaoslab-pgdata-"
#: Where a run's server finds the data set (read-only); pg-entrypoint.sh copies it.
CACHE_MOUNT = "/var/lib/chaoslab-cache"
#: Where the build's server keeps its data directory (`data/` in the volume).
BUILD_MOUNT = "/var/lib/chaoslab"
#: A clean, fast shutdown of the build's server (the image's paths: pg-entrypoint.sh).
PG_CTL_STOP = ["/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-D", f"{BUILD_MOUNT}/data",
               "-m", "fast", "-W"]
#: The user the image's server runs as: what owns the files in the volume.
IMAGE_SERVER_USER = "postgres (in the image)"

Fill = Callable[[str], Awaitable[None]]


def volume_name(key: str) -> str:
    return f"{VOLUME_PREFIX}{key}"


def marker_path(key: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"docker-pgdata-{key}.json"


def server_identity(client: Any) -> str:
    """The Postgres image a data set is built with and copied into: its layers and how it
    starts, not its id, which changes with the source-hash label on every change to the
    lab's code (lab.stack.images) although the server did not."""
    attrs = client.images.get(IMAGES["postgres"]).attrs
    config = attrs.get("Config") or {}
    what = {"layers": (attrs.get("RootFS") or {}).get("Layers"),
            "entrypoint": config.get("Entrypoint"), "cmd": config.get("Cmd"),
            "env": config.get("Env")}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    return f"docker image {IMAGES['postgres']} layers {digest}"


def _volume(client: Any, name: str) -> Any | None:
    import docker

    try:
        return client.volumes.get(name)
    except docker.errors.NotFound:
        return None


def complete(client: Any, key: str, root: Path | None = None) -> bool:
    """The volume for `key` exists and is the one whose build finished (its marker names
    it with the engine's creation time)."""
    volume = _volume(client, volume_name(key))
    if volume is None:
        return False
    try:
        doc = json.loads(marker_path(key, root).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("created") == volume.attrs.get("CreatedAt")


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "docker-pgdata.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the build is done or fails
        yield


async def cached_volume(client: Any, key: str, fill: Fill, *, run_id: str, network: str,
                        facts: dict[str, Any], progress: Callable[[str], None],
                        root: Path | None = None) -> str:
    """The name of a complete data set volume for `key`: the cached one, or built first
    by `fill(dsn)` on a fresh server (the database `shop` exists; `dsn` reaches it from
    here). A failed or interrupted build leaves no volume that is used."""
    root = root or cache_root()
    name = volume_name(key)
    if await off_loop(complete, client, key, root):
        return name
    lock = _build_lock(root)
    await asyncio.to_thread(lock.__enter__)
    try:
        if await off_loop(complete, client, key, root):
            return name  # another run built it while this one waited
        progress("building the data set once into a Docker volume (cached for the next runs)")
        started = time.monotonic()
        volume = await off_loop(_fresh_volume, client, name, run_id)
        try:
            await _build(client, name, fill, run_id, network)
        except BaseException:
            with contextlib.suppress(Exception):
                await off_loop(volume.remove, force=True)
            raise
        await off_loop(volume.reload)
        doc = {"volume": name, "created": volume.attrs.get("CreatedAt"), "key": key, **facts,
               "built_at": time.time(), "build_s": round(time.monotonic() - started, 3)}
        marker = marker_path(key, root)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(marker)
        return name
    finally:
        lock.__exit__(None, None, None)


def _fresh_volume(client: Any, name: str, run_id: str) -> Any:
    """A new, empty volume `name`; a stale one of that name (no marker) goes first."""
    stale = _volume(client, name)
    if stale is not None:
        try:
            stale.remove(force=True)
        except Exception as exc:
            raise BackendError(f"cannot replace the unfinished data set volume {name}: {exc}; "
                               "is a container still using it?") from exc
    return client.volumes.create(name, labels={CACHE_LABEL: "pgdata", BUILT_BY_LABEL: run_id})


async def _build(client: Any, name: str, fill: Fill, run_id: str, network: str) -> None:
    """A server container on the volume, filled from here, then stopped cleanly."""
    spec = postgres_spec({**SERVER_SETTINGS, **BUILD_SETTINGS})
    server = await off_loop(run_container, client, spec, f"{run_id}-pgdata-build",
                            {RUN_LABEL: run_id}, network,
                            volumes={name: {"bind": BUILD_MOUNT, "mode": "rw"}})
    try:
        port = await off_loop(published_port, server, 5432)
        await create_lab_database(port, 60, lambda: exited(server))
        await fill(f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}")
        # pg_ctl's fast shutdown, not `docker stop`: SIGTERM ends `runuser` with 143
        # however cleanly the server stopped. pg_ctl only signals (-W: the container ends
        # with the server, which would cut a waiting exec off); the server exits 0 only
        # after a clean shutdown, and runuser (the container) with it.
        stop = await off_loop(server.exec_run, PG_CTL_STOP, user="postgres")
        code = (await asyncio.to_thread(server.wait, timeout=60))["StatusCode"]
        if stop.exit_code != 0 or code != 0:
            tail = (await off_loop(server.logs, tail=20)).decode(errors="replace")
            raise BackendError(f"the server that built the data set did not stop cleanly "
                               f"(pg_ctl {stop.exit_code}, exit {code}); not caching it:\n"
                               f"{tail}")
    finally:
        with contextlib.suppress(Exception):
            await off_loop(server.remove, force=True)


def cache_mount(name: str) -> dict[str, dict[str, str]]:
    """The `volumes=` of a run's Postgres container that starts on a copy of `name`."""
    return {name: {"bind": CACHE_MOUNT, "mode": "ro"}}


def cache_volumes(client: Any) -> list[Any]:
    return list(client.volumes.list(filters={"label": CACHE_LABEL}))


def unfinished_volumes(client: Any, root: Path | None = None) -> list[Any]:
    """Cache volumes of builds that did not finish and whose run is gone."""
    found = []
    for volume in cache_volumes(client):
        labels = volume.attrs.get("Labels") or {}
        key = volume.name.removeprefix(VOLUME_PREFIX)
        builder = labels.get(BUILT_BY_LABEL, "")
        if not complete(client, key, root) and not (builder and run_is_active(builder)):
            found.append(volume)
    return found


def remove_volume(volume: Any, root: Path | None = None) -> None:
    """A cache volume and its marker; BackendError if the engine keeps it (a running
    container, a run's Postgres, still has it mounted)."""
    import docker

    try:
        volume.remove(force=True)
    except docker.errors.APIError as exc:
        raise BackendError(str(exc.explanation or exc)) from exc
    marker_path(volume.name.removeprefix(VOLUME_PREFIX), root).unlink(missing_ok=True)
