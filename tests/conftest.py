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


#: A unit test's deadline (pyproject's `timeout` is the integration tests' default): a unit
#: test starts no services, so one that runs this long hangs.
UNIT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
        elif item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))


#: What a CI variable says when it says "not CI"; anything else set (true, 1, yes, a
#: runner's own word) is CI: a gate that cannot tell fails closed.
_NOT_CI = {"", "false", "0", "no", "off", "n"}


def under_ci(value: str | None = None) -> bool:
    """Whether `CI` (the environment's, or `value`) is set to something truthy: `true`,
    `1`, `yes` in any case. Runners disagree on the spelling (CI=true, CI=1), and a check
    for exactly `true` silently turned the skips-are-failures rule off under CI=1."""
    text = os.environ.get("CI") if value is None else value
    return text is not None and text.strip().lower() not in _NOT_CI


def docker_client_or_skip(*, compose: bool = False) -> object:
    """A Docker engine with the lab's current images (and Compose, with `compose`): skip
    with the reason where there is none, fail under CI, which prepares them (.ci/run)."""
    from lab.errors import BackendError
    from lab.stack.docker import engine
    from lab.stack.docker.user_compose import compose_command
    from lab.stack.images import check_images

    try:
        client = engine()
        check_images(client)
        if compose:
            compose_command()
    except BackendError as exc:
        needs = "the docker backend" + (" with Compose" if compose else "")
        if under_ci():
            pytest.fail(f"CI must run {needs}: {exc}")
        pytest.skip(f"{needs} unavailable here: {exc}")
    return client


# Under CI a skip is a failure: CI installs what every test needs (.ci/run), so a test
# that skips there has silently stopped running. The one exception is a check whose tool
# cannot be installed on this kind of machine at all; it says so with this marker.
CI_MAY_SKIP = "ci_may_skip"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{CI_MAY_SKIP}(why): may skip under CI; `why` says what cannot be installed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if (under_ci() and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker(CI_MAY_SKIP) is None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every test must run: {reason}"
