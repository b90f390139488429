"""Every environment variable the checkout service reads, as one table.

The service's start-up check (`config.py`: `from_env` and the logged `public()` both walk
it) and the scenario loader (`lab.scenario.loader`) read through this table, so they cannot
disagree: a value the service would refuse is refused when the scenario is loaded, in the
same words, and a misspelt switch is an error instead of a mitigation silently left off.
The README's table of switches is rendered from it too (`python -m
lab.services.checkout.switches --markdown`; a unit test compares the two). Standard library
only: the loader imports this module and must not pull in aiohttp or asyncpg.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from lab.services.env import INT32_MAX as INT32_MAX
from lab.services.env import ConfigError as ConfigError
from lab.services.env import Switch as Switch
from lab.services.env import raw_value
from lab.services.env import redact_dsn as redact_dsn

#: Kept here (not in cache.py) so a bad value is rejected before anything heavy is imported.
CACHE_STRATEGIES = ("none", "single-flight", "stale-while-revalidate", "early-refresh")
_LAB = "the backend sets it on every checkout instance"
_WIRING = ("the lab wires every checkout to the gateway through the fault proxy; "
           "to deploy without it, use the rolling-deploy fault's `unset`")

#: In the order the service checks them, so the first bad value is reported first.
SWITCHES: dict[str, Switch] = {s.name: s for s in (
    Switch("CHECKOUT_HOST", "string", "127.0.0.1", "address to bind", set_by_lab=_LAB,
           field="host"),
    Switch("CHECKOUT_PORT", "integer", None, "port to bind", minimum=1, maximum=65535,
           required=True, set_by_lab=_LAB, field="port"),
    Switch("CHECKOUT_INSTANCE", "string", "checkout-1", "instance name in logs and X-Instance",
           set_by_lab=_LAB, field="instance"),
    Switch("DATABASE_URL", "postgres_dsn", None, "the Postgres DSN", required=True,
           set_by_lab=_LAB, field="database_url"),
    Switch("DB_POOL_MAX", "integer", 10, "asyncpg pool size (maximum)", minimum=1,
           maximum=1000, field="db_pool_max", joins="DB_POOL_MIN"),
    Switch("DB_POOL_MIN", "integer", 2, "asyncpg pool size (minimum; at most DB_POOL_MAX)",
           maximum=1000, field="db_pool_min",
           readme="asyncpg pool size"),
    Switch("DB_ACQUIRE_TIMEOUT_MS", "integer", 0,
           "how long a request waits for a pool connection; 0 = forever",
           field="db_acquire_timeout_ms", shown="0 (wait forever)",
           readme="how long a request waits for a pool connection"),
    Switch("DB_STATEMENT_TIMEOUT_MS", "integer", 0, "Postgres statement_timeout; 0 = none",
           field="db_statement_timeout_ms", shown="0 (none)",
           readme="Postgres `statement_timeout` for the pool's connections"),
    Switch("DB_ERRORS_AS_503", "boolean", False,
           "known database failures answer 503 + Retry-After instead of 500",
           field="db_errors_as_503",
           readme="known database failures (acquire timeout, statement timeout, connection "
                  "errors) answer 503 + `Retry-After` with a problem+json body; when false they "
                  "are 500s like any bug"),
    Switch("RETRY_AFTER_S", "integer", 1, "the Retry-After value", maximum=86400,
           field="retry_after_s",
           readme="the `Retry-After` value"),
    Switch("READINESS_MAX_POOL_USE", "number", 0.0,
           "/health 503 above this pool use (a share); 0 = off", maximum=1.0,
           field="readiness_max_pool_use", shown="0 (off)",
           readme="`/health` answers 503 once pool use has stayed above this share (e.g. 0.8), "
                  "or requests have kept waiting for a connection, for `READINESS_POOL_GRACE_MS`"),
    Switch("SESSION_TTL_MS", "integer", 1500, "cart session lifetime", minimum=1,
           field="session_ttl_ms",
           readme="cart session lifetime (production's 30 minutes, compressed)"),
    Switch("SHUTDOWN_TIMEOUT_S", "number", 5.0,
           "how long SIGTERM waits for requests in flight", maximum=3600.0,
           field="shutdown_timeout_s",
           readme="how long a SIGTERM waits for requests in flight before cancelling them"),
    Switch("READINESS_POOL_GRACE_MS", "integer", 1000,
           "how long pool pressure must last before /health fails", maximum=600_000,
           field="readiness_pool_grace_ms",
           readme="how long pool pressure (`READINESS_MAX_POOL_USE`) must last without a "
                  "break before `/health` fails: a burst that drains sooner is not an "
                  "overload, and failing on it makes the router flap "
                  "(`checkout_db_pool_pressure_seconds` shows the current stretch)"),
    Switch("PAYMENT_URL", "http_url", None, "the payment gateway; unset = no payment step",
           set_by_lab=_WIRING, field="payments.url", shown="unset (no payment step)",
           readme="the payment gateway (the lab points it at the fault proxy); the charge "
                  "happens between the inventory check and the order insert, while the request "
                  "holds its pool connection"),
    Switch("PAYMENT_API_KEY", "string", None, "the gateway's key, read where it is used",
           set_by_lab=_WIRING, shown="—",
           readme="the gateway's key; the incident's client reads it from the environment where "
                  "it uses it, so a missing key is a `KeyError` at the first checkout"),
    Switch("PAYMENT_TIMEOUT_MS", "integer", 0, "timeout of one gateway call; 0 = none",
           maximum=600_000, field="payments.timeout_ms", shown="0 (none)",
           readme="timeout of one call to the gateway"),
    Switch("PAYMENT_RETRIES", "integer", 0, "extra attempts after a gateway failure",
           maximum=10, field="payments.retries",
           readme="extra attempts after a gateway failure (timeout, reset, 5xx), with "
                  "full-jitter exponential backoff from this base (tenacity)"),
    Switch("PAYMENT_RETRY_BACKOFF_MS", "integer", 50, "base of the full-jitter backoff",
           minimum=1, maximum=60_000, field="payments.retry_backoff_ms", joins="PAYMENT_RETRIES"),
    Switch("PAYMENT_IDEMPOTENCY_KEYS", "boolean", False,
           "send an Idempotency-Key with every attempt",
           field="payments.idempotency_keys",
           readme="send the checkout's `Idempotency-Key` with every attempt, so a retried charge "
                  "is answered with the original"),
    Switch("PAYMENT_ERRORS_AS_503", "boolean", False,
           "gateway failures answer 503 + Retry-After instead of 500",
           field="payments.errors_as_503",
           readme="gateway failures answer 503 + `Retry-After`; when false they are 500s like "
                  "any bug"),
    Switch("PAYMENT_BREAKER", "boolean", False, "a circuit breaker on the gateway",
           field="payments.breaker",
           readme="a circuit breaker on the gateway: opens after that many failures in a row; "
                  "while open, arriving checkouts are refused *before* they take a pool "
                  "connection (503 + `Retry-After` = time left, `reason: breaker_open`; a "
                  "request admitted before the breaker opened and refused at its payment step "
                  "says `breaker_open_after_wait`); half-open after the reset time with one "
                  "trial call, which closes or reopens it. State in `/health` (reported, not "
                  "gated on: an open breaker must not take every instance out of rotation) and "
                  "`/metrics` (`checkout_breaker_open`, `_half_open`, `_opened`, `_closed`, "
                  "`_rejected`)"),
    Switch("PAYMENT_BREAKER_FAILURES", "integer", 5, "failures in a row that open it",
           minimum=1, maximum=1000, field="payments.breaker_failures", joins="PAYMENT_BREAKER"),
    Switch("PAYMENT_BREAKER_RESET_MS", "integer", 2000, "open this long before half-open",
           minimum=1, maximum=3_600_000, field="payments.breaker_reset_ms",
           joins="PAYMENT_BREAKER"),
    Switch("PAYMENT_FALLBACK", "boolean", False, "a failed payment is accepted as pending",
           field="payments.fallback",
           readme='a failed payment accepts the order as payment pending: 202 `{"status": '
                  '"payment_pending"}`, the order and its entry in the `payment_captures` queue '
                  "written in one transaction"),
    Switch("PAYMENT_SWALLOW_ERRORS", "boolean", False,
           "the anti-pattern: a failed payment answered 200",
           field="payments.swallow_errors",
           readme='the anti-pattern: a failed payment answered 200 `{"status": "failed", '
                  '"error": …}` — the lab counts it as a lying 200'),
    Switch("STARTUP_VALIDATION", "boolean", False,
           "refuse to start when a required variable is missing",
           field="config_checks.startup_validation",
           readme="refuse to start when a required variable (`PAYMENT_API_KEY` when "
                  "`PAYMENT_URL` is set) is missing: `STARTUP_FAILURE: required environment "
                  "variable 'PAYMENT_API_KEY' is not set`, exit 2, before the port is bound"),
    Switch("READINESS_CHECKS_CONFIG", "boolean", False,
           "/health 503 while a required variable is missing",
           field="config_checks.readiness_checks_config",
           readme="start, but `/health` answers 503 with the missing variables listed "
                  "(`checks.config`)"),
    Switch("DATA_DIR", "directory", None, "where receipts and the log file go; unset = none",
           field="data_dir", shown="unset (no receipts, no log file)",
           readme="an existing writable directory: a receipt per order is appended to "
                  "`receipts.jsonl` (all or nothing) after the order is committed, and one log "
                  "line per API request (headers included, secrets redacted) goes to "
                  "`checkout.log`"),
    Switch("DEGRADE_RECEIPT_WRITES", "boolean", False,
           "a receipt that cannot be written does not fail the order",
           field="degrade_receipt_writes",
           readme="when a receipt cannot be written (ENOSPC…): false — the error reaches the "
                  "global handler and the client gets a 500 for an order that exists; true — the "
                  'receipt is non-critical, the answer is 201 with `"degraded": true` (an honest '
                  "fallback)"),
    Switch("WRITE_FAILURE_LOG_INTERVAL_MS", "integer", 10_000,
           "log failed data-directory writes at most once per interval", minimum=1,
           maximum=3_600_000, field="write_failure_log_interval_ms",
           readme="failed data-directory writes are counted in `/metrics` on every failure but "
                  "logged at most once per interval, as one line with the count (a full disk "
                  "must not be filled further by its own error logs)"),
    Switch("READINESS_MAX_DISK_USE", "number", 0.0,
           "/health 503 above this data-volume use (a share); 0 = off", maximum=1.0,
           field="readiness_max_disk_use", shown="0 (off)",
           readme="`/health` answers 503 while the data volume is more than this share used "
                  "(e.g. 0.95)"),
    Switch("LOG_MAX_BYTES", "integer", 0, "rotate checkout.log at this size; 0 = never",
           maximum=2**40, field="log_max_bytes", shown="0 (unbounded)",
           readme="rotate `checkout.log` at this size, keeping this many backups (logging's "
                  "`RotatingFileHandler`; at least 1 backup, since it never rotates with 0)"),
    # Python's RotatingFileHandler never rotates with 0 backups, so at least one.
    Switch("LOG_BACKUPS", "integer", 2, "rotated log files kept", minimum=1, maximum=100,
           field="log_backups", joins="LOG_MAX_BYTES"),
    Switch("CATALOG_CACHE_TTL_MS", "integer", 60_000, "how long the catalog stays fresh",
           minimum=1, field="catalog_cache_ttl_ms",
           readme="how long the catalog's price list stays fresh in the in-process cache (warmed "
                  "before the port is bound)"),
    Switch("CATALOG_CACHE_STRATEGY", "choice", "none", "what requests do when it expires",
           choices=CACHE_STRATEGIES, field="catalog_cache_strategy",
           readme="what requests do when it expires: `none` (every miss recomputes — the "
                  "stampede), `single-flight` (one recompute per key, the others await it), "
                  "`stale-while-revalidate` (serve the expired value while one task refreshes), "
                  "`early-refresh` (XFetch, one early refresh per key at a time)"),
    Switch("CATALOG_CACHE_MAX_STALE_MS", "integer", 60_000,
           "stale-while-revalidate: how long past expiry a value may be served",
           field="catalog_cache_max_stale_ms",
           readme="stale-while-revalidate: how long past expiry a value may still be served"),
    Switch("CATALOG_XFETCH_BETA", "number", 1.0, "early-refresh: XFetch's beta",
           minimum=0.01, maximum=100.0, field="catalog_xfetch_beta", shown="1.0",
           readme="early-refresh: recompute when `now - delta * beta * ln(rand()) >= expiry` "
                  "(`delta` = the last recompute's duration); larger refreshes earlier"),
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


def readme_rows() -> list[list[Switch]]:
    """The README's rows, in table order: each switch a scenario may set, and the lab's
    wiring a fault may unset; a switch that `joins` another shares its row."""
    shown = [s for s in SWITCHES.values() if s.set_by_lab in (None, _WIRING)]
    return [[head, *(s for s in shown if s.joins == head.name)]
            for head in shown if not head.joins]


def markdown_table() -> str:
    """The README's table of the checkout's switches, rendered from SWITCHES."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for row in readme_rows():
        names = " / ".join(f"`{s.name}`" for s in row)
        defaults = " / ".join(s.shown_default for s in row)
        lines.append(f"| {names} | {defaults} | {row[0].readme or row[0].doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m lab.services.checkout.switches --markdown")
    sys.stdout.write(markdown_table())
