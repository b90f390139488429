"""The checkout's payment and config-check switches: defaults, parsing, refusals."""

from __future__ import annotations

import pytest

from lab.services.checkout.config import CheckoutConfig, ConfigError, RequiredVariableMissing

BASE = {"CHECKOUT_PORT": "8080", "DATABASE_URL": "postgresql://lab@127.0.0.1:5432/shop"}


def parse(**env: str) -> CheckoutConfig:
    return CheckoutConfig.from_env({**BASE, **env})


def test_baseline_defaults_are_the_incidents_client() -> None:
    p = parse(PAYMENT_URL="http://127.0.0.1:9", PAYMENT_API_KEY="k").payments
    assert (p.timeout_ms, p.retries, p.idempotency_keys, p.breaker) == (0, 0, False, False)
    assert (p.errors_as_503, p.fallback, p.swallow_errors) == (False, False, False)
    assert parse().payments.url is None  # no payment step at all


def test_switches_parse() -> None:
    c = parse(PAYMENT_URL="http://127.0.0.1:9/", PAYMENT_API_KEY="k",
              PAYMENT_TIMEOUT_MS="800", PAYMENT_RETRIES="3", PAYMENT_RETRY_BACKOFF_MS="25",
              PAYMENT_IDEMPOTENCY_KEYS="yes", PAYMENT_ERRORS_AS_503="1",
              PAYMENT_BREAKER="true", PAYMENT_BREAKER_FAILURES="4",
              PAYMENT_BREAKER_RESET_MS="1500", PAYMENT_FALLBACK="true")
    p = c.payments
    assert (p.timeout_ms, p.retries, p.retry_backoff_ms) == (800, 3, 25)
    assert p.idempotency_keys and p.errors_as_503 and p.breaker and p.fallback
    assert (p.breaker_failures, p.breaker_reset_ms) == (4, 1500)
    assert c.public()["PAYMENT_BREAKER_RESET_MS"] == 1500
    assert "PAYMENT_API_KEY" not in c.public()  # a secret is never logged


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("PAYMENT_URL", "127.0.0.1:9", "an http:// or https:// URL"),
    ("PAYMENT_TIMEOUT_MS", "-1", "an integer in 0..600000"),
    ("PAYMENT_RETRIES", "11", "an integer in 0..10"),
    ("PAYMENT_BREAKER", "maybe", "one of true/false/1/0/yes/no"),
    ("PAYMENT_BREAKER_FAILURES", "0", "an integer in 1..1000"),
])
def test_bad_values_name_the_variable(var: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(**{"PAYMENT_URL": "http://127.0.0.1:9", var: value})
    assert str(err.value) == f"STARTUP_FAILURE: {var}: expected {expected}, got '{value}'"


def test_fallback_and_swallowing_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="PAYMENT_SWALLOW_ERRORS"):
        parse(PAYMENT_FALLBACK="true", PAYMENT_SWALLOW_ERRORS="true")


def test_missing_key_is_noticed_only_by_the_switches() -> None:
    checks = parse(PAYMENT_URL="http://127.0.0.1:9").config_checks
    assert checks.missing == ("PAYMENT_API_KEY",)
    assert not checks.startup_validation and not checks.readiness_checks_config
    gated = parse(PAYMENT_URL="http://127.0.0.1:9", READINESS_CHECKS_CONFIG="true")
    assert gated.config_checks.readiness_checks_config
    with pytest.raises(RequiredVariableMissing) as err:
        parse(PAYMENT_URL="http://127.0.0.1:9", STARTUP_VALIDATION="true")
    assert str(err.value) == (
        "STARTUP_FAILURE: required environment variable 'PAYMENT_API_KEY' is not set")
    # An empty value counts as unset (as `FOO=` in a compose file does).
    with pytest.raises(RequiredVariableMissing):
        parse(PAYMENT_URL="http://127.0.0.1:9", PAYMENT_API_KEY=" ", STARTUP_VALIDATION="1")
    assert parse(PAYMENT_URL="http://127.0.0.1:9", PAYMENT_API_KEY="k",
                 STARTUP_VALIDATION="1").config_checks.missing == ()
