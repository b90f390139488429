"""Every environment variable the checkout service reads, as one table.

The service's start-up check (`config.py`) and the scenario loader (`lab.scenario`) both
read through this table, so they cannot disagree: a value the service would refuse is
refused when the scenario is loaded, in the same words, and a misspelt switch is an error
instead of a mitigation silently left off. Standard library only: the loader imports this
module and must not pull in aiohttp or asyncpg.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

#: Kept here (not in cache.py) so a bad value is rejected before anything heavy is imported.
CACHE_STRATEGIES = ("none", "single-flight", "stale-while-revalidate", "early-refresh")
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
INT32_MAX = 2**31 - 1

Kind = Literal["integer", "number", "boolean", "choice", "string", "http_url", "postgres_dsn",
               "directory"]


class ConfigError(ValueError):
    """A configuration value the service refuses to start with."""

    def __init__(self, var: str, expected: str, got: str | None) -> None:
        self.var = var
        self.expected = expected
        self.got = got
        super().__init__(f"STARTUP_FAILURE: {var}: {self.detail}")

    @property
    def detail(self) -> str:
        """'expected …, got …': the part the scenario loader shows after the field path."""
        shown = "" if self.got is None else self.got
        suffix = " (unset)" if self.got is None else ""
        return f"expected {self.expected}, got '{shown}'{suffix}"


def raw_value(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value; empty counts as unset so `FOO=` in a compose file means default."""
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, safe for logs and error lines."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    host = netloc[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, slots=True)
class Switch:
    """One variable: how to parse it, its default, its bounds, and a line saying what it is."""

    name: str
    kind: Kind
    default: int | float | bool | str | None
    doc: str = ""
    minimum: float = 0
    maximum: float = INT32_MAX
    choices: tuple[str, ...] = ()
    #: No default: unset is an error.
    required: bool = False
    #: Replaces the kind's own description of what was expected.
    what: str = ""
    #: Why a scenario may not set it (the lab sets it on every instance); None = a switch.
    set_by_lab: str | None = None
    #: Read only by `python -m lab.services.checkout migrate`, not by the service itself.
    migrate_only: bool = False

    @property
    def expected(self) -> str:
        if self.what:
            return self.what
        return {
            "integer": f"an integer in {self.minimum:.0f}..{self.maximum:.0f}",
            "number": f"a number in {self.minimum:g}..{self.maximum:g}",
            "boolean": "one of true/false/1/0/yes/no",
            "choice": f"one of {'/'.join(self.choices)}",
            "string": "a string",
            "http_url": "an http:// or https:// URL",
            "postgres_dsn": "a postgresql:// URL",
            "directory": "an existing directory this process can write to",
        }[self.kind]

    def read(self, env: Mapping[str, str], *, on_host: bool = True) -> Any:
        """The value from `env` (the default when unset); raises `ConfigError`.

        `on_host=False` skips what only the machine the service runs on can answer (does
        DATA_DIR exist there?): the scenario loader cannot know which machine that is.
        """
        value = raw_value(env, self.name)
        if value is None:
            if self.required:
                raise ConfigError(self.name, f"{self.expected} (required)", None)
            return self.default
        return self.parse(value, on_host=on_host)

    def parse(self, value: str, *, on_host: bool = True) -> Any:
        fail = ConfigError(self.name, self.expected, value)
        if self.kind == "integer":
            try:
                number = int(value, 10)
            except ValueError:
                raise fail from None
            if not self.minimum <= number <= self.maximum:
                raise fail
            return number
        if self.kind == "number":
            try:
                real = float(value)
            except ValueError:
                raise fail from None
            if math.isnan(real) or not self.minimum <= real <= self.maximum:
                raise fail
            return real
        if self.kind == "boolean":
            if value.lower() in TRUE_WORDS:
                return True
            if value.lower() in FALSE_WORDS:
                return False
            raise fail
        if self.kind == "choice":
            if value.lower() not in self.choices:
                raise fail
            return value.lower()
        if self.kind == "http_url":
            if not value.startswith(("http://", "https://")):
                raise fail
            return value
        if self.kind == "postgres_dsn":
            try:
                parts = urlsplit(value)
                _ = parts.port  # raises ValueError on a non-numeric port
            except ValueError:
                raise ConfigError(self.name, self.expected, redact_dsn(value)) from None
            if parts.scheme not in ("postgres", "postgresql"):
                raise ConfigError(self.name, self.expected, redact_dsn(value))
            return value
        if self.kind == "directory" and on_host and not (
                os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK)):
            raise fail
        return value


_LAB = "the backend sets it on every checkout instance"
_WIRING = ("the lab wires every checkout to the gateway through the fault proxy; "
           "to deploy without it, use the rolling-deploy fault's `unset`")

#: In the order the service checks them, so the first bad value is reported first.
SWITCHES: dict[str, Switch] = {s.name: s for s in (
    Switch("CHECKOUT_HOST", "string", "127.0.0.1", "address to bind", set_by_lab=_LAB),
    Switch("CHECKOUT_PORT", "integer", None, "port to bind", minimum=1, maximum=65535,
           required=True, set_by_lab=_LAB),
    Switch("CHECKOUT_INSTANCE", "string", "checkout-1", "instance name in logs and X-Instance",
           set_by_lab=_LAB),
    Switch("DATABASE_URL", "postgres_dsn", None, "the Postgres DSN", required=True,
           set_by_lab=_LAB),
    Switch("DB_POOL_MAX", "integer", 10, "asyncpg pool size (maximum)", minimum=1,
           maximum=1000),
    Switch("DB_POOL_MIN", "integer", 2, "asyncpg pool size (minimum; at most DB_POOL_MAX)",
           maximum=1000),
    Switch("DB_ACQUIRE_TIMEOUT_MS", "integer", 0,
           "how long a request waits for a pool connection; 0 = forever"),
    Switch("DB_STATEMENT_TIMEOUT_MS", "integer", 0, "Postgres statement_timeout; 0 = none"),
    Switch("DB_ERRORS_AS_503", "boolean", False,
           "known database failures answer 503 + Retry-After instead of 500"),
    Switch("RETRY_AFTER_S", "integer", 1, "the Retry-After value", maximum=86400),
    Switch("READINESS_MAX_POOL_USE", "number", 0.0,
           "/health 503 above this pool use (a share); 0 = off", maximum=1.0),
    Switch("SESSION_TTL_MS", "integer", 1500, "cart session lifetime", minimum=1),
    Switch("SHUTDOWN_TIMEOUT_S", "number", 5.0,
           "how long SIGTERM waits for requests in flight", maximum=3600.0),
    Switch("READINESS_POOL_GRACE_MS", "integer", 1000,
           "how long pool pressure must last before /health fails", maximum=600_000),
    Switch("PAYMENT_URL", "http_url", None, "the payment gateway; unset = no payment step",
           set_by_lab=_WIRING),
    Switch("PAYMENT_API_KEY", "string", None, "the gateway's key, read where it is used",
           set_by_lab=_WIRING),
    Switch("PAYMENT_TIMEOUT_MS", "integer", 0, "timeout of one gateway call; 0 = none",
           maximum=600_000),
    Switch("PAYMENT_RETRIES", "integer", 0, "extra attempts after a gateway failure",
           maximum=10),
    Switch("PAYMENT_RETRY_BACKOFF_MS", "integer", 50, "base of the full-jitter backoff",
           minimum=1, maximum=60_000),
    Switch("PAYMENT_IDEMPOTENCY_KEYS", "boolean", False,
           "send an Idempotency-Key with every attempt"),
    Switch("PAYMENT_ERRORS_AS_503", "boolean", False,
           "gateway failures answer 503 + Retry-After instead of 500"),
    Switch("PAYMENT_BREAKER", "boolean", False, "a circuit breaker on the gateway"),
    Switch("PAYMENT_BREAKER_FAILURES", "integer", 5, "failures in a row that open it",
           minimum=1, maximum=1000),
    Switch("PAYMENT_BREAKER_RESET_MS", "integer", 2000, "open this long before half-open",
           minimum=1, maximum=3_600_000),
    Switch("PAYMENT_FALLBACK", "boolean", False, "a failed payment is accepted as pending"),
    Switch("PAYMENT_SWALLOW_ERRORS", "boolean", False,
           "the anti-pattern: a failed payment answered 200"),
    Switch("STARTUP_VALIDATION", "boolean", False,
           "refuse to start when a required variable is missing"),
    Switch("READINESS_CHECKS_CONFIG", "boolean", False,
           "/health 503 while a required variable is missing"),
    Switch("DATA_DIR", "directory", None, "where receipts and the log file go; unset = none"),
    Switch("DEGRADE_RECEIPT_WRITES", "boolean", False,
           "a receipt that cannot be written does not fail the order"),
    Switch("WRITE_FAILURE_LOG_INTERVAL_MS", "integer", 10_000,
           "log failed data-directory writes at most once per interval", minimum=1,
           maximum=3_600_000),
    Switch("READINESS_MAX_DISK_USE", "number", 0.0,
           "/health 503 above this data-volume use (a share); 0 = off", maximum=1.0),
    Switch("LOG_MAX_BYTES", "integer", 0, "rotate checkout.log at this size; 0 = never",
           maximum=2**40),
    # Python's RotatingFileHandler never rotates with 0 backups, so at least one.
    Switch("LOG_BACKUPS", "integer", 2, "rotated log files kept", minimum=1, maximum=100),
    Switch("CATALOG_CACHE_TTL_MS", "integer", 60_000, "how long the catalog stays fresh",
           minimum=1),
    Switch("CATALOG_CACHE_STRATEGY", "choice", "none", "what requests do when it expires",
           choices=CACHE_STRATEGIES),
    Switch("CATALOG_CACHE_MAX_STALE_MS", "integer", 60_000,
           "stale-while-revalidate: how long past expiry a value may be served"),
    Switch("CATALOG_XFETCH_BETA", "number", 1.0, "early-refresh: XFetch's beta",
           minimum=0.01, maximum=100.0),
    Switch("SEED_CARTS", "integer", 30_000, "carts the migrate job seeds", minimum=1,
           maximum=100_000_000, set_by_lab="from stack.seed, on the migrate job",
           migrate_only=True),
    Switch("SEED_ITEMS_PER_CART", "integer", 10, "lines per seeded cart", minimum=1,
           maximum=1000, set_by_lab="from stack.seed, on the migrate job", migrate_only=True),
)}

#: What a scenario's `stack.config` and a variant's `config` may set.
USER_SWITCHES = tuple(name for name, s in SWITCHES.items() if s.set_by_lab is None)


def unknown_variable(name: str, known: Iterable[str] = SWITCHES) -> str | None:
    """None when the service reads `name`; otherwise a sentence with the nearest known name
    (a misspelt switch is silently ignored by the service, and its mitigation with it)."""
    names = tuple(known)
    if name in names:
        return None
    close = difflib.get_close_matches(name, names, n=1)
    hint = (f"did you mean {close[0]}?" if close
            else "see README 'The checkout service's switches'")
    return f"unknown checkout variable (the service would ignore it); {hint}"


def read_switches(env: Mapping[str, str], *, on_host: bool = True,
                  user_only: bool = False) -> dict[str, Any]:
    """Every switch the service reads, by name, then the rules between switches.

    Raises the first `ConfigError`. The service calls this on its whole environment; the
    scenario loader on a variant's config with `user_only` and `on_host=False`.
    """
    values = {name: s.read(env, on_host=on_host) for name, s in SWITCHES.items()
              if not s.migrate_only and not (user_only and s.set_by_lab)}
    pool_max = values["DB_POOL_MAX"]
    if raw_value(env, "DB_POOL_MIN") is None:
        # The default minimum follows a small maximum, so DB_POOL_MAX=1 alone is valid.
        values["DB_POOL_MIN"] = min(values["DB_POOL_MIN"], pool_max)
    elif values["DB_POOL_MIN"] > pool_max:
        raise ConfigError("DB_POOL_MIN", f"an integer in 0..{pool_max}",
                          raw_value(env, "DB_POOL_MIN"))
    if values["PAYMENT_FALLBACK"] and values["PAYMENT_SWALLOW_ERRORS"]:
        raise ConfigError("PAYMENT_SWALLOW_ERRORS",
                          "false when PAYMENT_FALLBACK is on (one failure policy)", "true")
    return values
