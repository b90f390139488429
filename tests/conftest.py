"""Shared test set-up: every test's lab runs live in their own runs root, so a test can
assert that nothing of its own was left behind without seeing other runs."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def runs_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not under pytest's tmp_path: that is 0700 and the unprivileged Postgres user must
    # traverse the runs root.
    root = Path(f"/tmp/chaoslab-test-{secrets.token_hex(4)}")
    monkeypatch.setenv("CHAOSLAB_RUNS_ROOT", str(root))
    yield root
    leftovers = sorted(p.name for p in root.iterdir()) if root.exists() else []
    shutil.rmtree(root, ignore_errors=True)
    assert leftovers == [], f"runs left behind in {root}: {leftovers}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
