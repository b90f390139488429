"""The proxy's admin API (127.0.0.1 only): the lab sets and clears toxics while it runs.

  GET    /toxics            the live toxics
  POST   /toxics            add or replace one (Toxiproxy's JSON shape, or flat)
  DELETE /toxics/{name}     remove one
  POST   /reset             remove every toxic (and close connections held by `timeout`)
  GET    /stats             counters, toxics and the log of changes (the fault's evidence)
  GET    /metrics           the same counters for Prometheus
"""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import ValidationError

from lab.services.serving import metrics_response

from .server import FaultProxy
from .toxics import Toxic

PROXY = web.AppKey("proxy", FaultProxy)


class _ProxyCollector(Collector):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def collect(self) -> list[GaugeMetricFamily | CounterMetricFamily]:
        s = self.proxy.stats
        requests = CounterMetricFamily("proxy_requests", "HTTP requests that reached the proxy.")
        requests.add_metric([], s.requests)
        forwarded = CounterMetricFamily("proxy_forwarded", "Requests relayed to the gateway.")
        forwarded.add_metric([], s.forwarded)
        connections = CounterMetricFamily("proxy_connections", "Connections accepted.")
        connections.add_metric([], s.connections)
        errors = CounterMetricFamily("proxy_http_errors", "Requests answered by http_error.",
                                     labels=["status"])
        for status, n in s.http_errors.items():
            errors.add_metric([str(status)], n)
        hits = CounterMetricFamily("proxy_toxic_hits", "Times a toxic acted.", labels=["toxic"])
        for key, n in s.toxic_hits.items():
            hits.add_metric([key], n)
        active = GaugeMetricFamily("proxy_toxics_active", "Toxics currently set.")
        active.add_metric([], len(self.proxy.toxics))
        return [requests, forwarded, connections, errors, hits, active]


def build_admin_app(proxy: FaultProxy) -> web.Application:
    app = web.Application()
    app[PROXY] = proxy
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProxyCollector(proxy))

    async def list_toxics(_request: web.Request) -> web.Response:
        return web.json_response([t.model_dump() | {"key": t.key} for t in proxy.toxics.values()])

    async def add_toxic(request: web.Request) -> web.Response:
        try:
            toxic = Toxic.model_validate(json.loads(await request.read()))
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)[:500]}, status=400)
        await proxy.set_toxic(toxic)
        return web.json_response(toxic.model_dump() | {"key": toxic.key})

    async def remove_toxic(request: web.Request) -> web.Response:
        if await proxy.remove_toxic(request.match_info["name"]):
            return web.Response(status=204)
        return web.json_response({"error": "no such toxic"}, status=404)

    async def reset(_request: web.Request) -> web.Response:
        await proxy.reset()
        return web.Response(status=204)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(proxy.snapshot())

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "toxics": len(proxy.toxics)})

    async def metrics(_request: web.Request) -> web.Response:
        return metrics_response(registry)

    app.router.add_get("/toxics", list_toxics)
    app.router.add_post("/toxics", add_toxic)
    app.router.add_delete("/toxics/{name}", remove_toxic)
    app.router.add_post("/reset", reset)
    app.router.add_get("/stats", stats)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app
