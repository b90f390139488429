"""A ballast file fills the checkout's data volume, as a runaway backup or a core dump
would; reverting deletes it.

The ballast is written through `/proc/<pid>/root/…` into the instance's own size-limited
filesystem (see lab.stack.data_volume) until the kernel answers ENOSPC, or — with
`leave_free` — until only that much is left, which models a volume that was already
nearly full and lets the service's own writes finish the job (the log-rotation story).

Evidence is `statvfs` of the volume: at injection, each second while active, just before
the ballast is deleted and just after, so the results show the volume 100 % used during
the window and the space back after it. The ballast lives only inside the volume, and the
volume dies with the service's mount namespace, so even a killed run leaves none.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import FaultError
from lab.faults.base import Fault, FaultParams
from lab.scenario.units import ByteSize
from lab.stack.base import DataVolume

CHUNK = 1 << 20


class DiskFillParams(FaultParams):
    #: Bytes left free once the ballast is written; 0 fills the volume completely.
    leave_free: ByteSize = 0


def _statvfs(path: str) -> tuple[int, int]:
    """(size, free) in bytes; free is what a writer may still use (f_bavail)."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


@dataclass(frozen=True)
class Ballast:
    written: int
    target: int | None  # None: fill until ENOSPC
    hit_enospc: bool
    free_after: int  # statvfs right after the last write

    @property
    def filled(self) -> bool:
        """The volume was left with `leave_free` (or nothing) when the ballast was done; the
        service may free some later (a log rotation deletes its oldest file)."""
        return self.hit_enospc or (self.target is not None and self.written >= self.target)


def write_ballast(path: Path, volume_root: str, leave_free: int) -> Ballast:
    """Write zeros to `path` until the volume has `leave_free` bytes left (or none: then
    until the kernel refuses with ENOSPC)."""
    _, free = _statvfs(volume_root)
    target = max(0, free - leave_free) if leave_free else None
    buf = bytes(CHUNK)
    written = 0
    hit_enospc = False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while target is None or written < target:
            size = CHUNK if target is None else min(CHUNK, target - written)
            try:
                written += os.write(fd, buf[:size])
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    hit_enospc = True  # full: the service's own writes may have got there
                    break
                raise
    finally:
        os.close(fd)
    return Ballast(written, target, hit_enospc, _statvfs(volume_root)[1])


class DiskFill(Fault):
    kind = "disk-fill"
    Params = DiskFillParams
    description = "a ballast file fills the data volume; every write to it fails with ENOSPC"
    needs_data_volume = True

    params: DiskFillParams

    def _ballast(self, volume: DataVolume) -> Path:
        return Path(volume.host_path) / f"chaoslab-ballast-{self.stack.run_id}.bin"

    def _volumes(self) -> list[DataVolume]:
        if not self.stack.data_volumes:
            raise FaultError(
                "disk-fill: the stack has no data volume to fill (set stack.data_volume)"
            )
        return list(self.stack.data_volumes)

    def _record(self, volume: DataVolume, phase: str, **extra: Any) -> dict[str, Any]:
        size, free = _statvfs(volume.host_path)
        observation = {
            "t": round(time.time(), 3), "phase": phase, "instance": volume.instance,
            "size_bytes": size, "free_bytes": free,
            "used_pct": round(100 * (1 - free / size), 2) if size else None, **extra,
        }
        self.evidence.observations.append(observation)
        return observation

    async def inject(self) -> None:
        self._ballasts: dict[str, Ballast] = {}
        for volume in self._volumes():
            try:
                ballast = await asyncio.to_thread(
                    write_ballast, self._ballast(volume), volume.host_path,
                    self.params.leave_free,
                )
            except OSError as exc:
                raise FaultError(f"disk-fill: cannot write the ballast: {exc}") from exc
            self._ballasts[volume.instance] = ballast
            self.evidence.observations.append({
                "t": round(time.time(), 3), "phase": "injected", "instance": volume.instance,
                "size_bytes": volume.size_bytes, "free_bytes": ballast.free_after,
                "used_pct": round(100 * (1 - ballast.free_after / volume.size_bytes), 2),
                "ballast_bytes": ballast.written, "hit_enospc": ballast.hit_enospc,
            })

    async def observe(self) -> None:
        for volume in self._volumes():
            with contextlib.suppress(OSError):  # the service may be gone; evidence says so
                self._record(volume, "during")

    async def revert(self) -> None:
        ballasts: dict[str, Ballast] = getattr(self, "_ballasts", {})
        for volume in self.stack.data_volumes:
            path = self._ballast(volume)
            try:
                before = self._record(volume, "before_revert")
            except OSError:
                before = None
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise FaultError(f"disk-fill: cannot delete the ballast {path}: {exc}") from exc
            try:
                after = self._record(volume, "reverted", ballast_present=path.exists())
            except OSError:
                continue
            if before is not None:
                after["space_back_bytes"] = after["free_bytes"] - before["free_bytes"]
        self._summarise(ballasts)

    def _summarise(self, ballasts: dict[str, Ballast]) -> None:
        obs = self.evidence.observations
        during = [o for o in obs if o["phase"] in ("injected", "during", "before_revert")]
        reverted = [o for o in obs if o["phase"] == "reverted"]
        leave_free = self.params.leave_free
        ballast = sum(b.written for b in ballasts.values())
        facts: dict[str, Any] = {
            "volume_bytes": self.stack.data_volumes[0].size_bytes if self.stack.data_volumes
            else None,
            "ballast_bytes": ballast,
            "leave_free_bytes": leave_free,
        }
        if during:
            injected = [o for o in during if o["phase"] == "injected"]
            facts["free_bytes_at_injection"] = sum(o["free_bytes"] for o in injected)
            facts["min_free_bytes_during"] = min(o["free_bytes"] for o in during)
            facts["max_used_pct_during"] = max(o["used_pct"] for o in during)
            facts["full_during_fault"] = all(o["free_bytes"] == 0 for o in during)
            facts["reached_full_during"] = facts["min_free_bytes_during"] == 0
        if reverted:
            facts["free_bytes_after_revert"] = sum(o["free_bytes"] for o in reverted)
            facts["space_back_bytes"] = sum(o.get("space_back_bytes", 0) for o in reverted)
            facts["ballast_removed"] = not any(o["ballast_present"] for o in reverted)
        filled = bool(ballasts) and all(b.filled for b in ballasts.values())
        facts["filled_to_leave_free"] = filled
        self.evidence.facts.update(facts)
        # Took effect: the volume was filled (to `leave_free`), the ballast is gone again,
        # and deleting it gave the space back (the service may have used a little since).
        self.evidence.took_effect = (
            ballast > 0 and filled and bool(facts.get("ballast_removed"))
            and facts.get("space_back_bytes", 0) >= 0.9 * ballast
        )
