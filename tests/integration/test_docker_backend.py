"""The docker backend for real: a Docker engine, the offline-built images, the shipped
scenario file unchanged. Without an engine these tests skip with the reason — except in
CI (CI=true), where .ci/run prepares one and a missing engine is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab.errors import BackendError
from tests.conftest import docker_client_or_skip, under_ci
from tests.integration.lab_cli import popen_lab, stop, wait_for_line

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def docker_client() -> Any:
    return docker_client_or_skip()


def lab(args: list[str], runs_root: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_objects(client: Any, run_id: str | None = None) -> list[tuple[str, str]]:
    from lab.stack.docker import run_objects as objects

    return [(kind, rid) for kind, rid, _ in objects(client, run_id)]


def fault_window(path: Path, variant: str) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    [v] = [v for v in doc["variants"] if v["name"] == variant]
    assert v["backend"] == "docker"
    return v  # type: ignore[no-any-return]


def run_on_docker(client: Any, runs_root: Path, tmp_path: Path, scenario: str,
                  *variants: str) -> dict[str, dict[str, Any]]:
    """`lab run SCENARIO --backend docker` for some variants, as a user types it: every
    expectation of the scenario file must hold (exit 0), and nothing may be left."""
    out = tmp_path / "results.json"
    before = set(run_objects(client))
    args = ["run", scenario, "--backend", "docker", "--json", str(out)]
    for variant in variants:
        args += ["--variant", variant]
    proc = lab(args, runs_root, timeout=120 + 90 * len(variants))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(run_objects(client)) == before  # a normal run leaves nothing
    doc = json.loads(out.read_text())
    assert all(v["backend"] == "docker" for v in doc["variants"])
    return {v["name"]: v for v in doc["variants"]}


def test_pool_exhaustion_baseline_and_timeouts_give_the_local_verdicts(
    docker_client: Any, runs_root: Path, tmp_path: Path
) -> None:
    v = run_on_docker(docker_client, runs_root, tmp_path, "pool-exhaustion", "baseline",
                      "timeouts")
    fault = v["baseline"]["windows"]["fault"]
    assert fault["by_status"].get("500", 0) / fault["total"] >= 0.30
    assert v["baseline"]["signatures"][0]["exception"] == "AttributeError"
    assert v["baseline"]["evidence"]["facts"]["absent_during_fault"] is True
    timeouts = v["timeouts"]["windows"]["fault"]
    assert timeouts["by_status"].get("500", 0) == 0
    assert timeouts["retry_after"]["503"] == timeouts["by_status"]["503"] > 0


def test_missing_env_var_deploys_a_container_without_the_key_and_validation_stops_it(
    docker_client: Any, runs_root: Path, tmp_path: Path
) -> None:
    v = run_on_docker(docker_client, runs_root, tmp_path, "missing-env-var", "baseline",
                      "startup-validation")
    facts = v["baseline"]["evidence"]["facts"]
    # Read from the new container's process, not its config: the variable is really gone.
    assert facts["variables_absent"] is True and facts["deploy"] == "completed"
    assert facts["rollback"] == "completed"
    assert v["baseline"]["signatures"][0]["exception"] == "KeyError"
    validated = v["startup-validation"]["evidence"]["facts"]
    assert validated["deploy_exit_code"] == 2
    assert "STARTUP_FAILURE" in validated["deploy_stderr_line"]
    assert v["startup-validation"]["windows"]["fault"]["by_status"].get("500", 0) == 0


def test_disk_full_fills_a_sized_tmpfs_and_degraded_writes_keep_201(
    docker_client: Any, runs_root: Path, tmp_path: Path
) -> None:
    v = run_on_docker(docker_client, runs_root, tmp_path, "disk-full", "baseline",
                      "degrade-writes")
    facts = v["baseline"]["evidence"]["facts"]
    assert facts["volume_bytes"] == 8 << 20 and facts["full_during_fault"] is True
    assert facts["ballast_removed"] is True
    fault = v["baseline"]["windows"]["fault"]
    assert fault["by_status"]["500"] / fault["total"] >= 0.9
    degraded = v["degrade-writes"]["windows"]["fault"]
    assert degraded["by_status"].get("500", 0) == 0


def test_flaky_gateway_through_the_proxy_container_and_retries_with_keys(
    docker_client: Any, runs_root: Path, tmp_path: Path
) -> None:
    v = run_on_docker(docker_client, runs_root, tmp_path, "flaky-dependency", "baseline",
                      "timeouts-retries")
    baseline = v["baseline"]
    assert baseline["evidence"]["took_effect"] is True
    assert baseline["signatures"][0]["exception"] == "PaymentsUnavailable"
    assert baseline["ledger"]["charged_without_order"] >= 1
    retries = v["timeouts-retries"]
    assert retries["windows"]["fault"]["by_status"].get("500", 0) == 0
    assert retries["ledger"]["double_charges"] == 0


def test_cache_stampede_and_single_flight(
    docker_client: Any, runs_root: Path, tmp_path: Path
) -> None:
    v = run_on_docker(docker_client, runs_root, tmp_path, "cache-stampede", "baseline",
                      "single-flight")
    assert v["baseline"]["evidence"]["facts"]["peak_concurrent_recomputes"] >= 10
    assert v["baseline"]["windows"]["fault"]["by_status"]["500"] >= 20
    assert v["single-flight"]["evidence"]["facts"]["recomputes_during"] == 1


def run_until_phase(scenario: str, phase: str,
                    runs_root: Path) -> tuple[subprocess.Popen[str], Path]:
    """`lab run SCENARIO --backend docker --variant baseline`, returned once its progress
    says `phase`; with its run directory."""
    proc = popen_lab(["run", scenario, "--backend", "docker", "--variant", "baseline",
                      "--progress", "lines"], runs_root,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_line(proc.stderr, lambda line: f" {phase} " in line, 240, f"{phase} phase")
    except AssertionError:
        stop(proc)
        raise
    [run_dir] = list(runs_root.iterdir())
    return proc, run_dir


def test_cleanup_after_kill_9_removes_containers_and_network(
    docker_client: Any, runs_root: Path
) -> None:
    volumes_before = {v.name for v in docker_client.volumes.list()}
    proc, run_dir = run_until_phase("pool-exhaustion", "before", runs_root)
    kinds = {kind for kind, _ in run_objects(docker_client, run_dir.name)}
    assert kinds >= {"container", "network"}
    proc.kill()
    proc.wait(10)
    assert run_objects(docker_client, run_dir.name)  # containers outlive a kill -9
    cleanup = lab(["cleanup"], runs_root, timeout=120)
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"{run_dir.name}: removed" in cleanup.stdout
    assert run_objects(docker_client, run_dir.name) == []
    assert not any(c.name.startswith(run_dir.name) for c in docker_client.containers.list(all=True))
    assert not any(n.name.endswith(run_dir.name) for n in docker_client.networks.list())
    assert {v.name for v in docker_client.volumes.list()} <= volumes_before
    assert not run_dir.exists()


def test_sigterm_during_the_fault_reverts_and_removes_every_container(
    docker_client: Any, runs_root: Path
) -> None:
    """SIGTERM mid-deploy (missing-env-var starts and stops containers as its fault): the
    run rolls back, tears down and exits 143, leaving no object of its run."""
    import signal

    proc, run_dir = run_until_phase("missing-env-var", "fault", runs_root)
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert proc.wait(120) == 143, rest
    assert "interrupted by SIGTERM" in rest
    assert run_objects(docker_client, run_dir.name) == []
    assert not run_dir.exists()


# ---------------------------------------------------------------- HAProxy, for real


@pytest.fixture
def haproxy_lab(docker_client: Any) -> Any:
    """A network with HAProxy (our config, one static server) and two plain HTTP servers:
    `web` answers at once; `late` listens only once the test starts its server."""
    import secrets

    from lab.stack.base import RouterSettings
    from lab.stack.haproxy import render_config
    from lab.stack.images import IMAGES

    tag = f"cltest-{secrets.token_hex(3)}"
    labels = {"org.chaoslab.run-id": tag}
    made: list[Any] = []
    network = docker_client.networks.create(tag, labels=labels)
    try:
        def run(name: str, image: str, command: list[str], **kw: Any) -> Any:
            c = docker_client.containers.run(image, command, name=f"{tag}-{name}",
                                             detach=True, network=tag, labels=labels, **kw)
            made.append(c)
            return c

        serve = ["python", "-m", "http.server", "8080"]
        run("web", IMAGES["lab"], serve)
        late = run("late", IMAGES["lab"], ["sleep", "infinity"])
        cfg = Path(f"/tmp/{tag}.cfg")
        cfg.write_text(render_config([("web", f"{tag}-web:8080")],
                                     RouterSettings(health_path="/", inter_s=0.25), 2))
        router = run("router", IMAGES["haproxy"], ["haproxy", "-db", "-f", "/h.cfg"],
                     volumes={str(cfg): {"bind": "/h.cfg", "mode": "ro"}},
                     ports={"8080/tcp": ("127.0.0.1", None), "9999/tcp": ("127.0.0.1", None)})
        router.reload()
        late.reload()
        yield router, late, tag
    finally:
        for c in made:
            c.remove(force=True)
        network.remove()
        Path(f"/tmp/{tag}.cfg").unlink(missing_ok=True)


def test_haproxy_router_keeps_the_local_routers_semantics(haproxy_lab: Any) -> None:
    import asyncio
    import time
    import urllib.error
    import urllib.request

    from lab.errors import FaultError
    from lab.stack.base import RouterSettings
    from lab.stack.haproxy import HaproxyRouterControl, server_check

    router, late, network = haproxy_lab
    late_ip = late.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    ports = router.attrs["NetworkSettings"]["Ports"]
    traffic = int(ports["8080/tcp"][0]["HostPort"])
    control = HaproxyRouterControl("127.0.0.1", int(ports["9999/tcp"][0]["HostPort"]),
                                   check=server_check(RouterSettings(inter_s=0.25)),
                                   address=lambda name: f"{late_ip}:8080")

    async def state(name: str) -> dict[str, Any]:
        return {b["name"]: b for b in await control.backends()}[name]

    async def until_in_rotation(name: str, timeout: float) -> float:
        began = time.monotonic()
        while not (await state(name))["in_rotation"]:
            assert time.monotonic() - began < timeout, f"{name} never entered rotation"
            await asyncio.sleep(0.05)
        return time.monotonic() - began

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for _ in range(100):  # HAProxy starting
            try:
                await control.backends()
                break
            except FaultError:
                await asyncio.sleep(0.2)
        await until_in_rotation("web", 15)  # a server of the file: UP once it answers
        await control.add_backend("late", "http://unused")
        # Added at run time: DOWN, and it stays out while nothing listens there.
        polls = []
        for _ in range(20):
            polls.append((await state("late"))["in_rotation"])
            await asyncio.sleep(0.1)
        seen["out_while_not_listening"] = not any(polls)
        late.exec_run(["python", "-m", "http.server", "8080"], detach=True)
        seen["in_rotation_after_listening_s"] = await until_in_rotation("late", 15)
        seen["removed"] = await control.remove_backend("web", drain_s=2)
        seen["after_web_removed"] = [b["name"] for b in await control.backends()]
        await control.remove_backend("late", drain_s=2)
        return seen

    seen = asyncio.run(scenario())
    assert seen["out_while_not_listening"] is True
    # In once it passed `rise` (2) checks 250 ms apart, after its listener came up.
    assert 0.25 <= seen["in_rotation_after_listening_s"] < 10
    assert seen["after_web_removed"] == ["late"]  # deleted, not just disabled
    # No server left: the router's own 503, as the local router writes it.
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{traffic}/", timeout=5)
        raise AssertionError("expected a 503")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        assert exc.headers["Retry-After"] == "2"
        assert exc.headers["Content-Type"] == "application/problem+json"
        assert json.loads(exc.read())["reason"] == "router"


# ---------------------------------------------------------------- workshops: compose


def test_workshop_compose_stack_takes_inject_and_revert(
    docker_client: Any, runs_root: Path
) -> None:
    """As an instructor would: compose up with an incident file, `lab inject`, look with
    curl, `lab revert`, compose down — and nothing of it is left."""
    import secrets
    import shutil
    import time
    import urllib.error
    import urllib.request

    from lab.system.ports import free_port

    compose = shutil.which("docker-compose")
    if compose is None:
        if under_ci():
            pytest.fail("CI installs Debian's docker-compose (make docker-engine)")
        pytest.skip("docker-compose (v1.29) is not installed")
    project = f"cltest{secrets.token_hex(3)}"
    ports = {v: str(free_port()) for v in (
        "CHAOSLAB_POSTGRES_PORT", "CHAOSLAB_PAYMENTS_PORT", "CHAOSLAB_PROXY_ADMIN_PORT",
        "CHAOSLAB_ROUTER_PORT", "CHAOSLAB_ROUTER_ADMIN_PORT", "CHAOSLAB_ROUTER_API_PORT")}
    env = {**os.environ, **ports, "COMPOSE_PROJECT_NAME": project,
           "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    files = ["-f", str(REPO / "compose" / "docker-compose.yml"),
             "-f", str(REPO / "compose" / "incidents" / "missing-env-var.yml")]
    router = f"http://127.0.0.1:{ports['CHAOSLAB_ROUTER_PORT']}"

    def checkout(cart: int) -> int:
        body = json.dumps({"cart_id": cart, "user_id": 7, "payment_token": "tok_visa"})
        req = urllib.request.Request(f"{router}/api/checkout/complete", body.encode(),
                                     {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def workshop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lab", *args, "--project", project],
                              cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=180, check=False)

    def containers() -> list[str]:
        return [c.name for c in docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"})]

    try:
        up = subprocess.run([compose, *files, "up", "-d"], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
        assert up.returncode == 0, up.stderr
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if checkout(1) == 201:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert checkout(2) == 201

        inject = workshop("inject", "missing-env-var")
        assert inject.returncode == 0, inject.stdout + inject.stderr
        assert "rolling-deploy injected" in inject.stdout
        assert "variables_absent: True" in inject.stdout
        assert {checkout(c) for c in range(10, 16)} == {500}  # the deploy is live
        # The new container is one of the project's: `compose down` will take it.
        assert any(name.startswith(f"{project}-lab-checkout-") for name in containers())
        again = workshop("inject", "missing-env-var")
        assert again.returncode == 5 and "lab revert` first" in again.stderr  # already in

        revert = workshop("revert")
        assert revert.returncode == 0, revert.stdout + revert.stderr
        assert "took effect: yes" in revert.stdout
        assert "rollback: completed" in revert.stdout
        assert {checkout(c) for c in range(20, 26)} == {201}
        assert workshop("revert").returncode == 5  # nothing left to revert
    finally:
        down = subprocess.run([compose, *files, "down", "-v"], env=env, capture_output=True,
                              text=True, timeout=180, check=False)
    assert down.returncode == 0, down.stderr
    assert containers() == []
    assert not any(n.name.startswith(project) for n in docker_client.networks.list())


def test_lab_up_on_docker_inject_watch_revert(docker_client: Any, runs_root: Path) -> None:
    """`lab up --backend docker`: the same live stack, control API and CLI as on the local
    default; Ctrl-C removes every container, network and volume it made."""
    from tests.integration.live_stack import live_stack

    with live_stack(["up", "pool-exhaustion", "--backend", "docker", "--port", "0",
                     "--for", "150s"], runs_root) as live:
        print(f"\nlab up --backend docker -> ready in {live.ready_s:.1f} s")
        assert live.get("/api/status")["backend"] == "docker"
        assert run_objects(docker_client) != []
        injected = lab(["inject", "--api", live.api], runs_root, timeout=120)
        assert injected.returncode == 0, injected.stderr
        deadline = time.monotonic() + 25
        seen = 0
        while time.monotonic() < deadline and seen < 20:
            time.sleep(1)
            seen = sum(s["counts"].get("500", 0)
                       for s in live.get("/api/mix?last=10")["seconds"])
        assert seen >= 20, live.get("/api/mix?last=10")
        reverted = lab(["revert", "--api", live.api], runs_root, timeout=120)
        assert reverted.returncode == 0 and "took effect: yes" in reverted.stdout
    assert live.proc.returncode == 130, live.output()
    assert run_objects(docker_client) == []


# ---------------------------------------------------------------- the data set cache


def test_a_data_set_volume_is_built_once_copied_per_run_and_rebuilt_when_unfinished(
    docker_client: Any, tmp_path: Path
) -> None:
    """The docker data set cache for real: the fill runs once, each server starts on its
    own copy (one run's DROP TABLE is not the next run's), a volume whose marker is gone
    is rebuilt, a failed build leaves no volume, `unfinished_volumes` finds a killed
    build's volume, and one a running server has mounted is kept with BackendError."""
    import asyncio
    import secrets

    import asyncpg

    from lab.stack.docker import dataset
    from lab.stack.docker.containers import exited, published_port, run_container
    from lab.stack.docker.specs import RUN_LABEL, postgres_spec
    from lab.stack.postgres import create_lab_database

    tag = f"cltest-{secrets.token_hex(3)}"
    key = f"test-{tag}"
    labels = {RUN_LABEL: tag}
    network = docker_client.networks.create(tag, labels=labels)
    fills: list[str] = []

    async def fill(dsn: str) -> None:
        fills.append(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 3)")
        finally:
            await conn.close()

    async def cached() -> str:
        return await dataset.cached_volume(docker_client, key, fill, run_id=tag, network=tag,
                                           facts={}, progress=lambda _m: None, root=tmp_path)

    async def run_on_copy(volume: str, name: str, sql: str) -> Any:
        server = run_container(docker_client, postgres_spec(), f"{tag}-{name}", labels, tag,
                               volumes=dataset.cache_mount(volume))
        port = published_port(server, 5432)
        await create_lab_database(port, 60, lambda: exited(server))
        conn = await asyncpg.connect(f"postgresql://lab@127.0.0.1:{port}/shop")
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()
            server.remove(force=True)

    async def scenario() -> None:
        volume = await cached()
        assert volume == dataset.volume_name(key) and len(fills) == 1
        assert await cached() == volume and len(fills) == 1  # built once
        assert await run_on_copy(volume, "a", "SELECT count(*) FROM t") == 3
        await run_on_copy(volume, "b", "DROP TABLE t")
        assert await run_on_copy(volume, "c", "SELECT count(*) FROM t") == 3  # its own copy
        created = docker_client.volumes.get(volume).attrs["CreatedAt"]
        dataset.marker_path(key, tmp_path).unlink()  # as after a kill mid-build
        assert [v.name for v in dataset.unfinished_volumes(docker_client, tmp_path)
                if v.name == volume] == [volume]  # its builder's run is not active
        assert await cached() == volume and len(fills) == 2  # rebuilt, not trusted
        assert docker_client.volumes.get(volume).attrs["CreatedAt"] >= created
        assert volume not in {v.name for v in dataset.unfinished_volumes(docker_client, tmp_path)}
        # A volume a run's server still has mounted is kept, said, not a traceback.
        busy = run_container(docker_client, postgres_spec(), f"{tag}-busy", labels, tag,
                             volumes=dataset.cache_mount(volume))
        with pytest.raises(BackendError, match="in use"):
            dataset.remove_volume(docker_client.volumes.get(volume), tmp_path)
        assert dataset.marker_path(key, tmp_path).exists()
        busy.remove(force=True)

        async def broken(dsn: str) -> None:
            raise RuntimeError("the seed failed")

        other = f"{key}-broken"
        with pytest.raises(RuntimeError, match="the seed failed"):
            await dataset.cached_volume(docker_client, other, broken, run_id=tag, network=tag,
                                        facts={}, progress=lambda _m: None, root=tmp_path)
        assert dataset.volume_name(other) not in {v.name for v in docker_client.volumes.list()}

    try:
        asyncio.run(scenario())
        assert not docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={tag}"})
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={tag}"}):
            c.remove(force=True)
        for v in dataset.cache_volumes(docker_client):
            if v.name.startswith(dataset.volume_name(key)):
                dataset.remove_volume(v, tmp_path)
        network.remove()
