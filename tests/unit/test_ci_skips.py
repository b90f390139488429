"""Under CI a skipped test fails, so a check cannot silently stop running there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_TESTS = '''
import pytest

def test_skips():
    pytest.skip("no tool here")

@pytest.mark.ci_may_skip("cannot be installed on this kind of machine")
def test_may_skip():
    pytest.skip("not installable")
'''


def _run(tmp_path: Path, ci: str | None) -> str:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_configure, pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_sample.py").write_text(_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:locust",
         "-rA", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60)
    return proc.stdout


def test_a_skip_fails_under_ci(tmp_path: Path) -> None:
    out = _run(tmp_path, "true")
    assert "1 failed, 1 skipped" in out, out
    assert "skipped under CI, where every test must run" in out and "no tool here" in out


def test_a_skip_is_a_skip_elsewhere(tmp_path: Path) -> None:
    out = _run(tmp_path, None)
    assert "2 skipped" in out and "failed" not in out, out
