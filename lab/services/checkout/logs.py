"""One-line JSON events on stderr.

stderr stays quiet except for start-up, shutdown and errors, because the lab parses it for
`unhandled_exception` lines and matches their `errorId` with the 500 bodies it received.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO


class JsonLog:
    """Writes `{"ts", "level", "event", "instance", ...}` objects, one per line."""

    def __init__(self, instance: str, stream: TextIO | None = None) -> None:
        self.instance = instance
        self._stream = stream

    def emit(self, level: str, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
            "instance": self.instance,
        }
        record.update(fields)
        stream = self._stream if self._stream is not None else sys.stderr
        # One write call per line, so concurrent writers never interleave within a line.
        stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        stream.flush()

    def info(self, event: str, **fields: Any) -> None:
        self.emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.emit("error", event, **fields)
