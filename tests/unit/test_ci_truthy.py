"""Any truthy CI turns skips into failures, however the runner spells it (CI=1 turned the
rule off when only exactly `true` counted), and .ci/run reads CI the same way."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import under_ci
from tests.unit.test_ci_skips import _run

REPO = Path(__file__).resolve().parents[2]
TRUTHY = ["true", "1", "yes", "TRUE", "True", "Yes", " 1 ", "on"]
FALSY = ["false", "0", "", "FALSE", "no", "off", " "]


@pytest.mark.parametrize("value", TRUTHY)
def test_truthy_ci(value: str) -> None:
    assert under_ci(value)


@pytest.mark.parametrize("value", FALSY)
def test_not_ci(value: str) -> None:
    assert not under_ci(value)


def test_unset_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert not under_ci()
    monkeypatch.setenv("CI", "1")
    assert under_ci()


def test_a_skip_fails_under_ci_1(tmp_path: Path) -> None:
    out = _run(tmp_path, "1")
    assert "1 failed, 1 skipped" in out, out


def test_a_skip_is_a_skip_under_ci_false(tmp_path: Path) -> None:
    out = _run(tmp_path, "false")
    assert "2 skipped" in out and "failed" not in out, out


def test_ci_run_reads_ci_as_conftest_does() -> None:
    script = (REPO / ".ci" / "run").read_text()
    [function] = re.findall(r"^ci_truthy\(\) \{.*\}$", script, re.M)
    assert "if ci_truthy; then" in script and '= "true" ]' not in script
    for value in TRUTHY + FALSY:
        code = subprocess.run(["bash", "-c", f"{function}\nci_truthy"],
                              env={"CI": value, "PATH": "/usr/bin:/bin"},
                              check=False).returncode
        assert (code == 0) == under_ci(value), repr(value)
