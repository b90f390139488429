"""Typed, frozen configuration for the checkout service, parsed from the environment.

Every mitigation the lab proves is a switch here, so one codebase serves every variant and
the diff between baseline and a mitigation is a few environment variables. All values are
validated before the port is bound: a bad value is a `ConfigError` whose `str()` is the one
`STARTUP_FAILURE: <VAR>: expected <what>, got '<value>'` line the CLI prints before exiting 2.

What each variable is — type, default, bounds — lives in one table, `switches.SWITCHES`,
which the scenario loader reads too, so a scenario cannot set a value the service would
refuse. A new key goes into that table, then into `CheckoutConfig` and `from_env`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .switches import CACHE_STRATEGIES as CACHE_STRATEGIES
from .switches import INT32_MAX, SWITCHES, Switch, raw_value, read_switches
from .switches import ConfigError as ConfigError
from .switches import redact_dsn as redact_dsn


class EnvReader:
    """Typed getters over an environment mapping; each raises `ConfigError` naming the key.

    The checkout's own variables are read with `switch(name)` from the table; the other
    services (router, proxy, gateway) describe theirs inline with the same parsers.
    Empty strings count as unset so `FOO=` in a compose file means "use the default".
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        return raw_value(self._env, name)

    def switch(self, name: str) -> Any:
        """A checkout variable, parsed as the table says."""
        return SWITCHES[name].read(self._env)

    def string(self, name: str, default: str | None = None, *, what: str = "a string") -> str:
        return str(Switch(name, "string", default, required=default is None, what=what)
                   .read(self._env))

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int = INT32_MAX,
    ) -> int:
        return int(Switch(name, "integer", default, minimum=minimum, maximum=maximum,
                          required=default is None).read(self._env))

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        return float(Switch(name, "number", default, minimum=minimum, maximum=maximum)
                     .read(self._env))


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
        """Parse and validate; raises `ConfigError` on the first bad key, in table order."""
        v = read_switches(env)
        return cls(
            host=v["CHECKOUT_HOST"],
            port=v["CHECKOUT_PORT"],
            instance=v["CHECKOUT_INSTANCE"],
            database_url=v["DATABASE_URL"],
            db_pool_min=v["DB_POOL_MIN"],
            db_pool_max=v["DB_POOL_MAX"],
            db_acquire_timeout_ms=v["DB_ACQUIRE_TIMEOUT_MS"],
            db_statement_timeout_ms=v["DB_STATEMENT_TIMEOUT_MS"],
            db_errors_as_503=v["DB_ERRORS_AS_503"],
            retry_after_s=v["RETRY_AFTER_S"],
            readiness_max_pool_use=v["READINESS_MAX_POOL_USE"],
            session_ttl_ms=v["SESSION_TTL_MS"],
            shutdown_timeout_s=v["SHUTDOWN_TIMEOUT_S"],
            readiness_pool_grace_ms=v["READINESS_POOL_GRACE_MS"],
            payments=PaymentSettings.from_values(v),
            config_checks=ConfigChecks.from_values(v),
            data_dir=v["DATA_DIR"],
            degrade_receipt_writes=v["DEGRADE_RECEIPT_WRITES"],
            write_failure_log_interval_ms=v["WRITE_FAILURE_LOG_INTERVAL_MS"],
            readiness_max_disk_use=v["READINESS_MAX_DISK_USE"],
            log_max_bytes=v["LOG_MAX_BYTES"],
            log_backups=v["LOG_BACKUPS"],
            catalog_cache_ttl_ms=v["CATALOG_CACHE_TTL_MS"],
            catalog_cache_strategy=v["CATALOG_CACHE_STRATEGY"],
            catalog_cache_max_stale_ms=v["CATALOG_CACHE_MAX_STALE_MS"],
            catalog_xfetch_beta=v["CATALOG_XFETCH_BETA"],
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
    def from_values(cls, v: Mapping[str, Any]) -> PaymentSettings:
        """From `read_switches`' values (which also refuse fallback with swallowing)."""
        return cls(
            url=v["PAYMENT_URL"],
            timeout_ms=v["PAYMENT_TIMEOUT_MS"],
            retries=v["PAYMENT_RETRIES"],
            retry_backoff_ms=v["PAYMENT_RETRY_BACKOFF_MS"],
            idempotency_keys=v["PAYMENT_IDEMPOTENCY_KEYS"],
            errors_as_503=v["PAYMENT_ERRORS_AS_503"],
            breaker=v["PAYMENT_BREAKER"],
            breaker_failures=v["PAYMENT_BREAKER_FAILURES"],
            breaker_reset_ms=v["PAYMENT_BREAKER_RESET_MS"],
            fallback=v["PAYMENT_FALLBACK"],
            swallow_errors=v["PAYMENT_SWALLOW_ERRORS"],
        )

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
    def from_values(cls, v: Mapping[str, Any]) -> ConfigChecks:
        missing = ("PAYMENT_API_KEY",) if (
            v["PAYMENT_URL"] is not None and v["PAYMENT_API_KEY"] is None) else ()
        checks = cls(
            startup_validation=v["STARTUP_VALIDATION"],
            readiness_checks_config=v["READINESS_CHECKS_CONFIG"],
            missing=missing,
        )
        if checks.startup_validation and missing:
            raise RequiredVariableMissing(missing[0])
        return checks

    def public(self) -> dict[str, Any]:
        return {"STARTUP_VALIDATION": self.startup_validation,
                "READINESS_CHECKS_CONFIG": self.readiness_checks_config,
                "MISSING_REQUIRED": list(self.missing)}
