"""The receipt of every order, appended to a journal in the data directory.

The journal (`receipts.jsonl`, read by the nightly accounting export) is written after the
order is committed. On a full disk the append fails with the kernel's `ENOSPC`; what the
checkout does then is the disk-full incident's decision (`DEGRADE_RECEIPT_WRITES`). An
append is all or nothing: a write the disk cut short is truncated away, so the journal
never holds a torn line for the export to choke on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOURNAL_NAME = "receipts.jsonl"


class ReceiptJournal:
    """Appends one JSON line per order; raises the kernel's OSError when it cannot."""

    def __init__(self, directory: str) -> None:
        self.path = Path(directory) / JOURNAL_NAME
        self.written = 0  # receipts appended since start, for /metrics

    def append(self, receipt: dict[str, Any]) -> None:
        # Synchronous on purpose: a sub-kilobyte append to a local file is cheaper than a
        # thread hop, and running to completion keeps appends from interleaving.
        data = (json.dumps(receipt, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size_before = os.fstat(fd).st_size
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                os.ftruncate(fd, size_before)  # all or nothing
                raise
        finally:
            os.close(fd)
        self.written += 1
