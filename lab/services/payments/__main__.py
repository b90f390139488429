"""`python -m lab.services.payments` — serve the gateway stub on PAYMENTS_HOST:PAYMENTS_PORT.

PAYMENTS_API_KEY is the one key it accepts. A bad or missing value is one
`STARTUP_FAILURE` line and exit code 2, before the port is bound.
"""

from __future__ import annotations

import json
import os
import sys

from lab.services.env import ConfigError, EnvReader


def main() -> int:
    env = EnvReader(os.environ)
    try:
        host = env.string("PAYMENTS_HOST", "127.0.0.1")
        port = env.integer("PAYMENTS_PORT", minimum=1, maximum=65535)
        api_key = env.string("PAYMENTS_API_KEY", what="the API key callers must present")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    from aiohttp import web

    from .app import build_app

    def announce(*_args: object, **_kwargs: object) -> None:
        print(json.dumps({"event": "started", "service": "payments", "port": port}),
              file=sys.stderr, flush=True)

    try:
        web.run_app(build_app(api_key), host=host, port=port, access_log=None, print=announce)
    except OSError as exc:
        print(f"STARTUP_FAILURE: PAYMENTS_PORT: cannot bind {host}:{port} ({exc})",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
