"""The service's own log file in the data directory: one line per API request.

Written the way most Python services write theirs — the standard `logging` file handlers —
so the lab measures the real behaviour: `FileHandler` (the incident: the file grows for as
long as the service runs) or `RotatingFileHandler` (`LOG_MAX_BYTES`, `LOG_BACKUPS`: the
live file plus backups, bounded). Like `logging` itself, a failed log write never fails
the request; here it is counted (`checkout_data_write_failures_total{file="log"}`) instead
of printing a traceback per record to stderr.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .metrics import route_template
from .sessions import SESSION_ID, USER_HEADER

LOG_NAME = "checkout.log"
_SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key"})
#: Extra fields a handler wants on its request's log line (e.g. the order it created).
LOG_FIELDS = web.RequestKey("log_fields", dict)


class _CountingMixin:
    """Counts bytes written and hands failures to `on_failure` instead of stderr."""

    bytes_written = 0
    on_failure: Callable[[OSError], None] = staticmethod(lambda _exc: None)
    _last_len = 0

    def format(self, record: logging.LogRecord) -> str:
        msg: str = super().format(record)  # type: ignore[misc]
        self._last_len = len(msg.encode()) + 1  # + the newline terminator
        return msg

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)  # type: ignore[misc]
        if not self._failed:
            self.bytes_written += self._last_len

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed = True
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            self.on_failure(exc)


class _File(_CountingMixin, logging.FileHandler):
    pass


class _RotatingFile(_CountingMixin, logging.handlers.RotatingFileHandler):
    pass


class DataLog:
    """The log file and its figures: bytes written, and bytes on disk (rotated included)."""

    def __init__(
        self,
        directory: str,
        *,
        max_bytes: int,
        backups: int,
        on_failure: Callable[[OSError], None],
    ) -> None:
        self.path = Path(directory) / LOG_NAME
        handler: _File | _RotatingFile
        if max_bytes > 0:
            handler = _RotatingFile(self.path, maxBytes=max_bytes, backupCount=backups)
        else:
            handler = _File(self.path)
        handler.on_failure = on_failure
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        # A private logger: nothing of the root logger's configuration leaks in or out.
        self._logger = logging.Logger(f"checkout.data.{id(self)}")
        self._logger.addHandler(handler)
        self._logger.propagate = False

    @property
    def bytes_written(self) -> int:
        return self._handler.bytes_written

    def bytes_on_disk(self) -> int:
        """The live file plus its rotated backups, as the disk sees them."""
        total = 0
        for path in self.path.parent.glob(LOG_NAME + "*"):
            try:
                total += path.stat().st_size
            except OSError:
                continue
        return total

    def write(self, line: str) -> None:
        self._logger.info(line)

    def close(self) -> None:
        self._handler.close()


def make_access_log_middleware(log: DataLog, instance: str, prefix: str = "/api/") -> Middleware:
    """One line per API request with what an on-call greps for (headers included, secrets
    redacted — the verbose logging that fills disks); handlers add fields."""

    @web.middleware
    async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(prefix):
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            line = {
                "ts": time.time(),
                "event": "request",
                "instance": instance,
                "method": request.method,
                "path": request.path,
                "route": route_template(request),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "session_id": request.get(SESSION_ID),
                "user_id": request.headers.get(USER_HEADER),
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "user_agent": request.headers.get("User-Agent"),
                "remote": request.remote,
                "headers": {
                    k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
                    for k, v in request.headers.items()
                },
                **request.get(LOG_FIELDS, {}),
            }
            log.write(json.dumps(line, default=str))

    return access_log
