"""The router: round robin over backends in rotation, active health checks, admin API.

Two listeners: the traffic port (everything is forwarded, so the checkout's own `/health`
and `/metrics` stay reachable through it) and the admin port (127.0.0.1):

  GET    /backends               each backend's state (the lab's evidence)
  POST   /backends               {name, url}: add one; DOWN until it passes `rise` checks
  DELETE /backends/{name}        out of rotation now; answers once its in-flight requests
                                 finished (or `drain_s`, default 10, passed)
  GET    /events                 every UP/DOWN change, added and removed backend
  GET    /health                 200 while a backend is in rotation, else 503
  GET    /metrics
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from lab.services.serving import metrics_response

from .health import CheckRule, HealthState, check_passed

PROBLEM_JSON = "application/problem+json"
# Headers that belong to one hop and must not be forwarded (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "content-encoding",
})


@dataclass(eq=False)
class Backend:
    name: str
    url: str
    health: HealthState
    in_flight: int = 0
    served: int = 0
    last_status: str = "-"
    removed: bool = False
    task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url,
                "state": "up" if self.health.up else "down",
                "in_rotation": self.health.up and not self.removed,
                "checks": self.health.checks, "failed_checks": self.health.failed_checks,
                "last_check": self.last_status, "in_flight": self.in_flight,
                "served": self.served}


@dataclass
class RouterSettings:
    health_path: str = "/health"
    rule: CheckRule = field(default_factory=CheckRule)
    check_timeout_s: float = 0.5
    retry_after_s: int = 1
    server_timeout_s: float = 30.0


class Router:
    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.backends: dict[str, Backend] = {}
        self.events: list[dict[str, Any]] = []
        self._rr = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("router_requests_total", "Requests answered, by backend, status.",
                                ["backend", "status"], registry=self.registry)
        self.no_backend = Counter("router_no_backend_total",
                                  "Requests answered 503 because no backend was in rotation.",
                                  registry=self.registry)
        self.checks = Counter("router_health_checks_total", "Health checks, by result.",
                              ["backend", "result"], registry=self.registry)
        up = Gauge("router_backends_up", "Backends in rotation.", registry=self.registry)
        up.set_function(lambda: len(self.in_rotation()))
        known = Gauge("router_backends", "Backends known (in rotation or not).",
                      registry=self.registry)
        known.set_function(lambda: len(self.backends))

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            auto_decompress=False,
        )

    async def close(self) -> None:
        for b in list(self.backends.values()):
            await self._stop_checks(b)
        if self._http is not None:
            await self._http.close()

    def _event(self, event: str, backend: Backend, **extra: Any) -> None:
        record = {"t": round(time.time(), 3), "event": event, "backend": backend.name, **extra}
        self.events.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)

    # -- backends ---------------------------------------------------------------------------

    def add(self, name: str, url: str, *, up: bool) -> Backend:
        if name in self.backends:
            raise ValueError(f"backend {name!r} exists")
        backend = Backend(name, url.rstrip("/"), HealthState(self.settings.rule, up=up))
        self.backends[name] = backend
        self._event("added", backend, url=backend.url, state="up" if up else "down")
        backend.task = asyncio.create_task(self._check_loop(backend), name=f"check-{name}")
        return backend

    async def remove(self, name: str, drain_s: float) -> Backend | None:
        backend = self.backends.get(name)
        if backend is None:
            return None
        backend.removed = True  # out of rotation at once
        self._event("removing", backend, in_flight=backend.in_flight)
        deadline = time.monotonic() + drain_s
        while backend.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self._stop_checks(backend)
        self.backends.pop(name, None)
        self._event("removed", backend, in_flight=backend.in_flight, served=backend.served)
        return backend

    async def _stop_checks(self, backend: Backend) -> None:
        if backend.task is not None:
            backend.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await backend.task
            backend.task = None

    def in_rotation(self) -> list[Backend]:
        return [b for b in self.backends.values() if b.health.up and not b.removed]

    async def _check_loop(self, backend: Backend) -> None:
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(total=self.settings.check_timeout_s)
        url = backend.url + self.settings.health_path
        while True:
            started = time.monotonic()
            status: int | None = None
            try:
                async with self._http.get(url, timeout=timeout) as resp:
                    status = resp.status
                    await resp.read()
                backend.last_status = str(status)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                backend.last_status = type(exc).__name__
            passed = check_passed(status)
            self.checks.labels(backend.name, "pass" if passed else "fail").inc()
            if backend.health.record(passed):
                self._event("up" if backend.health.up else "down", backend,
                            check=backend.last_status)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.settings.rule.inter_s - elapsed))

    def pick(self, exclude: set[str]) -> Backend | None:
        """Round robin over backends in rotation (skipping ones that refused already)."""
        candidates = [b for b in self.in_rotation() if b.name not in exclude]
        if not candidates:
            return None
        return candidates[next(self._rr) % len(candidates)]

    # -- traffic ----------------------------------------------------------------------------

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        timeout = aiohttp.ClientTimeout(total=self.settings.server_timeout_s)
        refused: set[str] = set()
        while (backend := self.pick(refused)) is not None:
            backend.in_flight += 1
            try:
                async with self._http.request(
                    request.method, backend.url + request.path_qs, headers=headers, data=body,
                    allow_redirects=False, timeout=timeout,
                ) as resp:
                    payload = await resp.read()
                    out = {k: v for k, v in resp.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                    backend.served += 1
                    self.requests.labels(backend.name, str(resp.status)).inc()
                    return web.Response(status=resp.status, body=payload, headers=out)
            except aiohttp.ClientConnectorError:
                refused.add(backend.name)  # never reached it: safe to redispatch (HAProxy too)
            except TimeoutError:
                self.requests.labels(backend.name, "504").inc()
                return self._problem(504, f"backend {backend.name} did not answer in time")
            except aiohttp.ClientError as exc:
                self.requests.labels(backend.name, "502").inc()
                return self._problem(502, f"backend {backend.name} failed: {type(exc).__name__}")
            finally:
                backend.in_flight -= 1
        self.no_backend.inc()
        self.requests.labels("none", "503").inc()
        return self._problem(503, "no healthy checkout instance; retry later",
                             {"Retry-After": str(self.settings.retry_after_s)})

    def _problem(self, status: int, detail: str,
                 headers: dict[str, str] | None = None) -> web.Response:
        body = {"type": "about:blank", "title": {502: "Bad Gateway", 503: "Service Unavailable",
                                                 504: "Gateway Timeout"}[status],
                "status": status, "detail": detail, "reason": "router"}
        return web.json_response(body, status=status, content_type=PROBLEM_JSON,
                                 headers={**(headers or {}), "X-Instance": "router"})


ROUTER = web.AppKey("router", Router)


def build_traffic_app(router: Router) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[ROUTER] = router
    app.router.add_route("*", "/{tail:.*}", router.forward)
    return app


def build_admin_app(router: Router) -> web.Application:
    app = web.Application()
    app[ROUTER] = router

    async def list_backends(_request: web.Request) -> web.Response:
        return web.json_response([b.to_json() for b in router.backends.values()])

    async def add_backend(request: web.Request) -> web.Response:
        try:
            doc = json.loads(await request.read())
            name, url = str(doc["name"]), str(doc["url"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected {name, url}"}, status=400)
        try:
            backend = router.add(name, url, up=False)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(backend.to_json(), status=201)

    async def remove_backend(request: web.Request) -> web.Response:
        try:
            drain_s = float(request.query.get("drain_s", "10"))
        except ValueError:
            return web.json_response({"error": "drain_s must be a number"}, status=400)
        backend = await router.remove(request.match_info["name"], drain_s)
        if backend is None:
            return web.json_response({"error": "no such backend"}, status=404)
        return web.json_response(backend.to_json())

    async def events(_request: web.Request) -> web.Response:
        return web.json_response(router.events)

    async def health(_request: web.Request) -> web.Response:
        up = len(router.in_rotation())
        return web.json_response({"status": "ready" if up else "unavailable",
                                  "in_rotation": up}, status=200 if up else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return metrics_response(router.registry)

    app.router.add_get("/backends", list_backends)
    app.router.add_post("/backends", add_backend)
    app.router.add_delete("/backends/{name}", remove_backend)
    app.router.add_get("/events", events)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app
