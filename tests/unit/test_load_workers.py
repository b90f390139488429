"""Splitting the open model's schedule between workers and deciding how many (issue 22):
pure parts, no Locust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.load.arrivals import arrival_offsets, offsets_until, share
from lab.load.ceiling import (
    DEFAULT_CEILING_PER_S,
    Ceiling,
    read_ceiling,
    workers_for,
    write_ceiling,
)

C = Ceiling(5000.0, "test")


def test_workers_share_the_schedule_each_arrival_exactly_once() -> None:
    everything = offsets_until(300, "poisson", 7, 10.0)
    for n in (1, 2, 3):
        parts = [list(share(iter(everything), i, n)) for i in range(n)]
        assert sorted(o for part in parts for o in part) == everything
        assert all(len(p) >= len(everything) // n for p in parts)
    with pytest.raises(ValueError):
        list(share(arrival_offsets(10, "even", 1), 2, 2))


def test_auto_is_one_worker_for_every_shipped_rate_and_more_when_the_rate_needs_it() -> None:
    assert workers_for(223.0, "auto", C, cores=2) == 1  # cache-stampede's calibrated rate
    assert workers_for(7000.0, "auto", C, cores=2) == 2  # 4000/s each at 80 % of 5000
    assert workers_for(None, "auto", C, cores=2) == 1  # closed loop


def test_a_rate_the_workers_cannot_send_is_refused_naming_the_knob() -> None:
    with pytest.raises(ValueError, match=r"set load\.workers to 2"):
        workers_for(7000.0, 1, C, cores=2)
    with pytest.raises(ValueError, match="has 2 core"):
        workers_for(20000.0, "auto", C, cores=2)
    assert workers_for(7000.0, 1, C, cores=2, remote=1) == 1  # a remote worker helps


def test_the_ceiling_is_the_benchs_once_measured(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSLAB_CACHE_DIR", str(tmp_path))
    assert read_ceiling().per_worker_per_s == DEFAULT_CEILING_PER_S
    write_ceiling(6100.0)
    assert read_ceiling().per_worker_per_s == 6100.0
    assert json.loads((tmp_path / "generator.json").read_text())["source"].startswith(
        "make bench")
