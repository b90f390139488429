"""The docker backend for real: a Docker engine, the offline-built images, the shipped
scenario file unchanged. Without an engine these tests skip with the reason — except in
CI (CI=true), where .ci/run prepares one and a missing engine is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.errors import BackendError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def docker_client() -> Any:
    from lab.images import check_images, engine

    try:
        client = engine()
        check_images(client)
    except BackendError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the docker backend: {exc}")
        pytest.skip(f"docker backend unavailable here: {exc}")
    return client


def lab(args: list[str], runs_root: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_objects(client: Any, run_id: str | None = None) -> list[tuple[str, str]]:
    from lab.backends.docker import run_objects as objects

    return [(kind, rid) for kind, rid, _ in objects(client, run_id)]


def fault_window(path: Path, variant: str) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    [v] = [v for v in doc["variants"] if v["name"] == variant]
    assert v["backend"] == "docker"
    return v  # type: ignore[no-any-return]


def test_baseline_and_timeouts_give_the_local_verdicts(
    docker_client: Any, runs_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    before = set(run_objects(docker_client))
    proc = lab(["run", "pool-exhaustion", "--backend", "docker", "--variant", "baseline",
                "--variant", "timeouts", "--json", str(out)], runs_root, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    baseline = fault_window(out, "baseline")
    fault = baseline["windows"]["fault"]
    assert fault["by_status"].get("500", 0) / fault["total"] >= 0.30
    assert baseline["signatures"][0]["exception"] == "AttributeError"
    assert baseline["evidence"]["facts"]["absent_during_fault"] is True
    timeouts = fault_window(out, "timeouts")["windows"]["fault"]
    assert timeouts["by_status"].get("500", 0) == 0
    assert timeouts["retry_after"]["503"] == timeouts["by_status"]["503"] > 0
    assert set(run_objects(docker_client)) == before  # a normal run leaves nothing


def test_cleanup_after_kill_9_removes_containers_and_network(
    docker_client: Any, runs_root: Path
) -> None:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "run", "pool-exhaustion", "--backend", "docker",
         "--variant", "baseline", "--progress", "lines"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if " before " in line:
            break
    [run_dir] = list(runs_root.iterdir())
    kinds = {kind for kind, _ in run_objects(docker_client, run_dir.name)}
    assert kinds >= {"container", "network"}
    proc.kill()
    proc.wait(10)
    assert run_objects(docker_client, run_dir.name)  # containers outlive a kill -9
    cleanup = lab(["cleanup"], runs_root, timeout=120)
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"{run_dir.name}: removed" in cleanup.stdout
    assert run_objects(docker_client, run_dir.name) == []
    assert not run_dir.exists()
