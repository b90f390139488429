"""The router's health-check state: HAProxy's inter/fall/rise semantics."""

from __future__ import annotations

import pytest

from lab.services.checkout.config import ConfigError
from lab.services.router.__main__ import parse_backends
from lab.services.router.health import CheckRule, HealthState, check_passed


def run(state: HealthState, results: str) -> list[bool]:
    """Feed results ('+' pass, '-' fail); return UP after each."""
    out = []
    for r in results:
        state.record(r == "+")
        out.append(state.up)
    return out


def test_up_backend_goes_down_after_fall_consecutive_failures() -> None:
    s = HealthState(CheckRule(fall=3, rise=2), up=True)
    assert run(s, "--+--+---") == [True] * 8 + [False]


def test_down_backend_needs_rise_consecutive_passes() -> None:
    s = HealthState(CheckRule(fall=2, rise=3), up=False)
    assert run(s, "++-+++") == [False, False, False, False, False, True]
    assert s.checks == 6 and s.failed_checks == 1


def test_record_reports_transitions_only() -> None:
    s = HealthState(CheckRule(fall=1, rise=1), up=True)
    assert s.record(True) is False
    assert s.record(False) is True
    assert s.record(False) is False
    assert s.record(True) is True


def test_httpchk_pass_rule() -> None:
    assert check_passed(200) and check_passed(302)
    assert not check_passed(503) and not check_passed(404) and not check_passed(None)


def test_rule_and_backend_list_validation() -> None:
    with pytest.raises(ValueError):
        CheckRule(inter_s=0)
    assert parse_backends("a=http://127.0.0.1:1, b=http://127.0.0.1:2") == [
        ("a", "http://127.0.0.1:1"), ("b", "http://127.0.0.1:2")]
    with pytest.raises(ConfigError):
        parse_backends("a=127.0.0.1:1")
