"""`python -m lab.services.checkout [serve|migrate]` — the service's command line.

Exit codes: 0 clean stop, 2 bad configuration or usage (one `STARTUP_FAILURE` line, no
traceback, the port never bound), 3 a dependency unreachable at start-up, 1 migrate failed.
Heavy imports (aiohttp, asyncpg) happen only after the configuration is valid, so a bad
value fails in well under a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from lab.services.env import EnvReader

from .config import CheckoutConfig, ConfigError, redact_dsn
from .switches import SWITCHES

USAGE = "usage: python -m lab.services.checkout [serve|migrate]"


def _serve() -> int:
    try:
        config = CheckoutConfig.from_env(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    from .app import StartupError, serve
    from .logs import JsonLog

    log = JsonLog(config.instance)
    try:
        serve(config, log)
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return 3
    return 0


def _migrate() -> int:
    env = EnvReader(os.environ)
    try:
        dsn: str = env.switch(SWITCHES["DATABASE_URL"])
        carts: int = env.switch(SWITCHES["SEED_CARTS"])
        items: int = env.switch(SWITCHES["SEED_ITEMS_PER_CART"])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    import asyncio
    import json

    from .schema import migrate_timed

    try:
        seconds = asyncio.run(migrate_timed(dsn, carts, items))
    except Exception as exc:  # one line for the lab's logs, not a traceback
        print(f"MIGRATE_FAILURE: {redact_dsn(dsn)}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "event": "migrated",
                "carts": carts,
                "items_per_cart": items,
                "cart_items": carts * items,
                "seconds": round(seconds, 3),
            }
        ),
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "serve" and len(argv) <= 1:
        return _serve()
    if command == "migrate" and len(argv) == 1:
        return _migrate()
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
