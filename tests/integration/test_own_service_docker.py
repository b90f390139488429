"""The lab against a service it did not write, on the docker backend: examples/orders run
from its own compose file (`stack.compose`), its image built by the machine's Compose,
beside the lab's Postgres, fault proxy and router containers.

The four scenario files run in one `lab run … --backend docker`, as a user types it, from
a copy of the example's folder (a team's project: the compose file and everything in the
folder must be byte-for-byte what they were after the run). No image registry or package
index is reachable from a build here, so the copy gets the example's wheels downloaded on
the host and builds from the local Debian base, the way the example's Dockerfile says an
air-gapped runner does (ORDERS_BASE_IMAGE, ORDERS_PIP_OFFLINE: the user's own compose
variables, not the lab's). Without an engine these tests skip with the reason — except
in CI, where .ci/run prepares one and a skip is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import docker_client_or_skip

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "orders"
SCENARIOS = ("dependency-outage", "missing-variable", "index-dropped", "table-locked")
OFFLINE = {"ORDERS_BASE_IMAGE": "debian:bookworm-slim", "ORDERS_PIP_OFFLINE": "1"}


@pytest.fixture(scope="module")
def docker_client() -> Any:
    return docker_client_or_skip(compose=True)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file of the team's folder and its content hash (the downloaded wheels aside)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.parent.name != "wheelhouse"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example, as a team's own project, with its wheels for the offline
    build (downloaded here, on the host: pip cannot reach an index from inside a build)."""
    folder = tmp_path_factory.mktemp("team") / "orders"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.whl", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d",
                    str(folder / "wheelhouse"), "-r", str(folder / "requirements.txt")],
                   check=True, capture_output=True, timeout=300)
    return folder


def lab(args: list[str], runs_root: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root), **OFFLINE}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def lab_containers(client: Any) -> list[str]:
    """Containers of any lab run, and any of the team's image (none may outlive a run)."""
    from lab.stack.docker.specs import RUN_LABEL

    return sorted(c.name for c in client.containers.list(all=True)
                  if RUN_LABEL in (c.labels or {})
                  or any(t.startswith("orders-team/") for t in c.image.tags))


@pytest.fixture(scope="module")
def variants(docker_client: Any, project: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The four scenarios in one `lab run --backend docker`; every expectation must hold."""
    runs_root = tmp_path_factory.mktemp("runs")
    out = runs_root.parent / "own-docker.json"
    before = tree_digest(project)
    files = [str(project / "scenarios" / f"{name}.yaml") for name in SCENARIOS]
    proc = lab(["run", *files, "--backend", "docker", "--json", str(out)], runs_root,
               timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_digest(project) == before, "the team's project was changed on disk"
    assert lab_containers(docker_client) == []
    assert sorted(p.name for p in runs_root.iterdir()) == []
    doc = json.loads(out.read_text())
    assert {v["backend"] for v in doc["variants"]} == {"docker"}
    yield {f"{v['scenario']}/{v['name']}": v for v in doc["variants"]}


def status(v: dict[str, Any], window: str, code: str) -> int:
    return int(v["windows"][window]["by_status"].get(code, 0))


def test_dependency_outage_500s_and_both_mitigations_on_docker(
        variants: dict[str, Any]) -> None:
    base = variants["dependency-outage/baseline"]
    assert base["passed"] and base["evidence"]["took_effect"] is True
    assert status(base, "fault", "500") / base["windows"]["fault"]["total"] >= 0.95
    # Each answer came from the team's container, through the proxy container.
    assert base["evidence"]["facts"]["http_errors"] == {"500": status(base, "fault", "500")}
    fallback = variants["dependency-outage/fallback"]
    assert status(fallback, "fault", "500") == 0
    assert status(fallback, "fault", "200") + status(fallback, "fault", "201") \
        == fallback["windows"]["fault"]["total"] > 0
    honest = variants["dependency-outage/errors-as-503"]
    fault = honest["windows"]["fault"]
    assert fault["retry_after"]["503"] == status(honest, "fault", "503") \
        >= 0.95 * fault["total"]


def test_a_deploy_without_the_key_is_a_container_whose_process_lacks_it(
        variants: dict[str, Any]) -> None:
    facts = variants["missing-variable/baseline"]["evidence"]["facts"]
    assert facts["environ_read_from_process"] is True and facts["variables_absent"] is True
    assert facts["deploy_instance"] == "app-2" and facts["deploy"] == "completed"
    assert facts["rollback"] == "completed"
    # Its error lines read from the containers' stderr (the stopped ones' kept).
    top = variants["missing-variable/baseline"]["signatures"][0]
    assert (top["exception"], top["frame"]) == ("KeyError", "POST /orders")
    validated = variants["missing-variable/startup-validation"]
    vfacts = validated["evidence"]["facts"]
    assert vfacts["deploy_exit_code"] == 78 and vfacts["deploy"] == "failed"
    assert "STARTUP_FAILURE missing SHIPPING_API_KEY" in vfacts["deploy_stderr_line"]
    assert status(validated, "fault", "500") == 0


def test_index_dropped_under_load_in_the_labs_postgres_container(
        variants: dict[str, Any]) -> None:
    base = variants["index-dropped/baseline"]
    facts = base["evidence"]["facts"]
    assert facts["absent_during_fault"] is True and facts["present_after_revert"] is True
    assert status(base, "fault", "500") / base["windows"]["fault"]["total"] >= 0.30
    timeouts = variants["index-dropped/timeouts-503"]
    assert status(timeouts, "fault", "500") == 0
    assert timeouts["windows"]["fault"]["retry_after"]["503"] \
        == status(timeouts, "fault", "503") > 0
    restored = variants["index-dropped/index-restored"]
    assert restored["evidence"]["facts"]["absent_during_fault"] is False
    assert status(restored, "fault", "500") == 0


def test_a_lock_held_in_the_labs_postgres_container_drains_the_teams_pool(
        variants: dict[str, Any]) -> None:
    base = variants["table-locked/baseline"]
    facts = base["evidence"]["facts"]
    assert facts["held_during_fault"] is True and facts["released_after_revert"] is True
    assert facts["max_waiting"] >= 5
    assert status(base, "fault", "500") / base["windows"]["fault"]["total"] >= 0.65
    honest = variants["table-locked/statement-timeout-503"]
    assert status(honest, "fault", "500") == 0
    assert variants["table-locked/readiness"]["passed"]


def test_a_compose_file_compose_refuses_is_named_with_composes_words(
        docker_client: Any, project: Path, tmp_path: Path) -> None:
    """Valid YAML with the services named (so the file passes `lab check`), but an option
    Compose does not know: exit 3 before any container starts, naming the file."""
    bad = tmp_path / "orders"
    shutil.copytree(project, bad)
    compose = bad / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("    stop_grace_period: 5s\n",
                                                   "    stop_grace_periodd: 5s\n", 1))
    runs_root = tmp_path / "runs"
    proc = lab(["run", str(bad / "scenarios" / "dependency-outage.yaml"), "--backend",
                "docker", "--variant", "baseline"], runs_root, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"{compose} is not a compose file" in proc.stderr
    assert "stop_grace_periodd" in proc.stderr
    assert lab_containers(docker_client) == []


def test_the_pytest_plugin_runs_a_teams_scenario_on_docker(
        docker_client: Any, project: Path, tmp_path: Path) -> None:
    """`pytest --lab-backend docker` in the team's folder: one variant, one test item."""
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(tmp_path / "runs"), **OFFLINE}
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--lab-backend", "docker",
         "scenarios/dependency-outage.yaml", "-k", "baseline", "--lab-json", str(out)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 deselected" in proc.stdout
    [variant] = json.loads(out.read_text())["variants"]
    assert variant["backend"] == "docker" and variant["name"] == "baseline"
    assert lab_containers(docker_client) == []


def test_a_container_that_never_gets_ready_is_named_with_its_compose_service(
        docker_client: Any, project: Path, tmp_path: Path) -> None:
    import yaml

    copy = tmp_path / "orders"
    shutil.copytree(project, copy)
    path = copy / "scenarios" / "dependency-outage.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["stack"]["service"].update(health="/never", ready_timeout="3s")
    path.write_text(yaml.safe_dump(doc))
    proc = lab(["run", str(path), "--backend", "docker", "--variant", "baseline"],
               tmp_path / "runs", timeout=180)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "your service (app-1, orders)" in proc.stderr
    assert "/never" in proc.stderr
    assert lab_containers(docker_client) == []
