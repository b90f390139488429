"""The checkout's disk and cache switches: validated, with the incident's behaviour as
the default, and the data directory's helpers (failure log rate limit, log rotation)."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import pytest

from lab.services.checkout.config import CheckoutConfig, ConfigError
from lab.services.checkout.datadir import DataDir, DiskUsage, WriteFailures
from lab.services.checkout.logs import JsonLog

ENV = {"CHECKOUT_PORT": "8080", "DATABASE_URL": "postgresql://lab@127.0.0.1:5432/shop"}


def test_defaults_are_the_incidents_behaviour() -> None:
    c = CheckoutConfig.from_env(ENV)
    assert c.data_dir is None
    assert c.degrade_receipt_writes is False
    assert c.readiness_max_disk_use == 0.0
    assert c.log_max_bytes == 0  # unbounded
    assert c.catalog_cache_strategy == "none"
    assert c.catalog_cache_ttl_ms == 60_000
    assert c.public()["CATALOG_CACHE_STRATEGY"] == "none"


@pytest.mark.parametrize(("env", "line"), [
    ({"CATALOG_CACHE_STRATEGY": "lru"},
     "STARTUP_FAILURE: CATALOG_CACHE_STRATEGY: expected one of none/single-flight/"
     "stale-while-revalidate/early-refresh, got 'lru'"),
    ({"LOG_BACKUPS": "0"}, "STARTUP_FAILURE: LOG_BACKUPS: expected an integer in 1..100, got '0'"),
    ({"READINESS_MAX_DISK_USE": "95"},
     "STARTUP_FAILURE: READINESS_MAX_DISK_USE: expected a number in 0..1, got '95'"),
    ({"CATALOG_XFETCH_BETA": "0"},
     "STARTUP_FAILURE: CATALOG_XFETCH_BETA: expected a number in 0.01..100, got '0'"),
    ({"DATA_DIR": "/nonexistent/chaoslab"},
     "STARTUP_FAILURE: DATA_DIR: expected an existing directory this process can write to, "
     "got '/nonexistent/chaoslab'"),
])
def test_bad_values_name_the_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        CheckoutConfig.from_env({**ENV, **env})
    assert str(info.value) == line


def test_strategy_is_case_insensitive_and_data_dir_accepted(tmp_path: Path) -> None:
    c = CheckoutConfig.from_env(
        {**ENV, "CATALOG_CACHE_STRATEGY": "Single-Flight", "DATA_DIR": str(tmp_path)})
    assert (c.catalog_cache_strategy, c.data_dir) == ("single-flight", str(tmp_path))


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_write_failures_are_counted_always_and_logged_once_per_interval() -> None:
    stream = io.StringIO()
    clock = FakeClock()
    failures = WriteFailures(JsonLog("checkout-1", stream), interval_s=10.0, clock=clock)
    enospc = OSError(errno.ENOSPC, "No space left on device")
    for i in range(500):  # 500 failures over 25 s: 5 per 0.25 s
        clock.now = i * 0.05
        failures.record("receipt", enospc)
    failures.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert failures.totals == {("receipt", "ENOSPC"): 500}
    assert len(lines) == 4  # at 0 s, 10 s, 20 s, and the final flush
    assert [line["failures"] for line in lines] == [1, 200, 200, 99]
    assert sum(line["failures"] for line in lines) == 500
    assert {line["event"] for line in lines} == {"data_write_failed"}
    assert lines[0]["reason"] == "ENOSPC"


def test_rotated_log_stays_bounded_and_unbounded_grows(tmp_path: Path) -> None:
    line = "x" * 500
    rotated_dir, unbounded_dir = tmp_path / "rotated", tmp_path / "unbounded"
    rotated_dir.mkdir()
    unbounded_dir.mkdir()
    log = JsonLog("checkout-1", io.StringIO())
    rotated = DataDir(str(rotated_dir), log=log, failure_interval_s=1, max_log_bytes=4096,
                      log_backups=2)
    unbounded = DataDir(str(unbounded_dir), log=log, failure_interval_s=1, max_log_bytes=0,
                        log_backups=2)
    for _ in range(200):
        rotated.log.write(line)
        unbounded.log.write(line)
    assert rotated.log_bytes_written == unbounded.log_bytes_written == 200 * 501
    assert rotated.log_bytes_on_disk() <= 3 * 4096
    assert sorted(p.name for p in rotated_dir.iterdir()) == [
        "checkout.log", "checkout.log.1", "checkout.log.2"]
    assert unbounded.log_bytes_on_disk() == 200 * 501
    rotated.close()
    unbounded.close()


def test_receipts_append_whole_lines_and_usage_reads_statvfs(tmp_path: Path) -> None:
    data = DataDir(str(tmp_path), log=JsonLog("c", io.StringIO()), failure_interval_s=1,
                   max_log_bytes=0, log_backups=1)
    for order in range(3):
        data.receipts.append({"order_id": order, "total_cents": 100})
    lines = (tmp_path / "receipts.jsonl").read_text().splitlines()
    assert [json.loads(x)["order_id"] for x in lines] == [0, 1, 2]
    assert data.receipts_written == 3
    usage = data.usage()
    assert usage.total > 0 and 0 <= usage.used <= 1
    assert DiskUsage(total=100, free=0).used == 1.0
    data.close()
