"""`python -m lab.services.bare` — serve the bare baseline app on CHECKOUT_HOST:CHECKOUT_PORT.

Reads the same host/port/instance keys as the checkout service, with the same
`STARTUP_FAILURE` line and exit code 2 on a bad value (3 when the port cannot be bound).
"""

from __future__ import annotations

import json
import os
import sys

from lab.services.env import ConfigError, EnvReader


def main() -> int:
    env = EnvReader(os.environ)
    try:
        host = env.string("CHECKOUT_HOST", "127.0.0.1")
        port = env.integer("CHECKOUT_PORT", minimum=1, maximum=65535)
        instance = env.string("CHECKOUT_INSTANCE", "bare-1")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    from aiohttp import web

    from . import build_app

    def announce(*_args: object, **_kwargs: object) -> None:
        event = {"event": "started", "instance": instance, "host": host, "port": port}
        print(json.dumps(event), file=sys.stderr, flush=True)

    try:
        web.run_app(build_app(instance), host=host, port=port, access_log=None, print=announce)
    except OSError as exc:
        print(f"STARTUP_FAILURE: CHECKOUT_PORT: cannot bind {host}:{port} ({exc})", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
