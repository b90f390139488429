"""Typed, frozen configuration for the checkout service, parsed from the environment.

Every mitigation the lab proves is a switch here, so one codebase serves every variant and
the diff between baseline and a mitigation is a few environment variables. All values are
validated before the port is bound: a bad value is a `ConfigError` whose `str()` is the one
`STARTUP_FAILURE: <VAR>: expected <what>, got '<value>'` line the CLI prints before exiting 2.

What each variable is — type, default, bounds, the field it fills — lives in one table,
`switches.SWITCHES`, which the scenario loader reads too, so a scenario cannot set a value
the service would refuse. `from_env` and `public()` walk that table; a new key goes into
it and into the dataclass that holds its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.services.env import ConfigError as ConfigError
from lab.services.env import EnvReader as EnvReader
from lab.services.env import redact_dsn as redact_dsn

from .switches import CACHE_STRATEGIES as CACHE_STRATEGIES
from .switches import SWITCHES, read_switches


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
        """The config as logged at start-up, in table order: every switch it keeps (a
        secret it does not keep is not there), the DSN's password masked."""
        out: dict[str, Any] = {}
        for s in SWITCHES.values():
            if s.field:
                value = _attribute(self, s.field)
                out[s.name] = redact_dsn(value) if s.kind == "postgres_dsn" else value
        out["MISSING_REQUIRED"] = list(self.config_checks.missing)
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CheckoutConfig:
        """Parse and validate; raises `ConfigError` on the first bad key, in table order."""
        v = read_switches(env)
        return cls(**_fields(v, ""), payments=PaymentSettings.from_values(v),
                   config_checks=ConfigChecks.from_values(v))


def _fields(values: Mapping[str, Any], under: str) -> dict[str, Any]:
    """`read_switches`' values by the field each fills: top-level ones (`under` = ""), or
    those of one nested settings object ("payments")."""
    out = {}
    for s in SWITCHES.values():
        owner, _, name = s.field.rpartition(".")
        if s.field and owner == under:
            out[name] = values[s.name]
    return out


def _attribute(obj: object, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


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
        return cls(**_fields(v, "payments"))


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
        checks = cls(**_fields(v, "config_checks"), missing=missing)
        if checks.startup_validation and missing:
            raise RequiredVariableMissing(missing[0])
        return checks
