"""A bare aiohttp app answering like the checkout service, without touching a database.

The benchmark's floor: the same routes, served the same way (`web.run_app`, access log
off), so the gap between this and the real service is the cost of the service's own work.
"""

from __future__ import annotations

from aiohttp import web

INSTANCE_HEADER = "X-Instance"


def build_app(instance: str) -> web.Application:
    """Routes mirror the checkout service's; every answer is immediate and constant."""

    async def complete_checkout(_request: web.Request) -> web.Response:
        return web.json_response({"order_id": 1, "status": "CONFIRMED"}, status=201)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "instance": instance, "checks": {}})

    async def livez(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "instance": instance})

    async def add_instance_header(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers[INSTANCE_HEADER] = instance

    app = web.Application()
    app.router.add_post("/api/checkout/complete", complete_checkout)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", livez)
    app.on_response_prepare.append(add_instance_header)
    return app
