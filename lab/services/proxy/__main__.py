"""`python -m lab.services.proxy` — the fault proxy and its admin API.

PROXY_LISTEN_PORT (the checkout connects here), PROXY_UPSTREAM (host:port of the gateway),
PROXY_ADMIN_PORT, PROXY_SEED (the scenario's seed). Binds 127.0.0.1 unless PROXY_HOST says
otherwise. A bad value is one `STARTUP_FAILURE` line and exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

from lab.services.env import ConfigError, EnvReader
from lab.services.serving import until_stopped


def main() -> int:
    env = EnvReader(os.environ)
    try:
        host = env.string("PROXY_HOST", "127.0.0.1")
        listen_port = env.integer("PROXY_LISTEN_PORT", minimum=1, maximum=65535)
        admin_port = env.integer("PROXY_ADMIN_PORT", minimum=1, maximum=65535)
        upstream = env.string("PROXY_UPSTREAM", what="host:port of the gateway")
        up_host, _, up_port = upstream.rpartition(":")
        if not up_host or not up_port.isdigit():
            raise ConfigError("PROXY_UPSTREAM", "host:port", upstream)
        seed = env.integer("PROXY_SEED", 1)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(host, listen_port, admin_port, (up_host, int(up_port)), seed))
    except OSError as exc:
        print(f"STARTUP_FAILURE: PROXY_LISTEN_PORT/PROXY_ADMIN_PORT: cannot bind ({exc})",
              file=sys.stderr)
        return 3
    return 0


async def _serve(host: str, port: int, admin_port: int, upstream: tuple[str, int],
                 seed: int) -> None:
    from aiohttp import web

    from .app import build_admin_app
    from .server import FaultProxy

    proxy = FaultProxy((host, port), upstream, seed)
    await proxy.start()
    runner = web.AppRunner(build_admin_app(proxy), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, admin_port).start()
    print(json.dumps({"event": "started", "service": "proxy", "port": port,
                      "admin_port": admin_port, "upstream": f"{upstream[0]}:{upstream[1]}"}),
          file=sys.stderr, flush=True)
    try:
        await until_stopped()
    finally:
        await proxy.close()
        with contextlib.suppress(Exception):
            await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
