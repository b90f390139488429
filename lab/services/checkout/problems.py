"""RFC 9457 problem responses, the service's own exceptions, and the global error middleware.

The middleware is where the service decides, on purpose, what a client sees:

* `web.HTTPException` with a 4xx/5xx status is rendered as `application/problem+json`.
* `DependencyUnavailable` (a *known* dependency failure, wrapped at the data-access layer)
  becomes 503 + `Retry-After` when `DB_ERRORS_AS_503` is on; otherwise it is handled like
  any bug, which is how the incident's service behaved.
* Anything else — including `asyncio.TimeoutError`, which aiohttp would turn into a 504 —
  is a 500 whose body carries only an `errorId`; the full traceback goes to stderr as one
  JSON line with the same `errorId`, so the lab can join the two.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .logs import JsonLog
from .metrics import ServiceMetrics, route_template

PROBLEM_JSON = "application/problem+json"
UNEXPECTED_DETAIL = "An unexpected error occurred."
# Paths in logged frames are shown relative to the directory that holds the `lab` package.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


class DependencyUnavailable(Exception):
    """A dependency failed in a way we know and expect (timeouts, refused connections).

    Raised by the data-access layer instead of the driver's exception so the HTTP layer can
    answer an honest 503 instead of a 500, without knowing asyncpg's exception zoo.
    """

    def __init__(self, dependency: str, reason: str, detail: str = "") -> None:
        self.dependency = dependency
        self.reason = reason
        self.detail = detail
        #: A Retry-After the dependency suggests (e.g. a breaker's time left); else the default.
        self.retry_after_s: int | None = None
        message = f"{dependency} unavailable: {reason}"
        super().__init__(f"{message} ({detail})" if detail else message)


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    title: str | None = None,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    """An `application/problem+json` response (RFC 9457) with optional extension members."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _reason(status),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body.update(extensions)
    return web.json_response(
        body, status=status, content_type=PROBLEM_JSON, headers=dict(headers or {})
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def describe_frame(exc: BaseException) -> str:
    """`path:line in function` of the innermost frame in the service's own code (where our
    code raised or called what raised); the innermost frame of all when none is ours, so
    `os.environ[...]` shows the line that read the environment, not `<frozen os>`."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "<unknown>"
    ours = [f for f in frames if _is_ours(f.filename)]
    frame = ours[-1] if ours else frames[-1]
    path = Path(frame.filename)
    try:
        shown = path.resolve().relative_to(_PROJECT_ROOT).as_posix()
    except ValueError:
        parts = path.parts
        shown = (
            "/".join(parts[parts.index("site-packages") + 1 :])
            if "site-packages" in parts
            else frame.filename
        )
    return f"{shown}:{frame.lineno} in {frame.name}"


def _is_ours(filename: str) -> bool:
    path = Path(filename)
    if "site-packages" in path.parts:
        return False
    try:
        path.resolve().relative_to(_PROJECT_ROOT / "lab")
    except ValueError:
        return False
    return True


def _http_exception_problem(exc: web.HTTPException) -> web.Response:
    # Keep headers such as `Allow` on a 405; the body is replaced, so drop its framing.
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")
    }
    text = exc.text or ""
    generic = f"{exc.status}: {exc.reason}"
    detail = text if text and text != generic else None
    return problem_response(exc.status, detail=detail, title=exc.reason, headers=headers)


def make_error_middleware(
    *,
    log: JsonLog,
    metrics: ServiceMetrics,
    errors_as_503: bool,
    retry_after_s: int,
    payment_errors_as_503: bool = False,
) -> Middleware:
    """Build the global error middleware around the service's logger and switches.

    `errors_as_503` covers the database, `payment_errors_as_503` the payment gateway; a
    circuit breaker's refusal (`breaker_open*`) is always a 503: it is a deliberate answer.
    """

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _http_exception_problem(exc)
        except DependencyUnavailable as exc:
            metrics.dependency_failures.labels(exc.dependency, exc.reason).inc()
            as_503 = payment_errors_as_503 if exc.dependency == "payments" else errors_as_503
            if as_503 or exc.reason.startswith("breaker_open"):
                retry_after = exc.retry_after_s or retry_after_s
                return problem_response(
                    503,
                    detail=f"{exc.dependency} is unavailable ({exc.reason}); retry later.",
                    headers={"Retry-After": str(retry_after)},
                    dependency=exc.dependency,
                    reason=exc.reason,
                )
            return _unexpected(request, exc, log, metrics)
        except Exception as exc:  # the whole point: nothing escapes unlogged
            return _unexpected(request, exc, log, metrics)

    return error_middleware


def _unexpected(
    request: web.Request, exc: Exception, log: JsonLog, metrics: ServiceMetrics
) -> web.Response:
    error_id = str(uuid.uuid4())
    name = type(exc).__name__
    metrics.unhandled_errors.labels(name).inc()
    log.error(
        "unhandled_exception",
        errorId=error_id,
        route=route_template(request),
        method=request.method,
        exception=name,
        message=str(exc),
        frame=describe_frame(exc),
        traceback="".join(traceback.format_exception(exc)),
    )
    return problem_response(500, detail=UNEXPECTED_DETAIL, errorId=error_id)
