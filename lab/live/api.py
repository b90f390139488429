"""The control API of a live stack: JSON over HTTP on 127.0.0.1, served by `lab up` and
`lab drill`, and the dashboard page next to it.

The CLI (`lab inject`, `lab revert`, `lab drill …`), the dashboard and outside tools (the
Chaos Toolkit example in examples/) all go through these routes, so what one sees the
others can check. In a drill the fault stays hidden: the routes that would name it answer
403 until the drill ends.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from lab.errors import LabError
from lab.live.session import LiveSession

DEFAULT_PORT = 8765
HOST = "127.0.0.1"


class DrillControl(Protocol):
    """What a drill adds to the API (lab.live.drill)."""

    @property
    def ended(self) -> bool: ...

    def status_json(self) -> dict[str, Any]: ...

    async def act(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """diagnose / mitigate / hint / rollback / end, with the request's JSON body."""

    def debrief_html(self) -> str | None: ...


class ApiError(LabError):
    """An action the API refuses: its HTTP status and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dashboard_html() -> str:
    return resources.files("lab.live").joinpath("dashboard.html").read_text(encoding="utf-8")


def control_app(session: LiveSession, drill: DrillControl | None = None) -> web.Application:
    """The routes of the contract (docs/architecture.md, "Live stacks")."""

    def hidden() -> bool:
        return drill is not None and not drill.ended

    def status() -> dict[str, Any]:
        fault = session.fault_json()
        if hidden():  # when it went in is part of what a participant must find out
            fault = {"kind": None, "state": "hidden", "injected_at": None, "reverted_at": None}
        return {
            "scenario": None if hidden() else session.scenario.name,
            "variant": None if hidden() else session.variant,
            "backend": session.backend.name,
            "phase": session.phase,
            "started_at": session.started_at,
            "ready_at": session.ready_at,
            "urls": session.urls(),
            "fault": fault,
            "load": session.load_json(),
            "drill": drill.status_json() if drill is not None else None,
        }

    def last(request: web.Request) -> int:
        try:
            return max(0, min(3600, int(request.query.get("last", "60"))))
        except ValueError:
            raise ApiError(400, "last: expected a whole number of seconds") from None

    async def body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            doc = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return doc

    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(status())

    async def get_mix(request: web.Request) -> web.Response:
        return web.json_response({"seconds": session.mix(last(request))})

    async def get_errors(request: web.Request) -> web.Response:
        return web.json_response({"signatures": session.errors()})

    async def get_infra(request: web.Request) -> web.Response:
        return web.json_response(session.infra())

    async def get_evidence(request: web.Request) -> web.Response:
        if hidden():
            raise ApiError(403, "the fault's evidence is hidden until the drill ends")
        return web.json_response({"fault": session.fault_json(), "evidence": session.evidence()})

    async def get_live(request: web.Request) -> web.Response:
        return web.json_response({"status": status(), "mix": session.mix(last(request)),
                                  "errors": session.errors(), "infra": session.infra()})

    async def post_inject(request: web.Request) -> web.Response:
        if drill is not None:
            raise ApiError(403, "in a drill the lab injects the incident itself")
        if session.fault_state == "injected":
            raise ApiError(409, f"{session.scenario.fault.kind} is already injected: "
                                "revert first")
        fault = await session.inject()
        return web.json_response({"fault": fault, "evidence": session.evidence()})

    async def post_revert(request: web.Request) -> web.Response:
        if drill is not None:
            raise ApiError(403, "in a drill the fault stays until the drill ends: mitigate it")
        if session.fault_state != "injected":
            raise ApiError(409, "nothing is injected")
        fault = await session.revert()
        return web.json_response({"fault": fault, "evidence": session.evidence()})

    async def post_drill(request: web.Request) -> web.Response:
        if drill is None:
            raise ApiError(404, "this stack runs no drill (start one with `lab drill`)")
        return web.json_response(await drill.act(request.match_info["action"],
                                                 await body(request)))

    async def get_drill(request: web.Request) -> web.Response:
        if drill is None:
            raise ApiError(404, "this stack runs no drill")
        return web.json_response(drill.status_json())

    async def get_debrief(request: web.Request) -> web.Response:
        page = drill.debrief_html() if drill is not None else None
        if page is None:
            raise ApiError(404, "no debrief yet: it is written when the drill ends")
        return web.Response(text=page, content_type="text/html")

    async def get_dashboard(request: web.Request) -> web.Response:
        return web.Response(text=dashboard_html(), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    @web.middleware
    async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        except LabError as exc:  # a fault or a restart that failed: say so, keep serving
            return web.json_response({"error": str(exc)}, status=409)

    app = web.Application(middlewares=[errors_as_json])
    app.router.add_get("/", get_dashboard)
    app.router.add_get("/api/status", get_status)
    app.router.add_get("/api/mix", get_mix)
    app.router.add_get("/api/errors", get_errors)
    app.router.add_get("/api/infra", get_infra)
    app.router.add_get("/api/evidence", get_evidence)
    app.router.add_get("/api/live", get_live)
    app.router.add_post("/api/inject", post_inject)
    app.router.add_post("/api/revert", post_revert)
    app.router.add_get("/api/drill", get_drill)
    app.router.add_post("/api/drill/{action}", post_drill)
    app.router.add_get("/debrief", get_debrief)
    return app


async def serve(app: web.Application, port: int = DEFAULT_PORT) -> tuple[web.AppRunner, str]:
    """Serve on 127.0.0.1:`port` (0: any free port); the runner (to clean up) and the
    base URL. A taken port is an error that says which flag moves it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise LabError(f"cannot serve the control API on {HOST}:{port} ({exc.strerror}): "
                       "pass --port with a free port, or --port 0 for any") from None
    sockets = [s for s in runner.addresses]
    bound = sockets[0][1] if sockets else port
    return runner, f"http://{HOST}:{bound}"


def encode(doc: Any) -> str:
    return json.dumps(doc, indent=2, default=str)
