"""Validation of what the disk-full and cache-stampede scenarios added to the format:
stack.data_volume, the disk-fill and hot-key-expiry params, the catalog request kind and
metric 'increase' expectations. Every message names the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.scenario.loader import find_scenario, load_scenario_file
from lab.scenario.models import Expectation
from lab.scenario.units import format_size, parse_size
from tests.unit.scenario_docs import load, problems_of

BASE: dict[str, Any] = {
    "name": "demo",
    "title": "a demo",
    "description": "what happened",
    "stack": {"data_volume": {"size": "8MiB"}},
    "load": {"users": 5, "spawn_rate": 5, "duration": "20s",
             "endpoints": [{"request": "checkout"}, {"request": "catalog", "weight": 3}]},
    "fault": {"kind": "disk-fill", "at": "5s", "until": "10s"},
    "variants": {"baseline": {"expect": [{"window": "fault", "status": 500, "rate": ">= 10%"}]}},
}


def doc(**changes: Any) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        node = d
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return d




def test_data_volume_and_catalog_endpoint_load(tmp_path: Path) -> None:
    s = load(tmp_path, doc(fault__params={"leave_free": "384KiB"}))
    assert s.stack.data_volume.size == 8 * 1024 * 1024
    assert [e.request for e in s.load.endpoints] == ["checkout", "catalog"]
    assert s.fault.params == {"leave_free": "384KiB"}


@pytest.mark.parametrize(("size", "message"), [
    ("8MB", "stack.data_volume.size: expected a size like '8MiB', '512KiB' or a number of "
            "bytes, got '8MB'"),
    ("64KiB", "stack.data_volume.size: expected a size from 1MiB to 1GiB, e.g. '8MiB'; "
              "got 65536 bytes"),
    ("2GiB", "stack.data_volume.size: expected a size from 1MiB to 1GiB, e.g. '8MiB'; "
             "got 2147483648 bytes"),
    (True, "stack.data_volume.size: expected a size like '8MiB', '512KiB' or a number of bytes"),
])
def test_data_volume_size_is_validated(tmp_path: Path, size: Any, message: str) -> None:
    assert problems_of(tmp_path, doc(stack__data_volume__size=size)) == [message]


def test_data_volume_rejects_unknown_fields(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, doc(stack__data_volume={"size": "8MiB", "fs": "ext4"}))
    assert problem.startswith("stack.data_volume.fs: unknown field")


def test_disk_fill_needs_a_data_volume(tmp_path: Path) -> None:
    assert problems_of(tmp_path, doc(stack__data_volume=None)) == [
        "stack.data_volume: fault 'disk-fill' needs a size-limited filesystem to act on; "
        "add e.g. `data_volume: {size: 8MiB}` under stack"
    ]


def test_data_dir_is_the_labs_to_set(tmp_path: Path) -> None:
    d = doc(stack__config={"DATA_DIR": "/var/lib/x"})
    d["variants"]["baseline"]["config"] = {"DATA_DIR": "/elsewhere"}
    assert problems_of(tmp_path, d) == [
        "stack.config.DATA_DIR: set by stack.data_volume (the lab mounts the volume and "
        "points DATA_DIR at it); remove it",
        "variants.baseline.config.DATA_DIR: set by stack.data_volume (the lab mounts the "
        "volume and points DATA_DIR at it); remove it",
    ]


def test_disk_fill_params(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, doc(fault__params={"leave_free": "lots"}))
    assert problem == ("fault.params.leave_free: expected a size like '8MiB', '512KiB' or "
                       "a number of bytes, got 'lots'")
    [problem] = problems_of(tmp_path, doc(fault__params={"ballast": "1MiB"}))
    assert problem == ("fault.params.ballast: unknown parameter for fault 'disk-fill' "
                       "(known: leave_free)")


def test_hot_key_expiry_params(tmp_path: Path) -> None:
    d = doc(stack__data_volume=None, fault__kind="hot-key-expiry",
            fault__params={"expires_in": "3s"})
    assert load(tmp_path, d).fault.params == {"expires_in": "3s"}
    d["variants"]["baseline"]["fault"] = {"expires_in": "soon"}
    [problem] = problems_of(tmp_path, d)
    assert problem.startswith("variants.baseline.fault.expires_in: expected a duration")
    d["variants"]["baseline"]["fault"] = {"key": ""}
    [problem] = problems_of(tmp_path, d)
    assert problem.startswith("variants.baseline.fault.key: String should have at least 1")


def test_unknown_request_kind_lists_the_known_ones(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, doc(load__endpoints=[{"request": "search"}]))
    assert problem == ("load.endpoints.0.request: expected 'checkout', 'health' or "
                       "'catalog', got 'search'")


def test_metric_increase_expectation() -> None:
    e = Expectation.model_validate(
        {"window": "fault", "metric": "checkout_catalog_cache_recomputes_total",
         "increase": "== 1"})
    assert e.text == "[fault] increase of checkout_catalog_cache_recomputes_total == 1"
    with pytest.raises(ValueError, match="exactly one of 'max', 'min' or 'increase'"):
        Expectation.model_validate({"window": "fault", "metric": "m", "increase": 1, "max": 2})
    with pytest.raises(ValueError, match="'max'/'min'/'increase' go with 'metric'"):
        Expectation.model_validate({"window": "fault", "status": 500, "increase": 1})


def test_shipped_incident_scenarios_use_the_new_fields() -> None:
    disk = load_scenario_file(find_scenario("disk-full"))
    assert disk.stack.data_volume is not None and disk.fault.kind == "disk-fill"
    assert disk.variant_fault_params("log-rotation") == {"leave_free": "384KiB"}
    cache = load_scenario_file(find_scenario("cache-stampede"))
    assert cache.fault.kind == "hot-key-expiry"
    assert {e.request for e in cache.load.endpoints} == {"catalog", "checkout"}
    assert set(cache.variants) == {
        "baseline", "single-flight", "stale-while-revalidate", "early-refresh"}


def test_sizes() -> None:
    assert parse_size("512KiB") == 524288
    assert parse_size("1.5MiB") == 1572864
    assert parse_size(4096) == 4096
    assert format_size(8 << 20) == "8MiB" and format_size(1000) == "1000B"
    with pytest.raises(ValueError, match="non-negative"):
        parse_size(-1)
