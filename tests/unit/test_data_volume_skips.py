"""Where no size-limited filesystem can be mounted, the disk-full scenario is skipped with
the reason — in the runner, the table and the results — never run against a fake."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from lab.report.table import render_table
from lab.run.runner import run_scenario, skip_reason
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.stack import data_volume
from lab.stack.local import LocalBackend
from lab.stack.wiring import stack_request


def test_missing_unshare_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_volume.shutil, "which",
                        lambda tool: None if tool == "unshare" else f"/usr/bin/{tool}")
    assert data_volume.unsupported_reason.__wrapped__() == (
        "no size-limited filesystem: `unshare` is not installed")


def test_a_refused_mount_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(argv: Sequence[str], mount_point: str, size: int, source: str) -> list[str]:
        return ["sh", "-c", "echo 'unshare: unshare failed: Operation not permitted' >&2; exit 1"]

    monkeypatch.setattr(data_volume, "wrap_argv", refused)
    reason = data_volume.unsupported_reason.__wrapped__()
    assert reason is not None
    assert reason.startswith("no size-limited filesystem: `unshare ")
    assert "(unshare: unshare failed: Operation not permitted)" in reason
    assert reason.endswith("it needs root or unprivileged user namespaces")


def test_scenario_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    disk = load_scenario_file(find_scenario("disk-full"))
    cache = load_scenario_file(find_scenario("cache-stampede"))
    monkeypatch.setattr(data_volume, "unsupported_reason", lambda: "no tmpfs here")
    backend = LocalBackend()
    assert stack_request(disk, "baseline", "cl-x").data_volume_bytes == 8 << 20
    assert skip_reason(disk, backend) == "no tmpfs here"
    assert skip_reason(cache, backend) is None  # needs no data volume
    results = asyncio.run(run_scenario(disk, ["baseline", "degrade-writes"], backend))
    assert results.variants == []
    assert results.to_json()["skipped"] == [{
        "scenario": "disk-full", "variants": ["baseline", "degrade-writes"],
        "reason": "no tmpfs here"}]
    table = render_table(results)
    assert "disk-full: SKIPPED (baseline, degrade-writes) — no tmpfs here" in table
    assert table.endswith("0 variant(s) run; 2 skipped: nothing ran.")


def test_mountinfo_parsing(tmp_path: Path) -> None:
    # The lab's own namespace never carries a lab tmpfs.
    assert list(data_volume.tagged_mounts("chaoslab-no-such-run")) == []
    assert data_volume.mountinfo_entry(1, "/no/such/mount/point") is None
    root = data_volume.mountinfo_entry(1, "/")
    assert root is not None and set(root) == {"fstype", "source", "options"}
