"""The missing-env-var incident end to end: a real rolling deploy through the router, the
new process really started without PAYMENT_API_KEY, the shipped scenario file."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.lab_cli import run_lab, variants

STARTUP_LINE = "STARTUP_FAILURE: required environment variable 'PAYMENT_API_KEY' is not set"


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], str]:
    """All three variants in one `lab run` (~2 min)."""
    runs_root = Path(f"/tmp/chaoslab-test-{secrets.token_hex(4)}")
    out = tmp_path_factory.mktemp("deploy") / "results.json"
    proc = run_lab(["run", "missing-env-var", "--json", str(out), "--quiet"], runs_root)
    leftovers = list(runs_root.iterdir()) if runs_root.exists() else []
    shutil.rmtree(runs_root, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leftovers == []
    return variants(out), proc.stdout


def test_baseline_deploy_goes_through_and_every_checkout_fails(
    deploy: tuple[dict[str, dict[str, Any]], str],
) -> None:
    v = deploy[0]["baseline"]
    facts = v["evidence"]["facts"]
    # The variable was really absent from the new process's environment (/proc/PID/environ).
    assert facts["environ_read_from_process"] is True and facts["variables_absent"] is True
    assert facts["deploy"] == "completed"
    assert [r["instance"] for r in facts["deploy_retired"]] == ["checkout-1"]
    assert facts["rollback"] == "completed"
    # Which instance served what: the old one before, the new one's answers were all 500s.
    fault = v["windows"]["fault"]
    assert v["windows"]["before"]["by_instance"] == {"checkout-1": v["windows"]["before"]["total"]}
    assert fault["by_instance"]["checkout-2"] >= 100
    assert fault["by_status"]["500"] >= fault["by_instance"]["checkout-2"] * 0.99
    # The 500s are a KeyError at request time, in the payment client.
    top = v["signatures"][0]
    assert top["exception"] == "KeyError" and "_api_key" in top["frame"]
    assert top["count"] == fault["by_status"]["500"] + v["windows"]["after"]["by_status"].get(
        "500", 0)
    # The rollback restored service.
    assert set(v["windows"]["after"]["by_instance"]) >= {"checkout-3"}
    assert "served by:" in deploy[1]


def test_startup_validation_fails_the_deploy_and_keeps_the_old_instance(
    deploy: tuple[dict[str, dict[str, Any]], str],
) -> None:
    v = deploy[0]["startup-validation"]
    facts = v["evidence"]["facts"]
    assert facts["deploy"] == "failed"
    assert facts["deploy_exit_code"] == 2
    assert facts["deploy_stderr_line"] == STARTUP_LINE
    assert facts["deploy_exited_after_s"] <= 1.0
    assert facts["variables_absent"] is True
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["by_instance"] == {"checkout-1": fault["total"]}
    assert v["passed"] is True


def test_readiness_gate_keeps_the_new_instance_out_of_rotation(
    deploy: tuple[dict[str, dict[str, Any]], str],
) -> None:
    v = deploy[0]["readiness-gate"]
    facts = v["evidence"]["facts"]
    assert facts["deploy"] == "failed"
    assert facts["deploy_last_health_check"] == "503"
    fault = v["windows"]["fault"]
    assert fault["by_status"].get("500", 0) == 0
    assert fault["by_instance"] == {"checkout-1": fault["total"]}
    assert v["passed"] is True
