"""`python -m lab.services.router` — the health-checked router.

ROUTER_PORT (traffic), ROUTER_ADMIN_PORT, ROUTER_BACKENDS (`name=url,name=url`, may be
empty), ROUTER_HEALTH_PATH (default /health), ROUTER_INTER_MS (500), ROUTER_FALL (2),
ROUTER_RISE (2), ROUTER_CHECK_TIMEOUT_MS (default: inter), ROUTER_RETRY_AFTER_S (1),
ROUTER_SERVER_TIMEOUT_S (30). A bad value is one `STARTUP_FAILURE` line and exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING

from lab.services.env import ConfigError, EnvReader
from lab.services.serving import until_stopped

from .health import CheckRule

if TYPE_CHECKING:
    from .app import RouterSettings


def main() -> int:
    env = EnvReader(os.environ)
    try:
        host = env.string("ROUTER_HOST", "127.0.0.1")
        port = env.integer("ROUTER_PORT", minimum=1, maximum=65535)
        admin_port = env.integer("ROUTER_ADMIN_PORT", minimum=1, maximum=65535)
        backends = parse_backends(env.raw("ROUTER_BACKENDS") or "")
        path = env.string("ROUTER_HEALTH_PATH", "/health")
        if not path.startswith("/"):
            raise ConfigError("ROUTER_HEALTH_PATH", "a path starting with '/'", path)
        inter_ms = env.integer("ROUTER_INTER_MS", 500, minimum=10, maximum=600_000)
        rule = CheckRule(inter_ms / 1000, env.integer("ROUTER_FALL", 2, minimum=1, maximum=100),
                         env.integer("ROUTER_RISE", 2, minimum=1, maximum=100))
        check_timeout = env.integer("ROUTER_CHECK_TIMEOUT_MS", inter_ms, minimum=10)
        retry_after = env.integer("ROUTER_RETRY_AFTER_S", 1, minimum=0, maximum=86400)
        server_timeout = env.number("ROUTER_SERVER_TIMEOUT_S", 30.0, minimum=0.1,
                                    maximum=3600.0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    from .app import RouterSettings

    settings = RouterSettings(path, rule, check_timeout / 1000, retry_after, server_timeout)
    try:
        asyncio.run(_serve(host, port, admin_port, backends, settings))
    except OSError as exc:
        print(f"STARTUP_FAILURE: ROUTER_PORT/ROUTER_ADMIN_PORT: cannot bind ({exc})",
              file=sys.stderr)
        return 3
    return 0


def parse_backends(text: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith("http://"):
            raise ConfigError("ROUTER_BACKENDS", "name=http://host:port,...", text)
        out.append((name, url))
    return out


async def _serve(host: str, port: int, admin_port: int, backends: list[tuple[str, str]],
                 settings: RouterSettings) -> None:
    from aiohttp import web

    from .app import Router, build_admin_app, build_traffic_app

    router = Router(settings)
    await router.start()
    for name, url in backends:
        router.add(name, url, up=True)
    runners = []
    for app, p in ((build_traffic_app(router), port), (build_admin_app(router), admin_port)):
        runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await runner.setup()
        await web.TCPSite(runner, host, p).start()
        runners.append(runner)
    print(json.dumps({"event": "started", "service": "router", "port": port,
                      "admin_port": admin_port, "health_path": settings.health_path,
                      "inter_s": settings.rule.inter_s, "fall": settings.rule.fall,
                      "rise": settings.rule.rise}), file=sys.stderr, flush=True)
    try:
        await until_stopped()
    finally:
        for runner in runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        await router.close()


if __name__ == "__main__":
    sys.exit(main())
