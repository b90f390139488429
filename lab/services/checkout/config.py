"""Typed, frozen configuration for the checkout service, parsed from the environment.

Every mitigation the lab proves is a switch here, so one codebase serves every variant and
the diff between baseline and a mitigation is a few environment variables. All values are
validated before the port is bound: a bad value is a `ConfigError` whose `str()` is the one
`STARTUP_FAILURE: <VAR>: expected <what>, got '<value>'` line the CLI prints before exiting 2.

New keys (a payment API key, breaker settings, cache TTLs) go into `CheckoutConfig` and
`CheckoutConfig.from_env`, reusing the `EnvReader` helpers so the rules stay in one place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Kept here (not in cache.py) so a bad value is rejected before anything heavy is imported.
CACHE_STRATEGIES = ("none", "single-flight", "stale-while-revalidate", "early-refresh")
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
INT32_MAX = 2**31 - 1


class ConfigError(ValueError):
    """A configuration value the service refuses to start with."""

    def __init__(self, var: str, expected: str, got: str | None) -> None:
        self.var = var
        self.expected = expected
        self.got = got
        shown = "" if got is None else got
        suffix = " (unset)" if got is None else ""
        super().__init__(f"STARTUP_FAILURE: {var}: expected {expected}, got '{shown}'{suffix}")


class EnvReader:
    """Typed getters over an environment mapping; each raises `ConfigError` naming the key.

    Empty strings count as unset so `FOO=` in a compose file means "use the default".
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def is_set(self, name: str) -> bool:
        return self.raw(name) is not None

    def string(self, name: str, default: str | None = None, *, what: str = "a string") -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise ConfigError(name, f"{what} (required)", None)
            return default
        return value

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int = INT32_MAX,
    ) -> int:
        expected = f"an integer in {minimum}..{maximum}"
        value = self.raw(name)
        if value is None:
            if default is None:
                raise ConfigError(name, f"{expected} (required)", None)
            return default
        try:
            parsed = int(value, 10)
        except ValueError:
            raise ConfigError(name, expected, value) from None
        if not minimum <= parsed <= maximum:
            raise ConfigError(name, expected, value)
        return parsed

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        expected = f"a number in {minimum:g}..{maximum:g}"
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = float(value)
        except ValueError:
            raise ConfigError(name, expected, value) from None
        if math.isnan(parsed) or not minimum <= parsed <= maximum:
            raise ConfigError(name, expected, value)
        return parsed

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ConfigError(name, "one of true/false/1/0/yes/no", value)

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in options:
            raise ConfigError(name, f"one of {'/'.join(options)}", value)
        return value.lower()

    def writable_directory(self, name: str) -> str | None:
        """An existing directory this process may write to, or None when unset."""
        value = self.raw(name)
        if value is None:
            return None
        if not os.path.isdir(value) or not os.access(value, os.W_OK | os.X_OK):
            raise ConfigError(name, "an existing directory this process can write to", value)
        return value

    def postgres_dsn(self, name: str) -> str:
        value = self.string(name, what="a postgresql:// URL")
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises ValueError on a non-numeric port
        except ValueError:
            raise ConfigError(name, "a postgresql:// URL", redact_dsn(value)) from None
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError(name, "a postgresql:// URL", redact_dsn(value))
        return value


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
class CheckoutConfig:
    """Everything the checkout service reads from its environment, already validated."""

    host: str
    port: int
    instance: str
    database_url: str
    db_pool_min: int
    db_pool_max: int
    #: 0 = wait forever for a pool connection (the incident's setting).
    db_acquire_timeout_ms: int
    #: 0 = no server-side statement timeout (the incident's setting).
    db_statement_timeout_ms: int
    #: Answer known dependency failures with 503 + Retry-After instead of a 500.
    db_errors_as_503: bool
    retry_after_s: int
    #: 0 = readiness ignores pool use; otherwise /health is 503 once use has been above
    #: this fraction, or requests have waited for a connection, for readiness_pool_grace_ms.
    readiness_max_pool_use: float
    session_ttl_ms: int
    #: How long a SIGTERM waits for in-flight requests before cancelling them.
    shutdown_timeout_s: float
    #: How long the pool must stay under pressure without a break before /health fails: a
    #: burst of requests arriving together queues for milliseconds and is not an overload.
    readiness_pool_grace_ms: int = 1000
    #: The payment gateway client and its resilience switches.
    payments: PaymentSettings = field(default_factory=lambda: PaymentSettings())
    #: Which required variables are missing, and what start-up and readiness do about it.
    config_checks: ConfigChecks = field(default_factory=lambda: ConfigChecks())

    # -- the data directory: receipts and the service's own log file (disk-full incident)
    #: None = no receipts and no log file are written (the pool-exhaustion setting).
    data_dir: str | None = None
    #: False (the incident): a receipt that cannot be written fails the checkout with a 500.
    #: True: the order stands and is answered 201 marked `degraded`.
    degrade_receipt_writes: bool = False
    #: At most one log line per this interval about failed data-directory writes.
    write_failure_log_interval_ms: int = 10_000
    #: 0 = readiness ignores the data volume; otherwise /health is 503 above this fraction.
    readiness_max_disk_use: float = 0.0
    #: 0 = the log file grows without bound (the incident); otherwise rotate at this size.
    log_max_bytes: int = 0
    #: Rotated log files kept next to the live one (only with log_max_bytes > 0).
    log_backups: int = 2

    # -- the catalog's price cache (cache-stampede incident)
    catalog_cache_ttl_ms: int = 60_000
    #: none (the incident: every miss recomputes) | single-flight | stale-while-revalidate
    #: | early-refresh (XFetch).
    catalog_cache_strategy: str = "none"
    #: stale-while-revalidate only: how long past its expiry a value may still be served.
    catalog_cache_max_stale_ms: int = 60_000
    #: early-refresh only: XFetch's beta (>1 refreshes earlier, <1 later).
    catalog_xfetch_beta: float = 1.0

    @property
    def acquire_timeout_s(self) -> float | None:
        return self.db_acquire_timeout_ms / 1000 if self.db_acquire_timeout_ms > 0 else None

    @property
    def session_ttl_s(self) -> float:
        return self.session_ttl_ms / 1000

    @property
    def server_settings(self) -> dict[str, str]:
        """Postgres session settings for every pool connection (values must be str)."""
        if self.db_statement_timeout_ms > 0:
            return {"statement_timeout": f"{self.db_statement_timeout_ms}ms"}
        return {}

    def public(self) -> dict[str, Any]:
        """The config as logged at start-up: no secrets (the DSN password is masked)."""
        return {
            "CHECKOUT_HOST": self.host,
            "CHECKOUT_PORT": self.port,
            "CHECKOUT_INSTANCE": self.instance,
            "DATABASE_URL": redact_dsn(self.database_url),
            "DB_POOL_MIN": self.db_pool_min,
            "DB_POOL_MAX": self.db_pool_max,
            "DB_ACQUIRE_TIMEOUT_MS": self.db_acquire_timeout_ms,
            "DB_STATEMENT_TIMEOUT_MS": self.db_statement_timeout_ms,
            "DB_ERRORS_AS_503": self.db_errors_as_503,
            "RETRY_AFTER_S": self.retry_after_s,
            "READINESS_MAX_POOL_USE": self.readiness_max_pool_use,
            "READINESS_POOL_GRACE_MS": self.readiness_pool_grace_ms,
            "SESSION_TTL_MS": self.session_ttl_ms,
            "SHUTDOWN_TIMEOUT_S": self.shutdown_timeout_s,
            **self.payments.public(),
            **self.config_checks.public(),
            "DATA_DIR": self.data_dir,
            "DEGRADE_RECEIPT_WRITES": self.degrade_receipt_writes,
            "WRITE_FAILURE_LOG_INTERVAL_MS": self.write_failure_log_interval_ms,
            "READINESS_MAX_DISK_USE": self.readiness_max_disk_use,
            "LOG_MAX_BYTES": self.log_max_bytes,
            "LOG_BACKUPS": self.log_backups,
            "CATALOG_CACHE_TTL_MS": self.catalog_cache_ttl_ms,
            "CATALOG_CACHE_STRATEGY": self.catalog_cache_strategy,
            "CATALOG_CACHE_MAX_STALE_MS": self.catalog_cache_max_stale_ms,
            "CATALOG_XFETCH_BETA": self.catalog_xfetch_beta,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CheckoutConfig:
        """Parse and validate; raises `ConfigError` on the first bad key, in the order below."""
        r = EnvReader(env)
        host = r.string("CHECKOUT_HOST", "127.0.0.1")
        port = r.integer("CHECKOUT_PORT", minimum=1, maximum=65535)
        instance = r.string("CHECKOUT_INSTANCE", "checkout-1")
        database_url = r.postgres_dsn("DATABASE_URL")
        pool_max = r.integer("DB_POOL_MAX", 10, minimum=1, maximum=1000)
        # The default minimum follows a small maximum so DB_POOL_MAX=1 alone is valid.
        pool_min = r.integer("DB_POOL_MIN", min(2, pool_max), minimum=0, maximum=pool_max)
        return cls(
            host=host,
            port=port,
            instance=instance,
            database_url=database_url,
            db_pool_min=pool_min,
            db_pool_max=pool_max,
            db_acquire_timeout_ms=r.integer("DB_ACQUIRE_TIMEOUT_MS", 0),
            db_statement_timeout_ms=r.integer("DB_STATEMENT_TIMEOUT_MS", 0),
            db_errors_as_503=r.boolean("DB_ERRORS_AS_503", False),
            retry_after_s=r.integer("RETRY_AFTER_S", 1, minimum=0, maximum=86400),
            readiness_max_pool_use=r.number(
                "READINESS_MAX_POOL_USE", 0.0, minimum=0.0, maximum=1.0
            ),
            session_ttl_ms=r.integer("SESSION_TTL_MS", 1500, minimum=1),
            shutdown_timeout_s=r.number("SHUTDOWN_TIMEOUT_S", 5.0, minimum=0.0, maximum=3600.0),
            readiness_pool_grace_ms=r.integer(
                "READINESS_POOL_GRACE_MS", 1000, minimum=0, maximum=600_000
            ),
            payments=PaymentSettings.from_env(r),
            config_checks=ConfigChecks.from_env(r),
            data_dir=r.writable_directory("DATA_DIR"),
            degrade_receipt_writes=r.boolean("DEGRADE_RECEIPT_WRITES", False),
            write_failure_log_interval_ms=r.integer(
                "WRITE_FAILURE_LOG_INTERVAL_MS", 10_000, minimum=1, maximum=3_600_000
            ),
            readiness_max_disk_use=r.number(
                "READINESS_MAX_DISK_USE", 0.0, minimum=0.0, maximum=1.0
            ),
            # Python's RotatingFileHandler never rotates with 0 backups, so at least one.
            log_max_bytes=r.integer("LOG_MAX_BYTES", 0, minimum=0, maximum=2**40),
            log_backups=r.integer("LOG_BACKUPS", 2, minimum=1, maximum=100),
            catalog_cache_ttl_ms=r.integer("CATALOG_CACHE_TTL_MS", 60_000, minimum=1),
            catalog_cache_strategy=r.choice(
                "CATALOG_CACHE_STRATEGY", "none", CACHE_STRATEGIES
            ),
            catalog_cache_max_stale_ms=r.integer("CATALOG_CACHE_MAX_STALE_MS", 60_000),
            catalog_xfetch_beta=r.number(
                "CATALOG_XFETCH_BETA", 1.0, minimum=0.01, maximum=100.0
            ),
        )


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """The payment step: where the gateway is, and every resilience switch around it.

    Unset `PAYMENT_URL` means no payment step (orders are confirmed unpaid), which only the
    database-only tests use; the lab's stacks always set it. `PAYMENT_API_KEY` is not kept
    here: the incident's client reads it from the environment where it uses it.
    """

    url: str | None = None
    #: Per-attempt timeout; 0 = none (the incident's client waits forever).
    timeout_ms: int = 0
    #: Extra attempts after a failure (timeouts, resets, 5xx); 0 = none.
    retries: int = 0
    #: Base of the full-jitter exponential backoff between attempts.
    retry_backoff_ms: int = 50
    #: Send an `Idempotency-Key` (the checkout's order reference) with every attempt.
    idempotency_keys: bool = False
    #: Gateway failures answer 503 + Retry-After instead of a 500.
    errors_as_503: bool = False
    breaker: bool = False
    breaker_failures: int = 5
    breaker_reset_ms: int = 2000
    #: On a gateway failure, accept the order as payment pending (202) for later capture.
    fallback: bool = False
    #: The anti-pattern: turn a gateway failure into a 200 whose body says it failed.
    swallow_errors: bool = False

    @classmethod
    def from_env(cls, r: EnvReader) -> PaymentSettings:
        url = r.raw("PAYMENT_URL")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError("PAYMENT_URL", "an http:// or https:// URL", url)
        settings = cls(
            url=url,
            timeout_ms=r.integer("PAYMENT_TIMEOUT_MS", 0, maximum=600_000),
            retries=r.integer("PAYMENT_RETRIES", 0, maximum=10),
            retry_backoff_ms=r.integer("PAYMENT_RETRY_BACKOFF_MS", 50, minimum=1,
                                       maximum=60_000),
            idempotency_keys=r.boolean("PAYMENT_IDEMPOTENCY_KEYS", False),
            errors_as_503=r.boolean("PAYMENT_ERRORS_AS_503", False),
            breaker=r.boolean("PAYMENT_BREAKER", False),
            breaker_failures=r.integer("PAYMENT_BREAKER_FAILURES", 5, minimum=1, maximum=1000),
            breaker_reset_ms=r.integer("PAYMENT_BREAKER_RESET_MS", 2000, minimum=1,
                                       maximum=3_600_000),
            fallback=r.boolean("PAYMENT_FALLBACK", False),
            swallow_errors=r.boolean("PAYMENT_SWALLOW_ERRORS", False),
        )
        if settings.fallback and settings.swallow_errors:
            raise ConfigError("PAYMENT_SWALLOW_ERRORS",
                              "false when PAYMENT_FALLBACK is on (one failure policy)", "true")
        return settings

    def public(self) -> dict[str, Any]:
        return {
            "PAYMENT_URL": self.url,
            "PAYMENT_TIMEOUT_MS": self.timeout_ms,
            "PAYMENT_RETRIES": self.retries,
            "PAYMENT_RETRY_BACKOFF_MS": self.retry_backoff_ms,
            "PAYMENT_IDEMPOTENCY_KEYS": self.idempotency_keys,
            "PAYMENT_ERRORS_AS_503": self.errors_as_503,
            "PAYMENT_BREAKER": self.breaker,
            "PAYMENT_BREAKER_FAILURES": self.breaker_failures,
            "PAYMENT_BREAKER_RESET_MS": self.breaker_reset_ms,
            "PAYMENT_FALLBACK": self.fallback,
            "PAYMENT_SWALLOW_ERRORS": self.swallow_errors,
        }


class RequiredVariableMissing(ConfigError):
    """A variable the service cannot work without is unset (start-up validation)."""

    def __init__(self, var: str) -> None:
        super().__init__(var, "a value (required)", None)
        self.args = (f"STARTUP_FAILURE: required environment variable '{var}' is not set",)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class ConfigChecks:
    """What the service does about required variables that are missing.

    Required: `PAYMENT_API_KEY` whenever `PAYMENT_URL` is set. With neither switch (the
    incident) a missing key goes unnoticed until a checkout needs it.
    """

    #: Refuse to start: one `STARTUP_FAILURE` line, exit 2, before the port is bound.
    startup_validation: bool = False
    #: Start, but report the missing variables in /health with a 503 (not ready).
    readiness_checks_config: bool = False
    missing: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, r: EnvReader) -> ConfigChecks:
        missing = ("PAYMENT_API_KEY",) if (
            r.is_set("PAYMENT_URL") and not r.is_set("PAYMENT_API_KEY")) else ()
        checks = cls(
            startup_validation=r.boolean("STARTUP_VALIDATION", False),
            readiness_checks_config=r.boolean("READINESS_CHECKS_CONFIG", False),
            missing=missing,
        )
        if checks.startup_validation and missing:
            raise RequiredVariableMissing(missing[0])
        return checks

    def public(self) -> dict[str, Any]:
        return {"STARTUP_VALIDATION": self.startup_validation,
                "READINESS_CHECKS_CONFIG": self.readiness_checks_config,
                "MISSING_REQUIRED": list(self.missing)}
