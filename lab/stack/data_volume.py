"""A small, size-limited filesystem for one service process: a tmpfs mounted in a private
mount namespace, so a full disk is the kernel's ENOSPC and not a Python simulation.

The service is started as `unshare --mount … sh -c 'mount -t tmpfs … && exec python …'`:
`unshare` and `sh` exec, so the service keeps the pid (and the process group) the lab
started, and stopping it as usual ends the namespace — the kernel then unmounts the
tmpfs and frees it. Nothing is mounted in the lab's own namespace, so no run can leave a
mount behind on the host, even after a `kill -9`.

The lab reaches the filesystem from outside through `/proc/<pid>/root/<mount point>`,
which resolves inside the service's mount namespace. As root, `unshare --mount` is
enough; otherwise an unprivileged user namespace (`--user --map-root-user`) is tried.
Where neither works, `unsupported_reason()` says why and callers skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from lab.errors import BackendError, CommandFailed
from lab.system import commands

#: Every lab tmpfs is mounted with a source name starting so: any /proc/*/mountinfo shows it.
SOURCE_PREFIX = "chaoslab-"
PROBE_SIZE = 1 << 20
_MOUNT_SCRIPT = 'mount -t tmpfs -o "size=$1,mode=0755" "$2" "$3" && shift 3 && exec "$@"'


def unshare_flags() -> list[str]:
    """Root gets a private mount namespace; anyone else needs a user namespace for it."""
    if os.geteuid() == 0:
        return ["--mount", "--propagation", "private"]
    return ["--user", "--map-root-user", "--mount"]


def wrap_argv(argv: Sequence[str], mount_point: str, size_bytes: int, source: str) -> list[str]:
    """`argv`, run in a private mount namespace with a tmpfs of `size_bytes` at
    `mount_point` (an existing directory). `source` names the mount in mountinfo."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, *unshare_flags(), "--", "sh", "-c", _MOUNT_SCRIPT, "sh",
            str(size_bytes), source, mount_point, *argv]


@functools.cache
def unsupported_reason() -> str | None:
    """None when this machine lets the lab give a process a private tmpfs; else why not."""
    for tool in ("unshare", "mount", "sh"):
        if shutil.which(tool) is None:
            return f"no size-limited filesystem: `{tool}` is not installed"
    with tempfile.TemporaryDirectory(prefix="chaoslab-probe-") as directory:
        argv = wrap_argv(["true"], directory, PROBE_SIZE, f"{SOURCE_PREFIX}probe")
        try:
            commands.run(argv, what="unshare", timeout=10)
        except CommandFailed as failed:
            if failed.returncode is None:
                return f"no size-limited filesystem: cannot run unshare ({failed.reason})"
            how = " ".join(unshare_flags())
            stderr = failed.stderr.strip()
            detail = stderr.splitlines()[-1] if stderr else "failed"
            return (
                f"no size-limited filesystem: `unshare {how}` + `mount -t tmpfs` is not "
                f"allowed here ({detail}); it needs root or unprivileged user namespaces"
            )
    return None


def host_path(pid: int, mount_point: str) -> Path:
    """Where the lab, outside the namespace, sees the process's mount point."""
    return Path(f"/proc/{pid}/root") / mount_point.lstrip("/")


def mountinfo_entry(pid: int, mount_point: str) -> dict[str, str] | None:
    """The process's mount at `mount_point` (fstype, source, options), or None."""
    try:
        lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and fields[4] == mount_point:
            found = {"fstype": tail[0], "source": tail[1], "options": tail[2]}
    return found  # the last one wins: it is the mount on top


def tagged_mounts(source: str) -> Iterator[tuple[int, str]]:
    """(pid, mount point) of every process on this machine that sees a mount named
    `source`: how tests and cleanup prove a run's tmpfs is gone everywhere."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            lines = (entry / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            left, _, right = line.partition(" - ")
            tail = right.split()
            if len(tail) >= 2 and tail[1] == source:
                yield int(entry.name), left.split()[4]


def check_size(path: str, size: int, instance: str) -> None:
    """The filesystem at `path` holds `size` bytes (tmpfs rounds up to whole pages)."""
    st = os.statvfs(path)
    page = os.sysconf("SC_PAGE_SIZE")
    if st.f_blocks * st.f_frsize != -(-size // page) * page:
        raise BackendError(
            f"{instance}: its data volume holds {st.f_blocks * st.f_frsize} bytes, not {size}"
        )
