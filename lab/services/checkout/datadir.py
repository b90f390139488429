"""The data directory as the service sees it: how full its filesystem is, and the writes
to it that failed.

Failed writes are counted per file and reason for /metrics on every failure, but *logged*
at most once per `WRITE_FAILURE_LOG_INTERVAL_MS`, as one line carrying how many failed
since the last one: on a full disk, a log line per failed request would be exactly the
kind of write that filled it (and on stderr it buries everything else).
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .datalog import DataLog
from .logs import JsonLog
from .receipts import ReceiptJournal


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """`statvfs` of a filesystem, in bytes; `free` is what an unprivileged writer may use."""

    total: int
    free: int

    @property
    def used(self) -> float:
        return 1.0 - self.free / self.total if self.total else 0.0

    @classmethod
    def of(cls, path: str) -> DiskUsage:
        st = os.statvfs(path)
        return cls(total=st.f_blocks * st.f_frsize, free=st.f_bavail * st.f_frsize)


def reason_of(exc: OSError) -> str:
    """`ENOSPC`, `EDQUOT`, `EROFS`... — the errno's name, which is what on-call greps for."""
    return errno.errorcode.get(exc.errno or 0, "EIO")


class WriteFailures:
    """Counts failed writes; logs a summary line at most once per interval."""

    def __init__(
        self, log: JsonLog, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.interval_s = interval_s
        self.totals: Counter[tuple[str, str]] = Counter()  # (file, reason) → failures
        self._pending: Counter[tuple[str, str]] = Counter()
        self._last_detail: dict[tuple[str, str], str] = {}
        self._clock = clock
        self._next_line_at = 0.0

    def record(self, file: str, exc: OSError) -> None:
        key = (file, reason_of(exc))
        self.totals[key] += 1
        self._pending[key] += 1
        self._last_detail[key] = str(exc)
        if self._clock() >= self._next_line_at:
            self.flush()

    def flush(self) -> None:
        """Log what failed since the last line (nothing when nothing did)."""
        if not self._pending:
            return
        for (file, reason), count in sorted(self._pending.items()):
            self.log.warning(
                "data_write_failed",
                file=file,
                reason=reason,
                failures=count,
                since_last_line_s=self.interval_s,
                detail=self._last_detail[(file, reason)],
            )
        self._pending.clear()
        self._next_line_at = self._clock() + self.interval_s

    async def run_flusher(self) -> None:
        """Flush every interval, so the last failures of a burst are logged too."""
        while True:
            await asyncio.sleep(self.interval_s)
            if self._clock() >= self._next_line_at:
                self.flush()


class DataDir:
    """Everything the service writes to its data directory, and the figures /metrics reads."""

    def __init__(
        self, path: str, *, log: JsonLog, failure_interval_s: float, max_log_bytes: int,
        log_backups: int,
    ) -> None:
        self.path = path
        self.failures = WriteFailures(log, failure_interval_s)
        self.receipts = ReceiptJournal(path)
        self.log = DataLog(
            path, max_bytes=max_log_bytes, backups=log_backups,
            on_failure=lambda exc: self.failures.record("log", exc),
        )

    def usage(self) -> DiskUsage:
        return DiskUsage.of(self.path)

    # -- what metrics.DataDirStats reads
    @property
    def write_failures(self) -> Counter[tuple[str, str]]:
        return self.failures.totals

    @property
    def receipts_written(self) -> int:
        return self.receipts.written

    @property
    def log_bytes_written(self) -> int:
        return self.log.bytes_written

    def log_bytes_on_disk(self) -> int:
        return self.log.bytes_on_disk()

    def close(self) -> None:
        self.failures.flush()
        self.log.close()
